"""Validates documents against the local Beacon v2 copy, its absolute ``$ref`` URLs mapped to spec/beacon-v2."""

from __future__ import annotations

import json
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
    return Draft202012Validator({"$ref": UPSTREAM + relative}, registry=_registry())


def assert_valid(document: Any, relative: str) -> None:
    errors = sorted(validator(relative).iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5])


def framework(name: str) -> str:
    return f"framework/json/responses/{name}.json"


def model(entity: str) -> str:
    """The spec's dereferenced copy: the genomicVariations schema points at VRS on w3id.org otherwise."""
    return f"bin/deref_schemas/{entity}/defaultSchema.json"
