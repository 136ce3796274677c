"""A participant's journey in a real Chromium: open the link, see who used the data, narrow, widen, withdraw.

The researcher's side runs over the node's HTTP API (request, approval, the node-signed passport, Beacon),
so the participant sees a real use, and the researcher's Beacon count drops after the withdrawal.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pysam
import pytest
from sqlalchemy import select

from genoshare.datasets.service import NewDataset
from genoshare.demo.setup import COHORT_DATASET, demo_cohort
from genoshare.node import Node, build_datasets, build_ingestor
from genoshare.settings import load_settings
from genoshare.store.models import Participant

from browser import Tab, check_page, keyboard_walk
from portal_support import LINK, PortalNode, issue_link
from processes import run_cli
from support import pseudonyms_by_source

pytestmark = pytest.mark.slow

PROJECT = "Ancestry-free diabetes risk scores"


def participants(portal_node: PortalNode) -> list[Participant]:
    node = Node.open(load_settings(portal_node.data_dir))
    try:
        with node.database.sessions() as session:
            return list(
                session.scalars(
                    select(Participant).where(Participant.dataset_id == COHORT_DATASET).order_by(Participant.id)
                )
            )
    finally:
        node.close()


def approved_passport(portal_node: PortalNode) -> str:
    """A researcher requests access over the API, the committee approves: the node-signed passport."""
    demo = portal_node.demo
    researcher = {"Authorization": f"Bearer {demo.researcher_passport_without_grant}"}
    committee = {"Authorization": f"Bearer {demo.committee_passport_file.read_text().strip()}"}
    with httpx.Client(base_url=portal_node.url, timeout=30) as client:
        created = client.post(
            "/governance/requests",
            headers=researcher,
            json={
                "datasets": [COHORT_DATASET],
                "purpose": {"primary": "HMB"},
                "project_title": PROJECT,
                "institution": "University of Somewhere",
            },
        )
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        approved = client.post(f"/governance/requests/{request_id}/approve", headers=committee, json={})
        assert approved.status_code == 200, approved.text
        passport = client.get("/governance/passport", headers=researcher)
        assert passport.status_code == 200, passport.text
        return str(passport.json()["passport"])


def beacon_count(portal_node: PortalNode, passport: str) -> int:
    answer = httpx.post(
        f"{portal_node.url}/api/individuals",
        headers={"Authorization": f"Bearer {passport}"},
        json={"meta": {"apiVersion": "v2.0"}, "query": {"requestedGranularity": "count"}},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return int(answer.json()["responseSummary"]["numTotalResults"])


def test_a_participant_sees_a_use_then_withdraws_and_the_count_drops(
    portal_node: PortalNode, tab: Callable[..., Tab], tmp_path: Path
) -> None:
    passport = approved_passport(portal_node)
    before = beacon_count(portal_node, passport)
    person = next(p for p in participants(portal_node) if p.consent_status == "active")
    link, secret = issue_link(portal_node, COHORT_DATASET, person.pseudonym)

    phone = tab(phone=True)
    page = phone.page
    page.goto(link)
    assert page.url == f"{portal_node.url}/portal/consent", "the link's address is left at once"
    assert secret not in page.url
    page.go_back()
    assert secret not in page.url, "going back does not lead to the link: it is not in the history"
    page.go_forward()
    assert page.url == f"{portal_node.url}/portal/consent"
    assert page.get_by_role("heading", name="Your consent", level=1).is_visible()
    assert page.get_by_text(person.pseudonym, exact=True).is_visible()
    # What the consent allows, in sentences, and the use of the researcher's approved project.
    assert page.get_by_text("The data may be used for any kind of research").is_visible()
    assert page.get_by_text("The data may be used only by not-for-profit organisations.").is_visible()
    assert page.get_by_text(f"{PROJECT} (University of Somewhere)").is_visible()
    assert page.get_by_text("health or medical research").first.is_visible()
    assert page.get_by_text(re.compile(r"Counted in \d+ search answer")).first.is_visible()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways on a phone ({width}px wide)"
    check_page(phone, "participant-consent-phone")

    # Narrow (no commercial use), then widen it again.
    page.get_by_label("Not for commercial use").check()
    page.get_by_role("button", name="Save my choice").click()
    assert page.get_by_text("Your choice is saved.").is_visible()
    assert page.get_by_text("Your own choice:").is_visible()
    check_page(phone, "participant-narrowed-phone")
    page.get_by_role("button", name=re.compile("Allow again: The data may not be used for commercial")).click()
    assert page.get_by_text("Your own choice:").count() == 0

    # Withdraw: a confirmation first, which refuses to act without the tick.
    desktop = tab()
    desktop.page.goto(link)
    page = desktop.page
    page.get_by_role("link", name="Withdraw my consent…").click()
    assert page.url.endswith("/portal/consent/withdraw")
    check_page(desktop, "participant-withdraw-confirm")
    page.get_by_role("button", name="Withdraw my consent").click()
    assert page.get_by_text("Tick the box to confirm").is_visible()
    assert beacon_count(portal_node, passport) == before, "nothing happened without the confirmation"
    stops = keyboard_walk(page)
    assert any(stop["text"] == "Withdraw my consent" for stop in stops), stops
    page.get_by_label("I understand, and I want to withdraw my consent.").check()
    page.get_by_role("button", name="Withdraw my consent").click()
    assert page.get_by_role("heading", name="Your consent is withdrawn").is_visible(), page.content()[:2000]
    assert page.get_by_text("Receipt number").is_visible()
    check_page(desktop, "participant-receipt")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download this receipt").click()
    saved = tmp_path / "receipt.html"
    download_info.value.save_as(saved)
    receipt = saved.read_text()
    assert "Receipt: your consent is withdrawn" in receipt and person.pseudonym in receipt
    assert re.search(r"UTC: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", receipt), "the receipt has the time"
    assert "left out of every answer" in receipt

    assert beacon_count(portal_node, passport) == before - 1, "the researcher's count drops by the person"
    page.goto(f"{portal_node.url}/portal/consent")
    assert page.get_by_text("Withdrawn", exact=True).is_visible()


def test_one_link_reaches_the_persons_records_in_every_dataset(
    portal_node: PortalNode, tab: Callable[..., Tab]
) -> None:
    node = Node.open(load_settings(portal_node.data_dir))
    try:
        build_datasets(node).create(
            NewDataset(
                id="demo-biobank",
                title="Demo biobank",
                custodian="genoshare demo",
                access_level="controlled",
                duo_codes=["HMB"],
            )
        )
        copy = portal_node.data_dir.parent / "biobank.vcf.gz"
        shutil.copy(demo_cohort() / "cohort.vcf.gz", copy)
        build_ingestor(node).ingest("demo-biobank", [copy])
        with pysam.VariantFile(str(copy)) as cohort:
            names = sorted(cohort.header.samples)
        found = {dataset: pseudonyms_by_source(node, names, dataset) for dataset in (COHORT_DATASET, "demo-biobank")}
        with node.database.sessions() as session:
            active = set(session.scalars(select(Participant.pseudonym).where(Participant.consent_status == "active")))
    finally:
        node.close()
    person = next(name for name in names if all(found[dataset].get(name) in active for dataset in found))
    pseudonyms = {dataset: found[dataset][person] for dataset in found}
    result = run_cli(
        "consent",
        "link",
        COHORT_DATASET,
        pseudonyms[COHORT_DATASET],
        "--also",
        f"demo-biobank:{pseudonyms['demo-biobank']}",
        "--data-dir",
        str(portal_node.data_dir),
        env={"GENOSHARE_PUBLIC_URL": portal_node.url, "COLUMNS": "300"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = LINK.search(result.stdout)
    assert found, result.stdout
    person = tab()
    person.page.goto(found.group(1))
    page = person.page
    assert page.get_by_text("Your data is in 2 dataset(s) at this node.", exact=False).is_visible()
    assert page.get_by_role("heading", name="Synthetic cohort (msprime), 100 individuals").is_visible()
    assert page.get_by_role("heading", name="Demo biobank").is_visible()
    for pseudonym in pseudonyms.values():
        assert page.get_by_text(pseudonym, exact=True).is_visible()
    assert page.get_by_text("The data may be used only for health, medical or biomedical research.").is_visible()
    check_page(person, "participant-two-datasets")
