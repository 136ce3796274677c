"""The steward's pages and the access report in a real Chromium: files, participants, the audit chain, equity."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from genoshare.demo.setup import COHORT_DATASET

from browser import Tab, check_page, keyboard_walk
from portal_support import PortalNode

pytestmark = pytest.mark.slow

REQUESTS = [
    ("KE", "academic", {"primary": "HMB"}),
    ("KE", "public", {"primary": "HMB"}),
    ("GB", "commercial", {"primary": "HMB", "for_profit": True}),  # NPU: rejected by the DUO match at once
]


def submit(portal_node: PortalNode, country: str, sector: str, purpose: dict[str, object]) -> dict[str, object]:
    response = httpx.post(
        f"{portal_node.url}/governance/requests",
        headers={"Authorization": f"Bearer {portal_node.demo.researcher_passport_without_grant}"},
        json={
            "datasets": [COHORT_DATASET],
            "purpose": purpose,
            "project_title": f"Study from {country}",
            "institution": f"Institute in {country}",
            "country": country,
            "sector": sector,
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_the_steward_sees_the_dataset_sets_its_terms_and_reads_the_access_report(
    portal_node: PortalNode, tab: Callable[..., Tab], tmp_path: Path
) -> None:
    made = [submit(portal_node, *item) for item in REQUESTS]
    assert [m["status"] for m in made] == ["pending", "pending", "rejected"]

    steward = tab()
    portal_node.sign_in(steward, "steward", next="/portal/steward")
    page = steward.page
    assert page.get_by_text("Verified").is_visible(), "the audit chain verifies"
    check_page(steward, "steward-home")

    page.get_by_role("link", name="Synthetic cohort (msprime), 100 individuals", exact=True).click()
    assert page.get_by_role("heading", name="Files").is_visible()
    assert page.get_by_text(f"{COHORT_DATASET}.cohort.vcf.gz").first.is_visible()
    assert page.get_by_role("heading", name="Ingest history").is_visible()
    assert page.locator("table").nth(1).locator("tbody tr").count() == 100, "every participant, by pseudonym"
    assert page.get_by_text("None: every file is served as it should be.").is_visible()
    check_page(steward, "steward-dataset")

    page.get_by_label("Licence", exact=True).fill("CC-BY-4.0")
    page.get_by_label("Data access agreement").fill("I will not try to re-identify anyone.")
    page.get_by_label("How to cite the dataset").fill("genoshare demo cohort (2026), doi:10.0000/demo")
    page.get_by_role("button", name="Save the terms").click()
    assert page.get_by_text("The dataset's terms are saved.").is_visible()
    page.goto(f"{portal_node.url}/portal/datasets")
    assert page.get_by_text("genoshare demo cohort (2026), doi:10.0000/demo").is_visible(), "the catalogue cites it"

    page.goto(f"{portal_node.url}/portal/reports/{COHORT_DATASET}")
    chart = page.get_by_role("img", name="Requests and approvals by country")
    assert chart.is_visible()
    assert chart.locator("rect").count() >= 4, "a bar for requests and one for approvals per country"
    ke = page.locator("table").first.locator("tr", has_text="KE")
    assert ke.locator("td").nth(1).inner_text() == "2"
    assert page.get_by_text("the consent of demo-cohort does not permit this purpose (1)").is_visible()
    check_page(steward, "steward-access-report")
    stops = keyboard_walk(page)
    assert any(stop["text"] == "Download the report as CSV" for stop in stops)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the report as CSV").click()
    saved = tmp_path / "report.csv"
    download.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert sorted((r["country"], r["sector"], r["status"]) for r in rows) == [
        ("GB", "commercial", "rejected"),
        ("KE", "academic", "pending"),
        ("KE", "public", "pending"),
    ]


def test_a_committee_member_reads_the_report_but_not_the_stewards_pages(
    portal_node: PortalNode, tab: Callable[..., Tab]
) -> None:
    member = tab(phone=True)
    portal_node.sign_in(member, "committee", next=f"/portal/reports/{COHORT_DATASET}")
    assert member.page.get_by_role("heading", name="By country").is_visible()
    width = member.page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375, f"the report scrolls sideways on a phone ({width}px)"
    check_page(member, "committee-access-report-phone")
    response = member.page.goto(f"{portal_node.url}/portal/steward")
    assert response is not None and response.status == 403
