"""Who an answer was about, compactly: a set of sample numbers as a base64 roaring bitmap.

Audit entries stay small even when an answer covers a whole cohort (runs of numbers compress to a few bytes),
and the usage report can still tell, for one participant, whether an answer included them.
"""

from __future__ import annotations

import base64
import binascii

from pyroaring import BitMap


def encode_people(numbers: BitMap) -> str:
    compact = BitMap(numbers)
    compact.run_optimize()  # runs of consecutive numbers as (start, length): a whole cohort in a few bytes
    return base64.b64encode(compact.serialize()).decode("ascii")


def decode_people(text: str) -> BitMap:
    """The sample numbers; an empty set for a value that is not one (never a reason to fail a report)."""
    try:
        return BitMap.deserialize(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError, TypeError):
        return BitMap()
