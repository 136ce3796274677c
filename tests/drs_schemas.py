"""Validates responses against the DRS 1.5 OpenAPI files in ``spec/drs`` (relative ``$ref``s resolved offline)."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from support import SPEC

DRS = SPEC / "drs" / "openapi" / "components"


@cache
def _registry() -> Registry:
    resources = []
    for path in DRS.rglob("*.yaml"):
        document = yaml.safe_load(path.read_text())
        resources.append((path.as_uri(), Resource.from_contents(document, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


def validator(relative: str, pointer: str = "") -> Draft202012Validator:
    """A validator for the schema at ``components/<relative>`` (optionally a JSON pointer inside it)."""
    uri = (DRS / relative).as_uri()
    return Draft202012Validator({"$ref": f"{uri}#{pointer}"}, registry=_registry())


def assert_valid(document: Any, relative: str, pointer: str = "") -> None:
    errors = sorted(validator(relative, pointer).iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def response_schema(name: str) -> tuple[str, str]:
    return f"responses/{name}.yaml", "/content/application~1json/schema"


__all__ = ["assert_valid", "response_schema", "validator"]
