"""Refused requests and Beacon counts are in the audit log (issue 12), without letting anyone flood it.

Before, only the access policy's own refusals were logged: a forged, expired or garbage passport, a bad
data ticket and a 416 left no trace, and neither did a Beacon count.  Here each is sent to a real
``genoshare serve`` and must leave a ``deny`` entry naming what was refused; a burst of identical garbage
must be counted, every one, in a bounded number of rows.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from granted import DRS, Grantee, build_study, researcher_passport

from genoshare.access.issuer import VisaIssuer
from genoshare.node import Node

from processes import Server

BURST = 200


def new_entries(node: Node, after: int) -> list[Any]:
    return [event for event in node.audit.entries() if event.seq > after]


def last_seq(node: Node) -> int:
    return max((event.seq for event in node.audit.entries()), default=0)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_every_refusal_and_count_answer_is_audited(node: Node, issuer: VisaIssuer, serve: Any, tmp_path: Path) -> None:
    study = build_study(node, tmp_path, individuals=4)
    server: Server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    url = server.url
    with httpx.Client(timeout=60) as http:
        alice = Grantee(http, url, issuer, "alice")
        data_url, ticket = alice.data_ticket(study.vcf.id)
        start = last_seq(node)
        header, payload, signature = alice.headers["Authorization"].removeprefix("Bearer ").split(".")
        forged = f"{header}.{payload}.{signature[::-1]}"
        expired = issuer.passport("alice", [], lifetime=600, now=int(time.time()) - 7200)
        attempts = {
            "forged passport": http.get(f"{url}{DRS}/objects/{study.vcf.id}", headers=bearer(forged)),
            "expired passport": http.get(f"{url}/htsget/variants/{study.vcf.htsget_id}", headers=bearer(expired)),
            "garbage passport": http.get(f"{url}/api/individuals", headers=bearer("garbage")),
            "bad ticket": http.get(data_url, headers=bearer("e30.e30.e30")),
            "416": http.get(data_url, headers={**ticket, "Range": "bytes=999999999-"}),
            "no passport": http.get(f"{url}{DRS}/objects/{study.vcf.id}"),
        }
        assert [response.status_code for response in attempts.values()] == [401, 401, 401, 401, 416, 401], {
            name: response.text for name, response in attempts.items()
        }
        denied = [event for event in new_entries(node, start) if event.decision == "deny"]
        assert sorted((event.details["status"], event.action) for event in denied) == [
            (401, "beacon.query"),
            (401, "data.read"),
            (401, "drs"),
            (401, "drs.get"),
            (401, "htsget"),
            (416, "data.read"),
        ], denied
        assert all(event.reason and event.resource for event in denied)
        assert {event.actor.split("@")[0] for event in denied if event.details["status"] == 416} == {"alice"}
        [anonymous] = [event for event in denied if event.action == "drs.get"]
        assert anonymous.resource == f"objects/{study.vcf.id}" and anonymous.details["dataset"] == "study"

        # A refusal the access policy writes itself is logged once, not twice.
        bob = bearer(researcher_passport(issuer, "bob"))
        start = last_seq(node)
        assert http.get(f"{url}{DRS}/objects/{study.vcf.id}/access/https", headers=bob).status_code == 403
        assert [event.decision for event in new_entries(node, start)] == ["deny"]

        # A Beacon count answer is an access: logged, with the dataset, the count and whose data it covered.
        start = last_seq(node)
        counted = http.get(f"{url}/api/individuals", params={"requestedGranularity": "count"}, headers=bob)
        assert counted.json()["meta"]["returnedGranularity"] == "count", counted.text
        [answer] = new_entries(node, start)
        assert answer.action == "beacon.query" and answer.actor.startswith("bob")
        assert answer.details["datasets"]["study"]["granularity"] == "count"
        assert answer.details["datasets"]["study"]["count"] == counted.json()["responseSummary"]["numTotalResults"]

        # A burst of garbage passports and of anonymous requests for controlled data: every refusal
        # counted, in a bounded number of rows.
        start = last_seq(node)
        for _ in range(BURST):
            assert http.get(f"{url}/api/individuals", headers=bearer("garbage")).status_code == 401
            assert http.get(f"{url}{DRS}/objects/{study.vcf.id}").status_code == 401
        assert len(new_entries(node, start)) == 0
    server.stop()
    repeats = [event for event in new_entries(node, start) if event.details.get("repeats")]
    assert sorted(event.details["repeats"] for event in repeats) == [BURST, BURST], repeats
    assert node.audit.verify().ok
