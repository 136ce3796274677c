"""A NUL byte (``%00``) in an address's id, sent to ``genoshare serve`` on SQLite and on PostgreSQL.

PostgreSQL refuses a string with a NUL in it outright, so an id that reaches a query unchecked is a 500
there and a 404 on SQLite. Every route that looks an id up, the portal's included, must answer it as a
404 or 400 on both, signed in or not.
"""

from __future__ import annotations

from typing import Any

import httpx

from genoshare.access.issuer import VisaIssuer
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node

from support import Passports

ROUTES = (
    "/api/individuals/%00",
    "/api/datasets/%00",
    "/api/g_variants/%00",
    "/api/individuals/%00/g_variants",
    "/ga4gh/drs/v1/objects/%00",
    "/governance/requests/%00",
    "/governance/datasets/%00/usage",
    "/htsget/variants/%00",
    "/htsget/reads/%00",
    "/network/api/individuals/%00",
    "/portal/requests/%00",
    "/portal/committee/requests/%00",
    "/portal/documents/%00",
    "/portal/reports/%00",
    "/portal/reports/%00/access-report.csv",
    "/portal/downloads/%00/manifest.json",
    "/portal/steward/datasets/%00",
    "/portal/consent/receipts/%00",
    "/consent/AAAAAAAAAAAAAAAAAAAA%00",
)


def _get(http: httpx.Client, route: str, headers: dict[str, str]) -> httpx.Response:
    try:
        return http.get(route, headers=headers)
    except httpx.TransportError as error:
        return httpx.Response(599, text=f"connection lost: {error}")


def _post(http: httpx.Client, route: str, body: dict[str, Any], passport: str) -> httpx.Response:
    try:
        return http.post(route, json=body, headers={"Authorization": f"Bearer {passport}"})
    except httpx.TransportError as error:
        return httpx.Response(599, text=f"connection lost: {error}")


def test_a_nul_in_an_id_is_never_a_500(node: Node, issuer: VisaIssuer, serve: Any) -> None:
    DatasetService(node.database).create(NewDataset("cohort", "Cohort", "Custodian", "controlled", ["GRU"]))
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    passport = Passports(issuer).anonymous_researcher()
    with httpx.Client(base_url=server.url, timeout=30, headers={"Origin": server.url}) as http:
        page = http.get("/portal/signin")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        http.post("/portal/signin/passport", data={"csrf_token": token, "passport": passport, "next": "/"})
        failed = [
            f"{route} ({'with' if headers else 'without'} a passport): {answer.status_code}"
            for headers in ({}, {"Authorization": f"Bearer {passport}"})
            for route in ROUTES
            if (answer := _get(http, route, headers)).status_code >= 500
        ]
        # And in what a request would store: a title, an institution.
        for field in ("project_title", "institution"):
            body = {"datasets": ["cohort"], "purpose": {"primary": "GRU"}, "project_title": "t", "institution": "i"}
            stored = _post(http, "/governance/requests", {**body, field: "a\u0000b"}, passport)
            if stored.status_code >= 500:
                failed.append(f"POST /governance/requests with a NUL in {field}: {stored.status_code}")
    assert not failed, failed
    assert "Traceback" not in server.stop()
