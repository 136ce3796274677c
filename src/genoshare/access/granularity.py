"""How much of a dataset a caller may see, ordered so that ``>=`` reads as "at least"."""

from __future__ import annotations

from enum import IntEnum


class Granularity(IntEnum):
    NONE = 0
    BOOLEAN = 1
    COUNT = 2
    RECORD = 3

    @property
    def beacon(self) -> str:
        """The name Beacon v2 responses use (``returnedGranularity``)."""
        return {0: "boolean", 1: "boolean", 2: "count", 3: "record"}[self.value]


class AccessLevel:
    PUBLIC = "public"
    REGISTERED = "registered"
    CONTROLLED = "controlled"
    ALL = (PUBLIC, REGISTERED, CONTROLLED)
