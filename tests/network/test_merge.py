"""Merging peers' answers: only what the Beacon v2 schemas guarantee is read, nothing finer is made up.

The peers here answer with the spec's own example documents (``spec/beacon-v2/.../examples-fullDocuments``),
so the merge is known to work with any implementation that answers as the spec shows; each merged answer is
validated by the spec's response schemas.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from beacon_schemas import BY_GRANULARITY, assert_valid, framework

from genoshare.access.granularity import Granularity
from genoshare.network.about import NodeAbout, about, union_of_terms
from genoshare.network.merge import (
    ANSWERED,
    INVALID,
    TIMEOUT,
    InvalidAnswer,
    NodeAnswer,
    merge,
    read_answer,
)

from support import SPEC

EXAMPLES = SPEC / "beacon-v2" / "framework" / "json" / "responses" / "examples-fullDocuments"
META = {
    "beaconId": "org.example.network",
    "apiVersion": "v2.0.0",
    "returnedSchemas": [{"entityType": "genomicVariation", "schema": "beacon-genomicVariation-v2.0.0"}],
    "receivedRequestSummary": {
        "apiVersion": "v2.0.0",
        "requestedSchemas": [],
        "pagination": {"skip": 0, "limit": 10},
        "requestedGranularity": "record",
    },
}


def example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return document


def node(name: str, document: Any = None, status: str = ANSWERED, reason: str | None = None) -> NodeAnswer:
    result = read_answer(document) if document is not None else None
    return NodeAnswer(
        name, f"https://{name}.example.org", f"https://{name}.example.org/api/g_variants", status, 0.01, reason, result
    )


def records_answer(dataset: str, records: list[dict[str, Any]], total: int) -> dict[str, Any]:
    """A record-level answer as a Beacon v2 node gives it."""
    return {
        "meta": {**META, "returnedGranularity": "record"},
        "responseSummary": {"exists": bool(records), "numTotalResults": total},
        "response": {
            "resultSets": [
                {
                    "id": dataset,
                    "setType": "dataset",
                    "exists": bool(records),
                    "resultsCount": total,
                    "results": records,
                }
            ]
        },
    }


def validate(document: dict[str, Any]) -> None:
    assert_valid(document, framework(BY_GRANULARITY[document["meta"]["returnedGranularity"]]))


def test_the_spec_examples_are_read_for_what_they_guarantee() -> None:
    boolean = read_answer(example("beaconBooleanResponse-example.json"))
    assert (boolean.exists, boolean.granularity, boolean.total) == (True, Granularity.BOOLEAN, None)
    count = read_answer(example("beaconCountResponse-example.json"))
    assert (count.exists, count.granularity, count.total) == (True, Granularity.COUNT, 25355)
    # The spec's minimal result-set example puts resultSets outside ``response``, where the schema does not
    # look: it is read as what the schema guarantees of it, a yes.
    minimal = read_answer(example("beaconResultsetResponse-MIN-example.json"))
    assert (minimal.exists, minimal.granularity, minimal.result_sets) == (True, Granularity.BOOLEAN, [])


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ([], "not a JSON object"),
        ({"responseSummary": {"exists": True}}, "no meta"),
        ({"meta": {}, "responseSummary": {"exists": "yes"}}, "exists"),
        ({"meta": {}, "responseSummary": {"exists": True, "numTotalResults": -3}}, "numTotalResults"),
        ({"meta": {}, "responseSummary": {"exists": True}, "response": {"resultSets": [{"id": "x"}]}}, "resultSets"),
        ({"meta": {}, "responseSummary": {"exists": True}, "response": {"resultSets": "x"}}, "resultSets"),
    ],
)
def test_an_answer_that_breaks_the_schema_is_refused_with_why(document: Any, why: str) -> None:
    with pytest.raises(InvalidAnswer, match=why):
        read_answer(document)


def test_a_declared_level_above_what_was_given_is_not_believed() -> None:
    """A peer saying "count" but giving no total gave a yes/no: the merge must not report a count."""
    document = {**example("beaconBooleanResponse-example.json")}
    document["meta"] = {**document["meta"], "returnedGranularity": "record"}
    assert read_answer(document).granularity == Granularity.BOOLEAN


def test_totals_only_when_every_node_gave_one() -> None:
    counted = node("counting", example("beaconCountResponse-example.json"))
    yes_no = node("yesno", example("beaconBooleanResponse-example.json"))
    merged = merge(META, [counted, yes_no], 2.0, [])
    validate(merged)
    assert merged["meta"]["returnedGranularity"] == "boolean"
    assert "numTotalResults" not in merged["responseSummary"], "a sum without the yes/no node reads as its none"
    both = merge(META, [counted, node("counting-2", example("beaconCountResponse-example.json"))], 2.0, [])
    validate(both)
    assert both["meta"]["returnedGranularity"] == "count"
    assert both["responseSummary"]["numTotalResults"] == 2 * 25355


def test_result_sets_are_passed_on_as_given_and_say_whose_they_are() -> None:
    records = [{"variantInternalId": "20:100:A:G", "variation": {"location": {}}}]
    merged = merge(
        META,
        [
            node("alpha", records_answer("cohort", records, 1)),
            node("beta", example("beaconCountResponse-example.json")),
            node("gamma", None, TIMEOUT, "no answer within 2 s"),
            node("delta", None, INVALID, "not a Beacon v2 answer: no meta"),
        ],
        2.0,
        [],
    )
    validate(merged)
    assert merged["meta"]["returnedGranularity"] == "record"
    [result_set] = merged["response"]["resultSets"]
    assert result_set["results"] == records and result_set["resultsCount"] == 1
    assert result_set["info"]["node"] == {"name": "alpha", "url": "https://alpha.example.org"}
    # beta gave only a total, which is no result set: none is invented for it, nor a total for the whole.
    assert "numTotalResults" in merged["responseSummary"]
    assert merged["responseSummary"]["numTotalResults"] == 1 + 25355
    network = merged["info"]["network"]
    assert network["notAnswered"]["nodes"] == ["gamma", "delta"]
    by_name = {entry["name"]: entry for entry in network["nodes"]}
    assert by_name["gamma"]["status"] == "timeout" and "2 s" in by_name["gamma"]["reason"]
    assert by_name["delta"]["status"] == "invalid"
    assert [h["url"] for h in merged["beaconHandovers"]] == [
        "https://gamma.example.org/api/g_variants",
        "https://delta.example.org/api/g_variants",
    ]


def test_filtering_terms_of_several_nodes_are_one_list_naming_who_offers_each() -> None:
    """A term two nodes offer is listed once, with both nodes and the scopes either gives; a peer whose terms
    have no id is named invalid and adds nothing."""
    example = json.loads((EXAMPLES / "beaconFilteringTermsResponse-example.json").read_text())
    [first, *_] = example["response"]["filteringTerms"]
    terms_of_ours = {"filteringTerms": [{**first, "scopes": ["biosample"]}], "resources": []}
    ours = {"meta": example["meta"], "response": terms_of_ours}
    broken = {"meta": {}, "response": {"filteringTerms": [{"type": "alphanumeric"}]}}
    nodes = [
        NodeAbout.read("filtering_terms", "hub", "https://hub", ANSWERED, 0.1, None, ours),
        NodeAbout.read("filtering_terms", "spec", "https://spec", ANSWERED, 0.1, None, example),
        NodeAbout.read("filtering_terms", "broken", "https://broken", ANSWERED, 0.1, None, broken),
        NodeAbout.read("filtering_terms", "slow", "https://slow", TIMEOUT, 2.0, "no answer within 2 s", None),
    ]
    union = union_of_terms(nodes)
    terms = {term["id"]: term for term in union["filteringTerms"]}
    assert len(terms) == len(example["response"]["filteringTerms"])
    assert terms[first["id"]]["nodes"] == ["hub", "spec"]
    assert set(terms[first["id"]]["scopes"]) == {"biosample", *first.get("scopes", [])}
    document = about("filtering_terms", {**ours, "response": {**ours["response"], **union}}, nodes, 2.0, [])
    assert_valid(document, framework("beaconFilteringTermsResponse"))
    described = {node["name"]: node for node in document["info"]["network"]["nodes"]}
    assert described["broken"]["status"] == INVALID and "filteringTerms" in described["broken"]["reason"]
    assert document["info"]["network"]["notAnswered"]["nodes"] == ["broken", "slow"]
    assert len(union_of_terms(nodes, skip=1, limit=1)["filteringTerms"]) == 1
