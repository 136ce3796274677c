"""Validates documents against the local Beacon v2 copy, its absolute ``$ref`` URLs mapped to spec/beacon-v2."""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from support import SPEC

BEACON = SPEC / "beacon-v2"
UPSTREAM = "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/"
MODEL = "models/json/beacon-v2-default-model"


@cache
def _registry() -> Registry:
    resources = []
    for root in ("framework/json", "models/json", "bin/deref_schemas"):
        for path in (BEACON / root).rglob("*.json"):
            if "examples" in path.parts:
                continue
            document = json.loads(path.read_text())
            uri = UPSTREAM + path.relative_to(BEACON).as_posix()
            resources.append((uri, Resource.from_contents(document, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


@cache
def validator(relative: str) -> Draft202012Validator:
    """Formats are checked too: a ``date-time`` without a zone is not RFC 3339 (needs rfc3339-validator)."""
    return Draft202012Validator(
        {"$ref": UPSTREAM + relative}, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def assert_valid(document: Any, relative: str) -> None:
    errors = sorted(validator(relative).iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5])


def framework(name: str) -> str:
    return f"framework/json/responses/{name}.json"


def model(entity: str) -> str:
    """The spec's dereferenced copy: the genomicVariations schema points at VRS on w3id.org otherwise."""
    return f"bin/deref_schemas/{entity}/defaultSchema.json"


#: The response document each granularity calls for (the spec's endpoints.json, per entry type).
BY_GRANULARITY = {
    "boolean": "beaconBooleanResponse",
    "count": "beaconCountResponse",
    "record": "beaconResultsetsResponse",
}
RESULT_SETS = "framework/json/responses/sections/beaconResultsets.json"
#: Default-model schema of each entry path's records.
MODELS = {
    "g_variants": "genomicVariations",
    "individuals": "individuals",
    "biosamples": "biosamples",
    "runs": "runs",
    "analyses": "analyses",
    "datasets": "datasets",
    "cohorts": "cohorts",
}


def assert_zoned_date_times(document: Any) -> None:
    """Every ``...DateTime`` value is an RFC 3339 date-time with its zone (checked here, not only by the
    schemas' ``format``, which jsonschema skips silently without the rfc3339-validator package)."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key.endswith("DateTime") and isinstance(value, str):
                assert datetime.fromisoformat(value).utcoffset() is not None, f"{key}: {value!r} has no zone"
            assert_zoned_date_times(value)
    elif isinstance(document, list):
        for value in document:
            assert_zoned_date_times(value)


def assert_answer(body: dict[str, Any], entry: str) -> None:
    """An entry answer is valid for the granularity it says it returned, and says the same thing everywhere.

    Beyond the schemas: no records below record level; a total only when every consulted dataset gave a
    count, and then it adds up; ``exists`` is what the datasets said; each result set's level is its dataset's.
    """
    assert_zoned_date_times(body)
    returned = body["meta"]["returnedGranularity"]
    if entry in ("datasets", "cohorts"):
        assert_valid(body, framework("beaconCollectionsResponse"))
        for record in body["response"]["collections"]:
            assert_valid(record, model(MODELS[entry]))
        return
    assert_valid(body, framework(BY_GRANULARITY[returned]))
    notes = body["info"]["datasets"]
    consulted = [note for note in notes if note["consulted"]]
    levels = {note["returnedGranularity"] for note in consulted}
    expected = "record" if "record" in levels else "count" if levels and levels <= {"count", "record"} else "boolean"
    assert returned == expected, (returned, notes)
    assert body["responseSummary"]["exists"] == any(note["exists"] for note in consulted)
    skipped = [note["id"] for note in notes if not note["consulted"]]
    assert body["info"].get("notConsulted", {}).get("datasets", []) == skipped
    for note in notes:
        assert note["consulted"] or (note["reason"] and note["toGetMore"]), note
    sets = body.get("response", {}).get("resultSets", [])
    if "response" in body:
        assert_valid(body["response"], RESULT_SETS)
    by_id = {note["id"]: note for note in notes}
    for result_set in sets:
        assert result_set["info"] == by_id[result_set["id"]]
        assert result_set["info"]["returnedGranularity"] in ("count", "record")
        if result_set["info"]["returnedGranularity"] != "record":
            assert result_set["results"] == []
        for record in result_set["results"]:
            assert_valid(record, model(MODELS[entry]))
    if levels and levels <= {"count", "record"}:
        if body["meta"]["receivedRequestSummary"].get("includeResultsetResponses", "HIT") in ("ALL", "HIT"):
            assert body["responseSummary"]["numTotalResults"] == sum(rs["resultsCount"] for rs in sets)
    else:
        assert "numTotalResults" not in body["responseSummary"]
