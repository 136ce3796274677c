"""A researcher's whole journey in a real Chromium against ``genoshare serve``: sign in at the broker, find
the cohort, check the purpose, request access with a document, the committee member approves it in their
inbox with a note, and the researcher downloads a region.

Every page on the way is screenshotted and checked by axe-core; the downloaded region is read by bcftools.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pysam
import pytest

from genoshare.demo.setup import COHORT_DATASET

from browser import Tab, check_page, keyboard_walk
from portal_support import PortalNode

pytestmark = pytest.mark.slow
HTSGET = str(Path(sys.executable).parent / "htsget")


def test_researcher_finds_requests_and_downloads(
    portal_node: PortalNode, tab: Callable[..., Tab], tmp_path: Path
) -> None:
    researcher = tab()
    page = researcher.page
    # Anonymous: the catalogue says the cohort has people, without a number.
    page.goto(f"{portal_node.url}/portal/datasets")
    cohort = page.locator(f"section[aria-labelledby='ds-{COHORT_DATASET}']")
    assert "Some (the exact number needs more access)" in cohort.locator(".count").inner_text()
    assert "may be used only by not-for-profit organisations" in cohort.inner_text(), "NPU explained in words"
    check_page(researcher, "catalogue-anonymous")
    # An anonymous variant search: the controlled cohort is named as not asked, with why, never as a "no".
    page.goto(f"{portal_node.url}/portal/discover?chromosome=20&position=153&reference=&alternate=")
    not_asked = page.locator(".not-consulted").inner_text()
    assert "Synthetic cohort" in not_asked and "anonymous callers get no answer" in not_asked
    assert page.locator("tr", has_text="Synthetic cohort").count() == 0
    check_page(researcher, "discover-anonymous")

    portal_node.sign_in(researcher, "researcher", "/portal/datasets")
    count = cohort.locator(".count").inner_text().strip()
    assert count == "100", f"a registered researcher sees the cohort's count, not {count!r}"
    check_page(researcher, "catalogue-researcher")

    # Discovery: a phenotype from the suggestions, answered per dataset at this researcher's level.
    page.get_by_role("link", name="Discover").click()
    options = page.locator("#term-list option").evaluate_all("els => els.map(e => e.value)")
    assert "HP:0001250" in options, "the node's filtering terms are suggested"
    page.fill("#terms", "HP:0001250")
    page.get_by_role("button", name="Search").click()
    row = page.locator("tr", has_text="Synthetic cohort")
    assert "found" in row.locator(".answer").inner_text()
    check_page(researcher, "discover-researcher")

    # The request: check the purpose first (no JavaScript: the form is re-rendered), then send it.
    page.goto(f"{portal_node.url}/portal/datasets")
    cohort.get_by_role("link", name="Request access").click()
    check_page(researcher, "request-form")
    page.check("#purpose-HMB")
    page.check("#st-for_profit")
    page.fill("#project_title", "Seizure genetics")
    page.fill("#institution", "Demo University")
    page.fill("#country", "GB")
    page.select_option("#sector", "academic")
    page.get_by_role("button", name="Check my purpose").click()
    result = page.locator("#check-result").locator("xpath=..")
    assert "Not allowed by the consent" in result.inner_text(), "NPU refuses a for-profit requester"
    check_page(researcher, "request-check-deny")
    page.uncheck("#st-for_profit")
    page.get_by_role("button", name="Check my purpose").click()
    assert "Allowed by the consent" in page.locator("#check-result").locator("xpath=..").inner_text()
    ethics = tmp_path / "ethics-approval.pdf"
    ethics.write_bytes(b"%PDF-1.4\n% a stand-in ethics approval\n")
    page.set_input_files("#documents", str(ethics))
    page.get_by_role("button", name="Send the request").click()
    assert page.get_by_text("Your request was sent.").is_visible()
    assert page.get_by_text("Waiting for the committee").is_visible()
    request_id = page.url.rsplit("/", 1)[1]
    with page.expect_download() as download:
        page.get_by_role("link", name="ethics-approval.pdf").click()
    assert Path(download.value.path()).read_bytes() == ethics.read_bytes(), "the document reads back as uploaded"
    stored = list((portal_node.data_dir / "objects" / "documents").rglob("*.c4gh"))
    assert stored and all(b"stand-in ethics" not in path.read_bytes() for path in stored), "stored encrypted"
    check_page(researcher, "request-sent")

    # The committee member signs in at the broker in their own browser, finds it in the inbox, approves.
    member = tab()
    portal_node.sign_in(member, "committee", "/portal/committee")
    member.page.get_by_role("link", name="Seizure genetics").click()
    assert member.page.get_by_role("link", name="ethics-approval.pdf").is_visible(), "the committee sees the document"
    member.page.get_by_label("Note or conditions for the researcher (optional)").fill("No attempt to re-identify.")
    member.page.get_by_role("button", name="Approve").click()
    assert member.page.get_by_text("Approved: demo-cohort.").is_visible()
    assert request_id in member.page.url

    page.get_by_role("link", name="My requests").click()
    assert page.locator("tr", has_text="Seizure genetics").get_by_text("Approved").is_visible()
    page.get_by_role("link", name="Seizure genetics").click()
    decision = page.locator("section", has_text="Decision:").inner_text()
    assert "Approved" in decision and "No attempt to re-identify." in decision, "the committee's note reaches them"
    check_page(researcher, "request-approved")
    page.get_by_role("link", name="My data").click()
    check_page(researcher, "downloads")
    stops = keyboard_walk(page, steps=80)
    assert any(stop["text"] == "Download my passport" for stop in stops), "downloads reachable by keyboard"
    with page.expect_download() as download:
        page.get_by_role("link", name="Download my passport").click()
    passport = Path(download.value.path()).read_text().strip()
    with page.expect_download() as download:
        page.get_by_role("link", name="JSON").first.click()
    manifest = json.loads(Path(download.value.path()).read_text())
    files = {row["name"]: row for row in manifest["files"]}
    vcf = files["cohort.vcf.gz"]
    assert vcf["drs_uri"].startswith("drs://") and len(vcf["sha256"]) == 64 and vcf["size"] > 0
    # The command the page shows, run as shown, with a region added.
    command = page.locator("pre", has_text="htsget --bearer-token").first.inner_text().splitlines()[0]
    assert command.startswith('htsget --bearer-token "$PASSPORT"') and vcf["htsget_url"] in command
    region = tmp_path / "region.vcf.gz"
    region_options = ["-r", "20", "-s", "0", "-e", "500000", "-O", str(region)]
    ran = subprocess.run(
        [HTSGET, "--bearer-token", passport, "--format", "VCF", *region_options, vcf["htsget_url"]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    listed = subprocess.run(["bcftools", "view", "-H", str(region)], capture_output=True, text=True, check=False)
    assert listed.returncode == 0 and listed.stdout.strip(), listed.stderr
    with pysam.VariantFile(str(region)) as variants:
        positions = [record.pos for record in variants]
    # htsget answers in whole compressed blocks: a few records past the region's end may come with it.
    assert positions and min(positions) < 500_000 and max(positions) < 1_000_000, "the region, not the 2 Mb cohort"

    # The researcher's own sign-in now answers at record level: no passport swap was needed.
    page.goto(f"{portal_node.url}/portal/discover?terms=HP:0001250")
    assert "Full records" in page.locator("tr", has_text="Synthetic cohort").inner_text()
