"""The audit chain detects any edited, removed or reordered entry."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, text, update
from typer.testing import CliRunner

from genoshare.audit import AuditLog, Entry
from genoshare.audit.log import MAX_GROUP, STORED_FIELDS, _entry_hash
from genoshare.cli.main import app
from genoshare.node import Node
from genoshare.store.models import AuditEvent, AuditHead


def fill(log: AuditLog, count: int = 5) -> None:
    for number in range(count):
        log.record(
            Entry(f"user{number}@issuer", "drs.get", f"objects/o{number}", "permit", "public dataset", {"dataset": "d"})
        )


def test_an_untouched_chain_verifies(node: Node) -> None:
    fill(node.audit)
    report = node.audit.verify()
    assert report.ok and report.entries == 5


def test_sequence_numbers_are_consecutive_from_one(node: Node) -> None:
    fill(node.audit, 3)
    assert [event.seq for event in node.audit.entries()] == [1, 2, 3]


@pytest.mark.parametrize(
    ("column", "value"),
    [("actor", "someone-else@issuer"), ("decision", "deny"), ("reason", ""), ("details", {"dataset": "other"})],
)
def test_an_edited_entry_is_found(node: Node, column: str, value: object) -> None:
    fill(node.audit)
    with node.database.session() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values({column: value}))
    report = node.audit.verify()
    assert not report.ok and report.first_bad_seq == 3


def test_a_removed_entry_is_found(node: Node) -> None:
    fill(node.audit)
    with node.database.session() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
    report = node.audit.verify()
    assert not report.ok and report.first_bad_seq == 2


def test_reordered_entries_are_found(node: Node) -> None:
    fill(node.audit)
    with node.database.session() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(seq=100))
        session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(seq=2))
        session.execute(update(AuditEvent).where(AuditEvent.seq == 100).values(seq=3))
    report = node.audit.verify()
    assert not report.ok and report.first_bad_seq == 2


def test_entries_cut_off_the_end_are_found(node: Node) -> None:
    fill(node.audit)
    with node.database.session() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 5))
    assert not node.audit.verify().ok


def test_a_recomputed_entry_still_breaks_its_successor(node: Node) -> None:
    """Rewriting an entry *with* a fresh, valid hash still fails: the next entry points at the old one."""
    fill(node.audit)
    with node.database.session() as session:
        event = session.get_one(AuditEvent, 2)
        fields = {name: getattr(event, name) for name in STORED_FIELDS} | {"actor": "someone-else@issuer"}
        forged = _entry_hash(node.audit.key(), fields)
        session.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(actor=fields["actor"], hash=forged))
    report = node.audit.verify()
    assert not report.ok and report.first_bad_seq == 3
    assert report.problem == "entry 3 does not follow entry 2"


def test_an_entry_with_a_hash_that_is_not_its_own_is_found(node: Node) -> None:
    fill(node.audit)
    with node.database.session() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(hash="f" * 64))
    report = node.audit.verify()
    assert not report.ok and report.first_bad_seq == 2


def _tampered(value: object) -> object:
    if isinstance(value, bool | int):
        return int(value) + 1000
    if isinstance(value, str):
        return value + "x" if len(value) < 64 else "0" * 64
    if isinstance(value, datetime):
        return value + timedelta(seconds=1)
    if isinstance(value, dict):
        return {**value, "tampered": True}
    raise AssertionError(f"no way to tamper with a {type(value).__name__}: add one here")


@pytest.mark.parametrize("column", [column.key for column in AuditEvent.__table__.columns if column.key != "hash"])
def test_every_stored_field_is_covered_by_the_chain(node: Node, column: str) -> None:
    """A column added to ``audit_events`` is protected too: changing it alone in any entry fails verification."""
    fill(node.audit)
    with node.database.session() as session:
        event = session.get_one(AuditEvent, 3)
        session.execute(
            update(AuditEvent).where(AuditEvent.seq == 3).values({column: _tampered(getattr(event, column))})
        )
    report = node.audit.verify()
    assert not report.ok and report.first_bad_seq == 3, (column, report)


def test_cli_verify_exits_non_zero_on_tampering(node: Node) -> None:
    fill(node.audit)
    runner = CliRunner()
    data_dir = str(node.settings.data_dir)
    env = {"GENOSHARE_DATABASE_URL": node.settings.database_url}
    good = runner.invoke(app, ["audit", "verify", "--data-dir", data_dir], env=env)
    assert good.exit_code == 0, good.output
    assert "intact: 5 entries" in good.output
    with node.database.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET resource = 'objects/secret' WHERE seq = 4"))
    bad = runner.invoke(app, ["audit", "verify", "--data-dir", data_dir], env=env)
    assert bad.exit_code == 1
    assert "entry 4" in bad.output


def test_control_characters_a_client_sent_are_stored_escaped(node: Node) -> None:
    """A refused path may hold a NUL (PostgreSQL refuses it in text) or a newline (a forged report line)."""
    node.audit.record(Entry("anonymous", "drs", "/ga4gh/drs/v1/objects/\x00\nfake", "deny", "no object '\x00'"))
    [event] = node.audit.entries()
    assert event.resource == "/ga4gh/drs/v1/objects/\\x00\\nfake" and event.reason == "no object '\\x00'"
    assert node.audit.verify().ok


def queued_behind_a_held_head(node: Node, entries: list[Entry]) -> list[int | Exception]:
    """Append ``entries`` from a thread each while another transaction holds the chain's head row; the results.

    The first append waits for the head; the others queue meanwhile and are committed together after it, as
    the requests of a busy server are (``AuditLog.record``).
    """
    results: list[int | Exception] = [RuntimeError("not run")] * len(entries)

    def append(number: int) -> None:
        try:
            results[number] = node.audit.record(entries[number])
        except Exception as error:
            results[number] = error

    threads = [threading.Thread(target=append, args=(number,)) for number in range(len(entries))]
    with node.database.engine.begin() as holding:
        holding.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
        threads[0].start()
        wait_for(lambda: node.audit._writing and not node.audit._queued)  # the first one waits for the head
        for thread in threads[1:]:
            thread.start()
        wait_for(lambda: len(node.audit._queued) == len(entries) - 1)
    for thread in threads:
        thread.join(timeout=60)
    return results


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the appends did not queue"
        time.sleep(0.01)


def test_entries_that_arrive_together_are_one_transaction_and_the_chain_holds(node: Node) -> None:
    fill(node.audit, 2)
    entries = [Entry(f"reader{n}@issuer", "htsget.ticket", f"objects/o{n}", "permit", "ticket") for n in range(12)]
    results = queued_behind_a_held_head(node, entries)
    assert sorted(results) == list(range(3, 15)), results  # type: ignore[type-var]
    events = {event.actor: event for event in node.audit.entries()}
    assert all(events[entry.actor].seq == seq for entry, seq in zip(entries, results, strict=True))
    # The eleven that queued behind the first were written together: one transaction, one time.
    assert len({events[entry.actor].at for entry in entries[1:]}) == 1
    report = node.audit.verify()
    assert report.ok and report.entries == 14, report


def test_an_entry_that_cannot_be_written_fails_alone_and_leaves_no_gap(node: Node) -> None:
    """A group fails after it moved the head (its insert fails): nothing of it stays; the others are written."""
    fill(node.audit, 2)
    entries = [Entry(f"reader{n}@issuer", "htsget.ticket", f"objects/o{n}", "permit", "ticket") for n in range(8)]
    entries[4] = Entry("bad@issuer", "htsget.ticket", "objects/bad", "permit", "ticket", {"not json": {1, 2}})
    results = queued_behind_a_held_head(node, entries)
    assert isinstance(results[4], Exception) and "not JSON serializable" in str(results[4]), results[4]
    written = [result for number, result in enumerate(results) if number != 4]
    assert sorted(written) == list(range(3, 10)), results  # type: ignore[type-var]
    assert "bad@issuer" not in {event.actor for event in node.audit.entries()}
    report = node.audit.verify()
    assert report.ok and report.entries == 9, report


def test_a_queue_longer_than_a_group_is_written_in_several_and_the_chain_holds(node: Node) -> None:
    entries = [Entry(f"reader{n}@issuer", "htsget.ticket", f"objects/o{n}", "permit", "ticket") for n in range(300)]
    results = queued_behind_a_held_head(node, entries)
    assert sorted(results) == list(range(1, 301)), [r for r in results if not isinstance(r, int)][:3]  # type: ignore[type-var]
    times = Counter(event.at for event in node.audit.entries())
    assert len(times) >= 3 and max(times.values()) <= MAX_GROUP, times.most_common(3)
    report = node.audit.verify()
    assert report.ok and report.entries == 300, report
