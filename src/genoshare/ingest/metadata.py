"""De-identification of participant metadata (Phenopacket JSON, TSV rows) before it is stored.

Applied to every record on ingest, whatever its shape, by walking it:

- direct identifiers (names, contact details, national and record numbers) are dropped;
- a date of birth becomes an age (ISO 8601 duration) at a reference date, then is dropped;
- free-text fields are dropped unless the steward whitelists them;
- every other date is shifted by a per-participant offset (stable for that person, different between
  people), so intervals within a person's record stay true while calendar dates no longer match
  hospital records;
- a value that still looks like a direct identifier (``genoshare.ingest.identifiers``: e-mail, phone,
  address, national or record number, a labelled name or birth date) stops the ingest.

Written by hand: the de-identification libraries on PyPI target clinical free text (NLP), not the
structured records a Beacon serves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Any

from genoshare.errors import InvalidInput
from genoshare.ingest.identifiers import find_identifier

DIRECT_IDENTIFIERS = frozenset(
    {
        "name",
        "first_name",
        "last_name",
        "given_name",
        "family_name",
        "surname",
        "full_name",
        "middle_name",
        "email",
        "e_mail",
        "phone",
        "telephone",
        "mobile",
        "fax",
        "address",
        "street",
        "city_address",
        "postcode",
        "post_code",
        "zip",
        "zip_code",
        "ssn",
        "social_security_number",
        "national_id",
        "nhs_number",
        "mrn",
        "medical_record_number",
        "hospital_number",
        "passport_number",
        "insurance_number",
        "ip_address",
    }
)
BIRTH_DATES = frozenset({"date_of_birth", "dob", "birth_date", "birthdate", "born"})
FREE_TEXT = frozenset({"description", "notes", "note", "comment", "comments", "free_text", "remarks", "narrative"})
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})((?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?)$")
MAX_SHIFT_DAYS = 180


def snake(key: str) -> str:
    """``dateOfBirth`` / ``Date of birth`` -> ``date_of_birth``, so both TSV and Phenopacket keys match."""
    key = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key.strip())
    return re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")


def age_between(born: dt.date, on: dt.date) -> str:
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return f"P{max(years, 0)}Y"


def _parse_date(value: str) -> tuple[dt.date, str] | None:
    match = _DATE.match(value.strip())
    if not match:
        return None
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3])), match[4] or ""
    except ValueError:
        return None


class MetadataDeidentifier:
    def __init__(self, secret: bytes, keep_free_text: Iterable[str] = (), reference_date: dt.date | None = None):
        self._secret = secret
        self.keep_free_text = frozenset(snake(key) for key in keep_free_text)
        self.reference_date = reference_date or dt.date.today()

    def shift_days(self, dataset_id: str, participant: str) -> int:
        """A per-person offset in ±1..180 days, never 0, derived from the node secret."""
        digest = hmac.new(self._secret, f"date-shift\0{dataset_id}\0{participant}".encode(), hashlib.sha256).digest()
        magnitude = 1 + int.from_bytes(digest[:4], "big") % MAX_SHIFT_DAYS
        return magnitude if digest[4] & 1 else -magnitude

    def record(self, dataset_id: str, participant: str, record: Mapping[str, Any]) -> dict[str, Any]:
        shift = dt.timedelta(days=self.shift_days(dataset_id, participant))
        cleaned = self._walk(record, shift, path=participant)
        assert isinstance(cleaned, dict)
        return cleaned

    def _walk(self, value: Any, shift: dt.timedelta, path: str) -> Any:
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            derived_age = None
            for key, item in value.items():
                name = snake(str(key))
                if name in DIRECT_IDENTIFIERS or (name in FREE_TEXT and name not in self.keep_free_text):
                    continue
                if name in BIRTH_DATES:
                    parsed = _parse_date(str(item))
                    derived_age = age_between(parsed[0], self.reference_date) if parsed else None
                    continue
                out[key] = self._walk(item, shift, f"{path}.{key}")
            if derived_age and not out.get("age"):
                out["age"] = derived_age
            return out
        if isinstance(value, list):
            return [self._walk(item, shift, f"{path}[{index}]") for index, item in enumerate(value)]
        if isinstance(value, str):
            kind = find_identifier(value)
            if kind is not None:
                raise InvalidInput(f"{path} holds {kind}; remove it before ingest")
            parsed = _parse_date(value)
            if parsed is not None:
                return (parsed[0] + shift).isoformat() + parsed[1]
        return value
