"""Identifier rules, in one place, because ids travel into URLs, file names and SQL.

Keeping them to a small alphabet is what makes path tricks (``../``, ``%2F``, NUL) impossible further
down: a value that passes here is safe as a path segment everywhere.
"""

from __future__ import annotations

import re

from genoshare.errors import InvalidInput

DATASET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: Object names are file names: dots are allowed, but never a leading dot or two in a row.
OBJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*$")


def check_dataset_id(value: str) -> str:
    if not DATASET_ID.fullmatch(value):
        raise InvalidInput(
            f"invalid dataset id {value!r}: use 1-64 letters, digits, '_' or '-', starting with a letter or digit"
        )
    return value


def check_object_name(value: str) -> str:
    if len(value) > 200 or not OBJECT_NAME.fullmatch(value):
        raise InvalidInput(f"invalid object name {value!r}: use a plain file name (letters, digits, '.', '_', '-')")
    return value


def object_id(dataset_id: str, name: str) -> str:
    """DRS id of a file: readable, unique (dataset ids have no dots) and URL-safe."""
    return f"{check_dataset_id(dataset_id)}.{check_object_name(name)}"


def is_wellformed_id(value: str) -> bool:
    """Whether ``value`` could name a dataset or an object; anything else is unknown without a lookup."""
    dataset, _, name = value.partition(".")
    return bool(DATASET_ID.fullmatch(dataset)) and (not name or bool(OBJECT_NAME.fullmatch(name)))
