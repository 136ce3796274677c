"""The access policy as tables: access level x visas x committee grants x consent -> what a caller gets, and why.

Built from the access layer's own parts (a verifier with two trusted issuers, the policy, one database),
no node: each row is a signed passport as a researcher would present it, verified as the API verifies it,
and the decision a data steward would check: the granularity (nothing but yes/no, counts, records), the
reason the audit log gives, and, for files, who is left out of what is served.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from genoshare.access.granularity import Granularity
from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import (
    CONTROLLED_ACCESS_GRANTS,
    RESEARCHER_STATUS,
    Identity,
    PassportVerifier,
    TrustedKeys,
)
from genoshare.access.policy import AccessPolicy
from genoshare.audit import AuditLog
from genoshare.errors import PermissionDenied
from genoshare.settings import BONA_FIDE_RESEARCHER, PassportSettings, TrustedIssuer
from genoshare.store.db import Database, migrate
from genoshare.store.models import AccessRequest, DataObject, Dataset, Grant, ObjectParticipant, Participant

from support import TEST_ISSUER

NODE = "https://node.test.genoshare.invalid"
SUBJECT = "researcher"
LEVELS = ("public", "registered", "controlled")
#: The dataset every grant row is about; ``other`` is a second controlled dataset of the node.
DATASET, OTHER = "controlled", "other"
#: Purposes of the committee grants in the consent table.
ACADEMIC = {"primary": "HMB"}
COMMERCIAL = {"primary": "HMB", "commercial": True}


@dataclass
class World:
    database: Database
    policy: AccessPolicy
    verifier: PassportVerifier
    broker: VisaIssuer
    node: VisaIssuer

    def grant(self, dataset_id: str, purpose: dict[str, object], *, revoked: bool = False) -> str:
        """A committee grant: the approved request's row and the grant row whose id the node's visa carries."""
        request_id, grant_id = str(uuid.uuid4()), str(uuid.uuid4())
        with self.database.session() as session:
            session.add(
                AccessRequest(
                    id=request_id, requester=f"{SUBJECT}@{TEST_ISSUER}", datasets=[dataset_id], purpose=purpose,
                    project_title="p", institution="i", status="revoked" if revoked else "approved",
                )
            )  # fmt: skip
        with self.database.session() as session:
            session.add(
                Grant(
                    id=grant_id, request_id=request_id, dataset_id=dataset_id, grantee=f"{SUBJECT}@{TEST_ISSUER}",
                    expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
                    revoked_at=dt.datetime.now(dt.UTC) if revoked else None, revoked_by="chair" if revoked else None,
                )
            )  # fmt: skip
        return grant_id

    def researcher_status(self) -> str:
        return self.broker.visa(SUBJECT, RESEARCHER_STATUS, BONA_FIDE_RESEARCHER, by="so")

    def committee_visa(self, dataset_id: str, grant_id: str, **options: object) -> str:
        """The ControlledAccessGrants visa the node signs on approval (``governance.requests``)."""
        value = f"{NODE}/datasets/{dataset_id}"
        return self.node.visa(SUBJECT, CONTROLLED_ACCESS_GRANTS, value, by="dac", jti=grant_id, **options)  # type: ignore[arg-type]

    def identity(self, visas: list[str]) -> Identity:
        return self.verifier.verify(self.broker.passport(SUBJECT, visas))

    def dataset(self, dataset_id: str, level: str) -> Dataset:
        with self.database.session() as session:
            row = session.get(Dataset, dataset_id)
            if row is None:
                row = Dataset(id=dataset_id, title=dataset_id, custodian="c", access_level=level, duo_codes=["GRU"])
                session.add(row)
        return row


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, issuer: VisaIssuer) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("policy-matrix")
    node = VisaIssuer.load_or_create(NODE, directory / "node.jwk.json")
    node.write_jwks(directory / "node.jwks.json")
    issuer.write_jwks(directory / "broker.jwks.json")
    database = Database(f"sqlite:///{directory / 'matrix.db'}")
    migrate(database.engine)
    http = httpx.Client()
    keys = TrustedKeys(
        [
            TrustedIssuer(issuer=TEST_ISSUER, jwks_file=directory / "broker.jwks.json"),
            TrustedIssuer(issuer=NODE, jwks_file=directory / "node.jwks.json"),
        ],
        http,
    )
    # The node's defaults: ResearcherStatus from a signing official or system, grants from its own committees.
    verifier = PassportVerifier(keys, PassportSettings(), node_issuer=NODE, audiences=[NODE])
    policy = AccessPolicy(AuditLog(database, directory / "audit.key"), database, NODE)
    built = World(database, policy, verifier, issuer, node)
    for level in LEVELS:
        built.dataset(level, level)
    built.dataset(OTHER, "controlled")
    yield built
    http.close()
    database.dispose()


# -- access level x visas -------------------------------------------------------------------------------

#: What a passport holds, by name; each builds its visas in ``passport_of``.
VISAS = (
    "anonymous",
    "no visas",
    "ResearcherStatus",
    "grant for the dataset",
    "grant for another dataset",
    "expired grant for the dataset",
    "grant conditioned on ResearcherStatus, with it",
    "grant conditioned on ResearcherStatus, without it",
)

B, C, R = Granularity.BOOLEAN, Granularity.COUNT, Granularity.RECORD
#: visas -> (public, registered, controlled): (granularity, words of the reason).
EXPECTED: dict[str, tuple[tuple[Granularity, str], ...]] = {
    "anonymous": (
        (R, "public dataset"), (B, "anonymous caller"), (B, "anonymous caller"),
    ),
    "no visas": (
        (R, "public dataset"), (B, "no ResearcherStatus visa"), (B, "no grant"),
    ),
    "ResearcherStatus": (
        (R, "public dataset"), (R, "ResearcherStatus visa"), (C, "ResearcherStatus visa without grant"),
    ),
    "grant for the dataset": (
        (R, "public dataset"), (B, "no ResearcherStatus visa"), (R, "ControlledAccessGrants visa for this dataset"),
    ),
    "grant for another dataset": (
        (R, "public dataset"), (B, "no ResearcherStatus visa"), (B, "no grant"),
    ),
    "expired grant for the dataset": (
        (R, "public dataset"), (B, "no ResearcherStatus visa"), (B, "no grant"),
    ),
    "grant conditioned on ResearcherStatus, with it": (
        (R, "public dataset"), (R, "ResearcherStatus visa"), (R, "ControlledAccessGrants visa for this dataset"),
    ),
    "grant conditioned on ResearcherStatus, without it": (
        (R, "public dataset"), (B, "no ResearcherStatus visa"), (B, "no grant"),
    ),
}  # fmt: skip
#: A condition clause asking for a bona fide ResearcherStatus visa of any issuer (Passport 1.2.1 conditions).
NEEDS_RESEARCHER = [[{"type": RESEARCHER_STATUS, "value": f"const:{BONA_FIDE_RESEARCHER}"}]]


def passport_of(world: World, visas: str, dataset_id: str) -> Identity | None:
    if visas == "anonymous":
        return None
    grant = world.grant(dataset_id, ACADEMIC)
    held = {
        "no visas": [],
        "ResearcherStatus": [world.researcher_status()],
        "grant for the dataset": [world.committee_visa(dataset_id, grant)],
        "grant for another dataset": [world.committee_visa(OTHER, world.grant(OTHER, ACADEMIC))],
        "expired grant for the dataset": [
            world.committee_visa(dataset_id, grant, now=int(time.time()) - 7200, lifetime=3600)
        ],
        "grant conditioned on ResearcherStatus, with it": [
            world.researcher_status(),
            world.committee_visa(dataset_id, grant, conditions=NEEDS_RESEARCHER),
        ],
        "grant conditioned on ResearcherStatus, without it": [
            world.committee_visa(dataset_id, grant, conditions=NEEDS_RESEARCHER)
        ],
    }[visas]
    return world.identity(held)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("visas", VISAS)
def test_access_level_and_visas_decide_the_granularity(world: World, level: str, visas: str) -> None:
    expected, why = EXPECTED[visas][LEVELS.index(level)]
    identity = passport_of(world, visas, level)
    decision = world.policy.granularity(identity, world.dataset(level, level))
    assert decision.granularity is expected, decision.reason
    assert why in decision.reason, decision.reason


@pytest.mark.parametrize(
    ("visas", "refusal"),
    [
        ("expired grant for the dataset", "expired"),
        ("grant conditioned on ResearcherStatus, without it", "conditions are not met"),
    ],
)
def test_a_visa_that_does_not_count_says_why(world: World, visas: str, refusal: str) -> None:
    identity = passport_of(world, visas, DATASET)
    assert identity is not None
    assert identity.visas_of_type(CONTROLLED_ACCESS_GRANTS) == []
    assert any(refusal in reason for reason in identity.rejected_visas), identity.rejected_visas


# -- committee grants ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grant", "expected", "why"),
    [
        ("active", R, "ControlledAccessGrants visa for this dataset"),
        ("revoked", C, "ResearcherStatus visa without grant"),
        ("expired", C, "ResearcherStatus visa without grant"),
    ],
)
def test_a_committee_grant_counts_while_it_is_neither_revoked_nor_expired(
    world: World, grant: str, expected: Granularity, why: str
) -> None:
    grant_id = world.grant(DATASET, ACADEMIC, revoked=grant == "revoked")
    timing = {"now": int(time.time()) - 7200, "lifetime": 3600} if grant == "expired" else {}
    identity = world.identity([world.researcher_status(), world.committee_visa(DATASET, grant_id, **timing)])
    decision = world.policy.granularity(identity, world.dataset(DATASET, "controlled"))
    assert decision.granularity is expected
    assert why in decision.reason
    assert decision.grants == ((grant_id,) if grant == "active" else ())


# -- consent ---------------------------------------------------------------------------------------------

SERVED_WHOLE, WITHOUT_THEM = "served whole", "served without them"


@pytest.mark.parametrize(
    ("consent", "purpose", "expected"),
    [
        ("full", "academic", SERVED_WHOLE),
        ("full", "commercial", SERVED_WHOLE),
        ("narrowed NCU", "academic", SERVED_WHOLE),
        ("narrowed NCU", "commercial", WITHOUT_THEM),
        ("narrowed NCU", "academic and commercial", WITHOUT_THEM),  # every grant relied on must allow them
        ("narrowed NCU", "unknown (another issuer's grant id)", WITHOUT_THEM),
        ("withdrawn, shared file being rewritten", "academic", "refused: being re-derived"),
        ("withdrawn, alone in the file", "academic", "refused: only data of participants who withdrew"),
    ],
)
def test_consent_decides_who_a_served_file_leaves_out(world: World, consent: str, purpose: str, expected: str) -> None:
    """A file of two people, ``them`` and someone with full consent, read under committee grants."""
    dataset_id = f"consent-{uuid.uuid4().hex[:8]}"
    world.dataset(dataset_id, "controlled")
    grants = {
        "academic": [world.grant(dataset_id, ACADEMIC)],
        "commercial": [world.grant(dataset_id, COMMERCIAL)],
        "academic and commercial": [world.grant(dataset_id, ACADEMIC), world.grant(dataset_id, COMMERCIAL)],
        "unknown (another issuer's grant id)": [str(uuid.uuid4())],
    }[purpose]
    alone = consent == "withdrawn, alone in the file"
    row = _file(
        world,
        dataset_id,
        them=("withdrawn" if consent.startswith("withdrawn") else "active", ["NCU"] if "NCU" in consent else []),
        others=0 if alone else 1,
        status="rederiving" if "rewritten" in consent else "available",
    )
    try:
        excluded = world.policy.check_object(row, grants)
    except PermissionDenied as error:
        assert expected.startswith("refused"), error.message
        assert expected.removeprefix("refused: ") in error.message
        return
    assert expected == (WITHOUT_THEM if excluded == {"them"} else SERVED_WHOLE if not excluded else str(excluded))


@pytest.mark.parametrize(
    ("consent", "purpose", "hidden"),
    [
        ("full", "commercial", set()),
        ("narrowed NCU", "academic", set()),
        ("narrowed NCU", "commercial", {"them"}),
        ("narrowed NCU", "none (registered researcher, counts only)", {"them"}),
    ],
)
def test_consent_decides_who_beacon_answers_leave_out(
    world: World, consent: str, purpose: str, hidden: set[str]
) -> None:
    dataset_id = f"beacon-{uuid.uuid4().hex[:8]}"
    dataset = world.dataset(dataset_id, "controlled")
    _file(world, dataset_id, them=("active", ["NCU"] if "NCU" in consent else []), others=1, status="available")
    visas = [world.researcher_status()]
    if purpose != "none (registered researcher, counts only)":
        grant = world.grant(dataset_id, ACADEMIC if purpose == "academic" else COMMERCIAL)
        visas.append(world.committee_visa(dataset_id, grant))
    decision = world.policy.granularity(world.identity(visas), dataset)
    assert world.policy.hidden_people(dataset_id, decision) == hidden


def _file(world: World, dataset_id: str, *, them: tuple[str, list[str]], others: int, status: str) -> DataObject:
    """A stored file of ``dataset_id`` holding ``them`` (consent status, narrowing) and ``others`` people."""
    object_id = f"{dataset_id}.vcf.gz"
    with world.database.session() as session:
        status_of_them, narrowing = them
        people = [
            Participant(
                dataset_id=dataset_id,
                pseudonym="them",
                source_key="them",
                consent_status=status_of_them,
                consent_restrictions=narrowing,
            )
        ]
        people += [
            Participant(dataset_id=dataset_id, pseudonym=f"other-{n}", source_key=f"o{n}") for n in range(others)
        ]
        session.add_all(people)
        row = DataObject(
            id=object_id, dataset_id=dataset_id, name=object_id, htsget_id=dataset_id, format="VCF", size=1,
            md5="0" * 32, sha256="0" * 64, source_sha256=uuid.uuid4().hex * 2, blob_key="b", mime_type="x",
            status=status,
        )  # fmt: skip
        session.add(row)
        session.flush()
        session.add_all(ObjectParticipant(object_id=object_id, participant_id=person.id) for person in people)
    return row
