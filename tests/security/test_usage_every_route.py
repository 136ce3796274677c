"""'Who used my data' counts every way a participant's data leaves the node (issue 13).

A researcher got a small VCF slice inline in an htsget ticket (``data:`` URLs, every sample column): the
participant's ``GET /consent/usage`` was ``[]`` and the dataset report said ``bytes 0``.  Here, through a
real ``genoshare serve``, the granted researcher takes the data by every route in turn (htsget inline,
htsget ``/data`` URLs, DRS, Beacon records and counts) and after each the participant's own report must
show that route with the bytes, records or counts that left.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
from granted import CHAIR, Grantee, build_study, consent_token, researcher_passport
from sqlalchemy import select

from genoshare.access.issuer import VisaIssuer
from genoshare.node import Node
from genoshare.store.models import Grant

SUBJECT = "alice"


def ids_in(body: dict[str, Any]) -> set[str]:
    return {record["id"] for rs in body["response"]["resultSets"] for record in rs["results"]}


def inline_bytes(ticket: dict[str, Any]) -> int:
    return sum(
        len(base64.b64decode(url["url"].split(",", 1)[1]))
        for url in ticket["htsget"]["urls"]
        if url["url"].startswith("data:")
    )


def fetch_data_urls(http: httpx.Client, ticket: dict[str, Any]) -> int:
    served = 0
    for url in ticket["htsget"]["urls"]:
        if not url["url"].startswith("data:"):
            response = http.get(url["url"], headers=url.get("headers", {}))
            assert response.status_code in (200, 206), response.text
            served += len(response.content)
    return served


def test_every_route_is_in_the_participants_report(node: Node, issuer: VisaIssuer, serve: Any, tmp_path: Path) -> None:
    study = build_study(node, tmp_path)
    person, other = (study.pseudonyms[sample] for sample in study.sample_ids[:2])
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    url, token = server.url, consent_token(node, person)
    with httpx.Client(timeout=60) as http:
        alice = Grantee(http, url, issuer, SUBJECT)

        def report() -> dict[str, Any]:
            response = http.get(f"{url}/consent/usage", headers=token)
            assert response.status_code == 200, response.text
            uses = [use for use in response.json() if use["user"].startswith(SUBJECT)]
            return uses[0] if uses else {}

        def route(name: str) -> dict[str, int]:
            return report().get("routes", {}).get(name, {"requests": 0, "bytes_served": 0, "records": 0, "counts": 0})

        assert report() == {}

        # 1. htsget, a small region: the slice comes back (at least partly) inline in the ticket.
        region = http.get(
            f"{url}/htsget/variants/{study.vcf.htsget_id}",
            params={"referenceName": "20", "start": 1000, "end": 30_000},
            headers=alice.headers,
        )
        assert region.status_code == 200, region.text
        inline = inline_bytes(region.json())
        assert inline > 0
        assert route("htsget") == {"requests": 1, "bytes_served": inline, "records": 0, "counts": 0}
        assert report()["bytes_served"] == inline
        assert report()["projects"] == ["Cohort study (Example University)"]

        # 2. htsget, the whole file: its body comes through /data.
        whole = http.get(f"{url}/htsget/variants/{study.vcf.htsget_id}", headers=alice.headers)
        assert whole.status_code == 200, whole.text
        through_data = fetch_data_urls(http, whole.json())
        assert through_data > 0
        assert route("htsget")["requests"] == 2
        assert route("data")["bytes_served"] == through_data
        assert report()["bytes_served"] == inline + inline_bytes(whole.json()) + through_data

        # 3. DRS: an access URL, then the whole file from it.
        data_url, ticket = alice.data_ticket(study.vcf.id)
        downloaded = http.get(data_url, headers=ticket)
        assert downloaded.status_code == 200
        assert route("drs")["requests"] == 1
        assert route("data")["bytes_served"] == through_data + len(downloaded.content)

        # 4. Beacon records: the individuals list covers them; another person's own record does not.
        listed = alice.beacon("individuals", limit=100)
        assert listed["meta"]["returnedGranularity"] == "record"
        assert route("beacon")["records"] == len(study.sample_ids)
        alice.beacon(f"individuals/{other}")
        assert route("beacon")["requests"] == 1, "an answer about someone else is not a use of their data"

        # 5. Beacon counts, as a researcher without the grant gets them.
        counted = http.get(
            f"{url}/api/individuals",
            params={"requestedGranularity": "count"},
            headers={"Authorization": f"Bearer {researcher_passport(issuer, 'bob')}"},
        )
        assert counted.json()["meta"]["returnedGranularity"] == "count", counted.text
        bob = [use for use in http.get(f"{url}/consent/usage", headers=token).json() if use["user"].startswith("bob")]
        assert bob and bob[0]["routes"]["beacon"]["counts"] == 1, bob

        # The committee's dataset report: the same bytes, and every route.
        chair = {"Authorization": f"Bearer {researcher_passport(issuer, CHAIR)}"}
        dataset = http.get(f"{url}/governance/datasets/study/usage", headers=chair)
        assert dataset.status_code == 200, dataset.text
        uses = {use["user"].split("@")[0]: use for use in dataset.json()}
        assert uses[SUBJECT]["bytes_served"] == report()["bytes_served"] > 0
        assert set(uses[SUBJECT]["routes"]) == {"beacon", "data", "drs", "htsget"}
        assert "bob" in uses
        with node.database.sessions() as session:
            [grant] = session.scalars(select(Grant.id).where(Grant.grantee.startswith(SUBJECT)))
        by_grant = http.get(f"{url}/governance/datasets/study/usage", params={"grant": grant}, headers=chair).json()
        assert [use["user"].split("@")[0] for use in by_grant] == [SUBJECT] and by_grant[0]["grants"] == [grant]

        # Someone whose consent excludes a grant: files reach that grantee without them, and so does their report.
        narrowing = consent_token(node, other)
        assert http.post(f"{url}/consent/narrow", json={"codes": ["NCU"]}, headers=narrowing).status_code == 200
        pharma = Grantee(http, url, issuer, "pharma", commercial=True)
        data_url, ticket = pharma.data_ticket(study.vcf.id)
        assert http.get(data_url, headers=ticket).status_code == 200
        pharma_whole = http.get(f"{url}/htsget/variants/{study.vcf.htsget_id}", headers=pharma.headers)
        fetch_data_urls(http, pharma_whole.json())
        assert len(ids_in(pharma.beacon("individuals", limit=100))) == len(study.sample_ids) - 1
        theirs = http.get(f"{url}/consent/usage", headers=narrowing).json()
        assert not [use for use in theirs if use["user"].startswith("pharma")], theirs
        mine = http.get(f"{url}/consent/usage", headers=token).json()
        assert {"beacon", "data", "drs", "htsget"} == set(
            next(u for u in mine if u["user"].startswith("pharma"))["routes"]
        )
