"""The clinical pages in a real Chromium: variant lookup, the participant's matchmaking choice, a steward's match.

The demo node is served with one Matchmaker Exchange peer configured where nothing listens, so the
steward's match page has a peer to report as unreachable. The demo cohort's consent (GRU, NPU) has no
clinical-care code: nobody is matched until they say yes on their consent page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from genoshare.demo.setup import COHORT_DATASET
from genoshare.node import Node, build_annotations, build_ingestor
from genoshare.settings import load_settings

from browser import Tab, check_page, keyboard_walk
from portal_support import PortalNode
from portal_support import portal_node as start_portal_node
from processes import free_port, run_cli

pytestmark = pytest.mark.slow

LINK = re.compile(r"consent link for \S+: (\S+/consent/[A-Za-z0-9_-]+)")
#: One record of a ClinVar-format release, on a variant of the demo cohort (20:556 A>G).
CLINVAR = """##fileformat=VCFv4.1
##fileDate=2024-05-01
##source=ClinVar
##reference=GRCh38
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO
20\t556\t424242\tA\tG\t.\t.\tCLNDN=Renal_cysts_and_diabetes_syndrome;CLNREVSTAT=reviewed_by_expert_panel;CLNSIG=Likely_pathogenic;GENEINFO=DEMO1:1
"""
#: The sample whose consent page the tests use; their features are HP:0000822 and HP:0003124.
SAMPLE = "GS00001"
#: The GRCh38 mitochondrion (tests/clinical/data/SOURCE.txt): the node's reference genome here.
REFERENCE = Path(__file__).parents[1] / "clinical" / "data" / "chrM.fa"


@pytest.fixture(scope="module")
def portal_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalNode]:
    """The demo node and broker, with a matchmaking peer that is down, and a ClinVar release loaded."""
    root = tmp_path_factory.mktemp("clinical-portal")
    token = root / "down.token"
    token.write_text("a-token-for-a-peer-that-is-down\n")
    peers = [{"name": "Down peer", "base_url": f"http://127.0.0.1:{free_port()}/mme", "token_file": str(token)}]
    env = {"GENOSHARE_MME__PEERS": json.dumps(peers), "GENOSHARE_CLINICAL__REFERENCE_FASTA": str(REFERENCE)}
    with start_portal_node(root, env) as node:
        clinvar = root / "clinvar.vcf"
        clinvar.write_text(CLINVAR)
        opened = Node.open(load_settings(node.data_dir))
        try:  # as ``genoshare annotations load`` does (tests/clinical runs the command itself)
            assert build_annotations(opened).load(clinvar, None, None).records == 1
        finally:
            opened.close()
        yield node


def pseudonym(portal_node: PortalNode, sample: str) -> str:
    node = Node.open(load_settings(portal_node.data_dir))
    try:
        return build_ingestor(node).pseudonymiser.pseudonym(COHORT_DATASET, sample)
    finally:
        node.close()


def consent_link(portal_node: PortalNode, who: str) -> str:
    env = {"GENOSHARE_PUBLIC_URL": portal_node.url, "COLUMNS": "300"}
    result = run_cli("consent", "link", COHORT_DATASET, who, "--data-dir", str(portal_node.data_dir), env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    found = LINK.search(result.stdout)
    assert found, result.stdout
    return found.group(1)


def test_an_anonymous_visitor_looks_a_variant_up_and_is_told_why_there_is_no_count(
    portal_node: PortalNode, tab: Callable[..., Tab]
) -> None:
    visitor = tab()
    page = visitor.page
    page.goto(f"{portal_node.url}/portal/")
    page.get_by_role("link", name="Variant lookup").click()
    expect(page.get_by_role("heading", name="Variant lookup", level=1)).to_be_visible()
    stops = keyboard_walk(page)
    assert any(stop["text"] == "Look up" for stop in stops), "the form's button is reachable by keyboard"
    page.get_by_label("Variant", exact=True).fill("20-556-A-G")
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal/clinical/variants?variant=20-556-A-G*")
    significance = page.locator("table").first
    expect(significance).to_contain_text("Likely pathogenic")
    expect(significance).to_contain_text("Renal cysts and diabetes syndrome")
    expect(significance).to_contain_text("reviewed by expert panel")
    expect(significance).to_contain_text("ClinVar, 2024-05-01")
    expect(page.get_by_text("Gene", exact=True).locator("xpath=following-sibling::dd[1]")).to_have_text("DEMO1")
    # The controlled cohort is not consulted for an anonymous visitor: said so, never shown as "not found".
    cohort = page.locator("table.counts tr", has_text=COHORT_DATASET)
    expect(cohort).to_contain_text('Not consulted for you, so this is not a "no"')
    expect(cohort).not_to_contain_text("Not found")
    check_page(visitor, "clinical-lookup-anonymous")

    # HGVS genomic gives the same variant; an unreadable one is a message on the page, not a crash.
    page.goto(f"{portal_node.url}/portal/clinical/variants?variant=NC_000020.11:g.556A%3EG")
    expect(page.locator("table").first).to_contain_text("Likely pathogenic")
    page.goto(f"{portal_node.url}/portal/clinical/variants?variant=not-a-variant")
    expect(page.get_by_role("alert")).to_contain_text("This is not a variant this node can read")
    # With the reference genome configured, an HGVS deletion is read (left-aligned) and shown with its VRS id.
    page.goto(f"{portal_node.url}/portal/clinical/variants?variant=NC_012920.1:m.309del")
    expect(page.get_by_role("heading", level=2)).to_contain_text("MT-302-AC-A")
    vrs = page.get_by_text("GA4GH VRS id", exact=True).locator("xpath=following-sibling::dd[1]")
    expect(vrs).to_contain_text("ga4gh:VA.")


def test_the_lookup_page_in_french(portal_node: PortalNode, tab: Callable[..., Tab]) -> None:
    french = tab(locale="fr-FR")
    french.page.goto(f"{portal_node.url}/portal/clinical/variants?variant=20-556-A-G")
    expect(french.page.get_by_role("heading", level=1)).to_have_text("Recherche de variant")
    expect(french.page.get_by_role("button", name="Rechercher")).to_be_visible()


def test_a_participant_says_yes_then_no_to_matchmaking_and_the_stewards_match_follows(
    portal_node: PortalNode, tab: Callable[..., Tab]
) -> None:
    who = pseudonym(portal_node, SAMPLE)
    participant = tab()
    participant.page.goto(consent_link(portal_node, who))
    expect(participant.page.get_by_role("heading", name="Your consent", level=1)).to_be_visible()
    matchmaking = participant.page.locator("form.matchmaking")
    expect(matchmaking).to_contain_text("Now: no, unless you say yes.")

    steward = tab()
    portal_node.sign_in(steward, "steward", next="/portal/steward/matchmaking")
    page = steward.page

    def search() -> None:
        page.goto(f"{portal_node.url}/portal/steward/matchmaking")
        page.get_by_label("Term 1").fill("HP:0000822")
        page.get_by_label("Term 2").fill("HP:0003124")
        page.get_by_role("button", name="Find matches").click()
        expect(page.get_by_role("heading", name="At this node")).to_be_visible()

    # Nobody in the cohort allows matchmaking yet.
    search()
    expect(page.get_by_text("No one at this node who allows matchmaking matched this patient.")).to_be_visible()

    matchmaking.get_by_label("Yes, my data may be compared").check()
    matchmaking.get_by_role("button", name="Save my matchmaking choice").click()
    expect(participant.page.locator("form.matchmaking")).to_contain_text("Now: you said yes.")
    check_page(participant, "consent-matchmaking-yes")

    search()
    own = page.locator("section", has=page.get_by_role("heading", name="At this node"))
    first = own.locator("table.matches tbody tr").first
    expect(first).to_contain_text(f"{COHORT_DATASET}/{who}")
    expect(first).to_contain_text("genoshare demo")  # the custodian's contact, not the person
    assert float(first.locator("td.score").inner_text().split()[0]) > 0.5
    # The peer that is down is named, with why it gave nothing.
    peers = page.locator("section", has=page.get_by_role("heading", name="At the peers"))
    expect(peers.get_by_role("heading", name=re.compile("Down peer: could not be reached"))).to_be_visible()
    expect(peers.locator(".peer-failure")).to_contain_text('that is not a "no match"')
    check_page(steward, "steward-matchmaking-results")
    # The match is in the participant's "who used my data", in words.
    participant.page.reload()
    expect(participant.page.locator(".consent-record table")).to_contain_text(
        "Compared with a patient in 1 rare-disease matchmaking search(es)"
    )
    use = participant.page.locator(".consent-record table tbody tr").first
    expect(use).to_contain_text("Rare-disease matchmaking, asked by demo-steward")
    expect(use).to_contain_text("finding a diagnosis for a patient with a rare disease")

    participant.page.locator("form.matchmaking").get_by_label("No, leave my data out").check()
    participant.page.locator("form.matchmaking").get_by_role("button", name="Save my matchmaking choice").click()
    expect(participant.page.locator("form.matchmaking")).to_contain_text("Now: you said no.")
    search()
    expect(page.get_by_text("No one at this node who allows matchmaking matched this patient.")).to_be_visible()
    expect(page.get_by_text(f"{COHORT_DATASET}/{who}")).to_have_count(0)


def test_the_match_form_suggests_the_nodes_terms_and_is_usable_by_keyboard(
    portal_node: PortalNode, tab: Callable[..., Tab], tmp_path: Path
) -> None:
    steward = tab()
    portal_node.sign_in(steward, "steward", next="/portal/steward/matchmaking")
    page = steward.page
    suggested = page.locator("datalist#hpo-terms option").evaluate_all("options => options.map(o => o.value)")
    assert "HP:0000822" in suggested and all(term.startswith("HP:") for term in suggested), suggested
    expect(page.locator("#term-1")).to_have_attribute("list", "hpo-terms")
    stops = keyboard_walk(page)
    assert any(stop["text"] == "Find matches" for stop in stops)
    check_page(steward, "steward-matchmaking-form")
    # Only stewards: a researcher is refused, a visitor is sent to sign in.
    researcher = tab()
    portal_node.sign_in(researcher, "researcher")
    refused = researcher.page.goto(f"{portal_node.url}/portal/steward/matchmaking")
    assert refused is not None and refused.status == 403
    expect(researcher.page.get_by_role("link", name="Matchmaking")).to_have_count(0)
    visitor = tab()
    visitor.page.goto(f"{portal_node.url}/portal/steward/matchmaking")
    assert "/portal/signin" in visitor.page.url
    # A malformed term is said on the page.
    page.get_by_label("Term 1").fill("not a term")
    page.get_by_role("button", name="Find matches").click()
    expect(page.get_by_role("alert")).to_contain_text("features")
