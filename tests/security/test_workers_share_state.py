"""`genoshare serve --workers 2`: a Beacon rate limit is one limit for the node, not one per worker process.

If the privacy state lived in each process, a researcher could multiply a dataset's query allowance (and its
privacy budget) by the number of workers just by opening new connections. It lives in the database.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from spec_node import registered_spec_node

from genoshare.access.issuer import VisaIssuer

from processes import Server
from support import Passports, bearer

pytestmark = pytest.mark.slow

ALLOWED = 3
#: (start, ref, alt) of the spec VCF's alleles, each a different question (no answer comes from a cache).
ALLELES = [(14369, "G", "A"), (17329, "T", "A"), (1110695, "A", "G"), (1110695, "A", "T"), (1234566, "GTC", "G")]


def test_a_rate_limit_holds_across_workers(tmp_path: Path, issuer: VisaIssuer) -> None:
    off = {"budget": None, "flip_probability": 0.0, "per_day": None, "per_minute": ALLOWED}
    settings = registered_spec_node(tmp_path, issuer, off)
    headers = bearer(Passports(issuer, subject="many-connections").anonymous_researcher())
    server = Server(settings.data_dir, {"GENOSHARE_DATABASE_URL": ""}, args=["--workers", "2"])
    try:
        statuses = []
        for start, ref, alt in ALLELES * 2:
            params = {"referenceName": "20", "start": start, "referenceBases": ref, "alternateBases": alt}
            # A new connection each time: the kernel hands connections to either worker.
            with httpx.Client(base_url=server.url, timeout=30) as client:
                statuses.append(client.get("/api/g_variants", params=params, headers=headers).status_code)
    finally:
        log = server.stop()
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    answered_by = {entry["pid"] for entry in entries if entry.get("route") == "/api/g_variants"}
    assert len(answered_by) == 2, "both workers answered some of the queries"
    assert statuses.count(200) == ALLOWED and statuses.count(429) == len(statuses) - ALLOWED, statuses
