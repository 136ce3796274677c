"""Who a narrowed consent excludes from a grant: decided from each grant's purpose and today's consent."""

from __future__ import annotations

import datetime as dt
import uuid

from genoshare.access.consent import ConsentExclusions
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node
from genoshare.store.models import AccessRequest, Grant, Participant


def grant(node: Node, **purpose: object) -> str:
    request_id, grant_id = str(uuid.uuid4()), str(uuid.uuid4())
    with node.database.session() as session:
        session.add(
            AccessRequest(
                id=request_id,
                requester="someone",
                datasets=["study"],
                purpose={"primary": "GRU", **purpose},
                project_title="p",
                institution="i",
                status="approved",
                match={},
            )
        )
        session.flush()
        session.add(
            Grant(
                id=grant_id,
                request_id=request_id,
                dataset_id="study",
                grantee="someone",
                expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
            )
        )
    return grant_id


def test_a_person_is_left_out_of_exactly_the_grants_their_narrowing_forbids(node: Node) -> None:
    DatasetService(node.database).create(
        NewDataset(id="study", title="t", custodian="c", access_level="controlled", duo_codes=["GRU"])
    )
    with node.database.session() as session:
        for name, narrowing, status in (
            ("no-commerce", ["NCU"], "active"),
            ("not-for-profit", ["NPU"], "active"),
            ("open", [], "active"),
            ("gone", ["NCU"], "withdrawn"),
        ):
            session.add(
                Participant(
                    dataset_id="study",
                    pseudonym=name,
                    source_key=name,
                    consent_restrictions=narrowing,
                    consent_status=status,
                )
            )
    commercial, profit, academic = grant(node, commercial=True), grant(node, for_profit=True), grant(node)
    exclusions = ConsentExclusions(node.database, max_age=0)

    assert exclusions.in_dataset("study", [commercial]) == {"no-commerce"}
    assert exclusions.in_dataset("study", [profit]) == {"not-for-profit"}
    assert exclusions.in_dataset("study", [academic]) == frozenset()
    # A caller relying on several grants sees only whom every one of them allows.
    assert exclusions.in_dataset("study", [academic, commercial, profit]) == {"no-commerce", "not-for-profit"}
    # Access whose purpose is not known here cannot be shown to fit a narrowing: a visa of another issuer,
    # public or registered access (no grant), or a known grant relied on beside an unknown one.
    narrowed = {"no-commerce", "not-for-profit"}
    assert exclusions.in_dataset("study", ["not-a-grant-of-this-node"]) == narrowed
    assert exclusions.in_dataset("study", []) == narrowed
    assert exclusions.in_dataset("study", [academic, "not-a-grant-of-this-node"]) == narrowed
    # A grant of another dataset says nothing of this one.
    assert exclusions.in_dataset("other", [commercial]) == frozenset()

    with node.database.session() as session:
        person = session.query(Participant).filter_by(pseudonym="no-commerce").one()
        person.consent_restrictions = []
    assert exclusions.in_dataset("study", [commercial]) == frozenset(), "widening restores access at once"
