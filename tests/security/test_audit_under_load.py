"""The audit log under concurrent requests and a crash: one chain, and no answer without its entry (issue 19).

A busy node commits the audit entries that arrive together in one transaction (``AuditLog.record``). An
attacker who wanted a read to go unrecorded would look for the seams that makes: entries lost or written
twice when two processes append at once, a group half written when the server dies, an answer that leaves
before its entry is in the database. Here many clients ask for htsget tickets (one entry each) through two
server processes at once, and then through one that is killed (SIGKILL) in the middle of the load.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from granted import Grantee, build_study

from genoshare.access.issuer import VisaIssuer
from genoshare.node import Node

pytestmark = pytest.mark.slow

READERS = 4
CLIENTS = 24
PROXY = "https://genoshare.example.org"


def tickets_by_reader(node: Node) -> Counter[str]:
    """How many htsget tickets the audit log holds per reader (the subject before ``@`` in its actor)."""
    return Counter(entry.actor.split("@")[0] for entry in node.audit.entries() if entry.action == "htsget.ticket")


def test_tickets_from_two_processes_at_once_make_one_chain_with_an_entry_each(
    node: Node, issuer: VisaIssuer, serve: Any, tmp_path: Path
) -> None:
    study = build_study(node, tmp_path)
    env = {"GENOSHARE_DATABASE_URL": node.settings.database_url}
    servers = [serve(node.settings.data_dir, env, public_url=PROXY) for _ in range(2)]
    asked = 240
    with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=CLIENTS)) as http:
        readers = [Grantee(http, servers[0].url, issuer, f"reader{n}") for n in range(READERS)]

        def ticket(number: int) -> str:
            reader = number % READERS
            url = f"{servers[number % 2].url}/htsget/variants/{study.vcf.htsget_id}"
            answer = http.get(url, headers=readers[reader].headers)
            assert answer.status_code == 200, answer.text
            return f"reader{reader}"

        with ThreadPoolExecutor(CLIENTS) as pool:
            answered = Counter(pool.map(ticket, range(asked)))
    for server in servers:
        server.stop()
    report = node.audit.verify()
    assert report.ok, report.problem
    assert tickets_by_reader(node) == answered, "one entry per ticket issued, none lost, none twice"


def test_a_server_killed_under_load_leaves_a_chain_that_verifies_and_every_answer_logged(
    node: Node, issuer: VisaIssuer, serve: Any, tmp_path: Path
) -> None:
    study = build_study(node, tmp_path)
    env = {"GENOSHARE_DATABASE_URL": node.settings.database_url}
    server = serve(node.settings.data_dir, env, public_url=PROXY)
    url = f"{server.url}/htsget/variants/{study.vcf.htsget_id}"
    answered: Counter[str] = Counter()
    counting = threading.Lock()
    enough = threading.Event()
    with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=CLIENTS)) as http:
        readers = [Grantee(http, server.url, issuer, f"reader{n}") for n in range(READERS)]

        def client(number: int) -> None:
            reader = number % READERS
            while True:
                try:
                    answer = http.get(url, headers=readers[reader].headers)
                except httpx.TransportError:
                    return  # the server is gone
                assert answer.status_code == 200, answer.text
                with counting:
                    answered[f"reader{reader}"] += 1
                    if answered.total() >= 150:
                        enough.set()

        threads = [threading.Thread(target=client, args=(number,)) for number in range(CLIENTS)]
        for thread in threads:
            thread.start()
        assert enough.wait(timeout=300), "the server answered too few tickets"
        server.process.kill()
        for thread in threads:
            thread.join(timeout=120)
    report = node.audit.verify()
    assert report.ok, report.problem
    logged = tickets_by_reader(node)
    unlogged = {reader: count - logged[reader] for reader, count in answered.items() if count > logged[reader]}
    assert not unlogged, f"tickets answered without their audit entry: {unlogged}"

    # The next process appends to the same chain.
    again = serve(node.settings.data_dir, env, public_url=PROXY)
    with httpx.Client(timeout=60) as http:
        answer = http.get(f"{again.url}/htsget/variants/{study.vcf.htsget_id}", headers=readers[0].headers)
    assert answer.status_code == 200, answer.text
    again.stop()
    assert tickets_by_reader(node)["reader0"] == logged["reader0"] + 1
    report = node.audit.verify()
    assert report.ok, report.problem
