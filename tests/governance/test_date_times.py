"""Issue 13: every date-time the node emits carries its zone, and the answer that set it agrees with later reads.

On SQLite a timestamp read back lost its zone, so ``POST /consent/narrow`` said ``...+00:00`` and a later
``GET /consent`` said the same moment without any zone (not an RFC 3339 date-time).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient
from test_consent import token_for

from governance_support import COMMITTEE_MEMBER, Cohort
from support import Passports, bearer


def moment(value: Any, now: bool = True) -> dt.datetime:
    """A zoned date-time; ``now``: one written by the request just made (a wrong zone shows as hours off)."""
    parsed = dt.datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None, f"{value!r} has no time zone"
    if now:
        assert abs(dt.datetime.now(dt.UTC) - parsed) < dt.timedelta(minutes=5), value
    return parsed


def test_consent_times_carry_their_zone_and_get_agrees_with_post(client: TestClient, cohort: Cohort) -> None:
    token = token_for(cohort, "NA00001")
    narrowed = client.post("/consent/narrow", json={"codes": ["NCU"]}, headers=token).json()
    read = client.get("/consent", headers=token).json()
    assert read["updated_at"] == narrowed["updated_at"]
    moment(read["updated_at"])


def test_access_request_times_carry_their_zone_and_agree(
    client: TestClient, cohort: Cohort, passports: Passports
) -> None:
    researcher = bearer(passports.anonymous_researcher())
    created = client.post(
        "/governance/requests",
        json={
            "datasets": ["cohort"],
            "purpose": {"primary": "DS", "diseases": ["MONDO:0005015"]},
            "project_title": "Times",
            "institution": "Example University",
        },
        headers=researcher,
    ).json()
    chair = bearer(Passports(passports.issuer, subject=COMMITTEE_MEMBER.split("@")[0]).anonymous_researcher())
    decided = client.post(f"/governance/requests/{created['id']}/approve", json={}, headers=chair).json()
    read = client.get(f"/governance/requests/{created['id']}", headers=researcher).json()
    moment(read["created_at"])
    moment(read["decided_at"])
    moment(read["expires_at"], now=False)
    assert read["created_at"] == created["created_at"] == decided["created_at"]
    assert read["decided_at"] == decided["decided_at"]
    listed = client.get("/governance/requests", headers=researcher).json()
    items = listed if isinstance(listed, list) else listed["requests"]
    mine = next(item for item in items if item["id"] == created["id"])
    assert mine["created_at"] == created["created_at"]
