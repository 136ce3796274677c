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


#: Beacon entries whose ids name one person or what was taken from them.
PERSONAL_ENTRIES = frozenset({"individuals", "biosamples", "runs", "analyses"})
#: Why a dataset was not consulted for such a lookup, told to the caller.
LOOKUP_NEEDS_RECORDS = (
    "looking up a person, biosample, run or analysis by its id needs record access to this dataset: whether "
    "someone is in it is not shown at yes/no or count level"
)


def needed_to_look_up(entry_path: str) -> Granularity:
    """The least access under which ``/{entry_path}/{id}`` (and what hangs below it) is answered at all.

    Whether ``/individuals/{id}`` exists says whether that person is in the dataset: the membership that
    yes/no and count answers must not reveal (an anonymous caller learnt it from ``exists``).  So ids of
    people and of their samples, runs and analyses are looked up only with record access; ids of variants,
    datasets and cohorts stay answerable at every level.
    """
    return Granularity.RECORD if entry_path in PERSONAL_ENTRIES else Granularity.BOOLEAN
