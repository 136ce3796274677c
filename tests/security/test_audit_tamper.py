"""Rewriting the audit log, as someone who can write the database (but not read the node's keys) would.

Each attack edits the database with plain SQL and then runs ``genoshare audit verify`` in a child process,
as an operator would: the command must exit non-zero with one line naming what was found.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from genoshare.audit import AuditLog, Entry
from genoshare.audit.log import AuditKeyError
from genoshare.node import Node

from processes import run_cli


def fill(node: Node, count: int) -> None:
    for number in range(count):
        node.audit.record(
            Entry(f"user{number}@issuer", "data.read", f"objects/o{number}", "permit", "valid ticket", {"n": number})
        )


def env(node: Node) -> dict[str, str]:
    return {"GENOSHARE_DATABASE_URL": node.settings.database_url}


def verify(node: Node, *extra: str) -> tuple[int, str]:
    done = run_cli("audit", "verify", "--data-dir", str(node.settings.data_dir), *extra, env=env(node))
    return done.returncode, (done.stdout + done.stderr).strip()


def export_head(node: Node, where: Path) -> Path:
    """What ``genoshare audit head --export`` writes (tested through the CLI above)."""
    anchor = where / "head.json"
    anchor.write_text(json.dumps(node.audit.signed_head(node.issuer.key, node.issuer.issuer)))
    return anchor


def plain_hash(row: dict[str, object], prev: str) -> str:
    """The chain's former formula (SHA-256 of the canonical entry), which anyone can recompute."""
    at = row["at"]
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    assert isinstance(at, datetime)
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    details = row["details"]
    payload = {
        "prev": prev,
        "seq": row["seq"],
        "at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": row["actor"],
        "action": row["action"],
        "resource": row["resource"],
        "decision": row["decision"],
        "reason": row["reason"],
        "details": json.loads(details) if isinstance(details, str) else details,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def rechain(node: Node, from_seq: int) -> None:
    """Recompute every hash from ``from_seq`` on with the plain formula, and the head, in SQL."""
    with node.database.engine.begin() as connection:
        rows = [dict(row._mapping) for row in connection.execute(text("SELECT * FROM audit_events ORDER BY seq"))]
        prev = rows[from_seq - 2]["hash"] if from_seq > 1 else "0" * 64
        for row in rows[from_seq - 1 :]:
            digest = plain_hash(row, str(prev))
            connection.execute(
                text("UPDATE audit_events SET prev_hash = :prev, hash = :hash WHERE seq = :seq"),
                {"prev": prev, "hash": digest, "seq": row["seq"]},
            )
            prev = digest
        connection.execute(
            text("UPDATE audit_head SET seq = :seq, hash = :hash"), {"seq": rows[-1]["seq"], "hash": prev}
        )


def test_an_edited_entry_with_recomputed_hashes_is_found(node: Node) -> None:
    fill(node, 6)
    with node.database.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET actor = 'nobody@issuer' WHERE seq = 3"))
    rechain(node, 3)
    code, output = verify(node)
    assert code == 1, output
    assert "entry 3" in output and len(output.splitlines()) == 1, output
    assert "Traceback" not in output


def test_the_audit_key_is_private_and_outside_the_database(node: Node) -> None:
    key = node.settings.keys_dir / "audit.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    fill(node, 2)
    with node.database.engine.begin() as connection:
        dump = " ".join(
            str(tuple(row))
            for table in ("audit_events", "audit_head")
            for row in connection.execute(text(f"SELECT * FROM {table}"))
        )
    assert key.read_bytes().hex() not in dump


def test_entries_cut_off_the_end_are_found_against_an_exported_head(node: Node, tmp_path: Path) -> None:
    fill(node, 6)
    anchor = tmp_path / "head.json"
    exported = run_cli(
        "audit", "head", "--data-dir", str(node.settings.data_dir), "--export", str(anchor), env=env(node)
    )
    assert exported.returncode == 0, exported.stderr
    assert json.loads(anchor.read_text())["seq"] == 6
    assert node.audit.verify_anchor(json.loads(anchor.read_text()), node.issuer.key) is None
    # Cut entries 5 and 6 and move the head back to entry 4: a consistent, shorter chain.
    with node.database.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq > 4"))
        fourth = connection.execute(text("SELECT hash FROM audit_events WHERE seq = 4")).scalar_one()
        connection.execute(text("UPDATE audit_head SET seq = 4, hash = :hash"), {"hash": fourth})
    assert node.audit.verify().ok  # nothing inside the database can tell
    code, output = verify(node, "--head", str(anchor))
    assert code == 1 and len(output.splitlines()) == 1, output
    assert "entry 6" in output and "ends at entry 4" in output, output


def test_a_truncated_chain_grown_again_is_found_against_an_exported_head(node: Node, tmp_path: Path) -> None:
    fill(node, 5)
    anchor = export_head(node, tmp_path)
    with node.database.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq > 2"))
        second = connection.execute(text("SELECT hash FROM audit_events WHERE seq = 2")).scalar_one()
        connection.execute(text("UPDATE audit_head SET seq = 2, hash = :hash"), {"hash": second})
    fill(node, 4)  # the node writes on: entries 3-6 are new ones, keyed and chained
    assert node.audit.verify().ok
    code, output = verify(node, "--head", str(anchor))
    assert code == 1 and "entry 5" in output and "rewritten" in output, output


def test_a_forged_exported_head_is_refused(node: Node, tmp_path: Path) -> None:
    fill(node, 3)
    anchor = export_head(node, tmp_path)
    document = json.loads(anchor.read_text())
    header, payload, signature = document["signature"].split(".")
    document["signature"] = ".".join(
        (header, payload, signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB"))
    )
    anchor.write_text(json.dumps(document))
    code, output = verify(node, "--head", str(anchor))
    assert code == 1 and "signature" in output, output
    anchor.write_text("not json")
    code, output = verify(node, "--head", str(anchor))
    assert code == 1 and len(output.splitlines()) == 1 and "Traceback" not in output, output


def legacy(node: Node, count: int) -> Path:
    """A chain exactly as a node made before audit keys wrote it: plain SHA-256, no key file."""
    fill(node, count)
    key = node.settings.keys_dir / "audit.key"
    key.unlink()
    rechain(node, 1)
    return key


def adopt(node: Node) -> tuple[int, str]:
    done = run_cli("audit", "adopt", "--data-dir", str(node.settings.data_dir), "--operator", "ops@node", env=env(node))
    return done.returncode, (done.stdout + done.stderr).strip()


def test_an_unkeyed_chain_is_keyed_only_by_audit_adopt_and_then_holds(node: Node) -> None:
    """An older node's chain is refused until the operator adopts it; the adoption is itself in the chain."""
    key = legacy(node, 4)
    code, output = verify(node)
    assert code == 1 and "audit adopt" in output and len(output.splitlines()) == 1, output
    assert not key.exists()
    code, output = adopt(node)
    assert code == 0 and "adopted" in output, output
    assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600
    code, output = verify(node)
    assert code == 0 and "intact: 5 entries" in output, output
    last = list(AuditLog(node.database, key).entries())[-1]
    assert (last.actor, last.action, last.details["entries"]) == ("ops@node", "audit.adopt", 4)
    code, output = adopt(node)  # once keyed, never again
    assert code == 1 and "already keyed" in output and len(output.splitlines()) == 1, output
    with node.database.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET decision = 'permit' WHERE seq = 2"))
    rechain(node, 2)
    code, output = verify(node)
    assert code == 1 and "entry 2" in output, output


def test_a_deleted_key_and_a_recomputed_unkeyed_chain_are_not_blessed(node: Node) -> None:
    """The attack: delete the key, turn a deny into a permit, recompute the plain chain; nothing re-keys it."""
    fill(node, 2)
    node.audit.record(Entry("mallory@issuer", "data.read", "objects/secret", "deny", "no visa", {}))
    fill(node, 2)
    key = node.settings.keys_dir / "audit.key"
    key.unlink()
    with node.database.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET decision = 'permit', reason = 'visa' WHERE seq = 3"))
    rechain(node, 1)
    code, output = verify(node)
    assert code == 1 and "audit.key" in output and "intact" not in output, output
    assert len(output.splitlines()) == 1 and "Traceback" not in output, output
    assert not key.exists()
    # The server appends on every request: it refuses to start, in one line, rather than re-key.
    done = run_cli("serve", "--data-dir", str(node.settings.data_dir), "--port", "0", env=env(node), timeout=60)
    said = (done.stdout + done.stderr).strip()
    assert done.returncode == 1 and "audit.key" in said and len(said.splitlines()) == 1, said
    assert not key.exists()
    # Nor does an append by the next process (a CLI command opens the node afresh).
    with pytest.raises(AuditKeyError, match="missing"):
        AuditLog(node.database, key).record(Entry("steward", "consent.withdraw", "participants/d/p", "withdraw"))
    assert not key.exists()
    code, output = verify(node)
    assert code == 1 and "intact" not in output, output


def test_a_lost_key_is_not_replaced_by_a_new_one(node: Node) -> None:
    """Deleting the key must not make the node re-key (and so bless) whatever the database now holds."""
    fill(node, 3)
    (node.settings.keys_dir / "audit.key").unlink()
    code, output = verify(node)
    assert code == 1 and "audit.key" in output and len(output.splitlines()) == 1, output
    assert not (node.settings.keys_dir / "audit.key").exists()
    # Running init again on the node does not make one either.
    done = run_cli("init", "--data-dir", str(node.settings.data_dir), env=env(node))
    said = (done.stdout + done.stderr).strip()
    assert done.returncode == 1 and "audit.key" in said and len(said.splitlines()) == 1, said
    assert not (node.settings.keys_dir / "audit.key").exists()
    # And `audit adopt` refuses a keyed chain: it does not verify with the unkeyed formula.
    code, output = adopt(node)
    assert code == 1 and "not a valid unkeyed" in output and len(output.splitlines()) == 1, output
    assert not (node.settings.keys_dir / "audit.key").exists()


def test_two_processes_adopting_an_old_chain_at_once_agree_on_one_key(node: Node) -> None:
    key = legacy(node, 20)
    command = [
        sys.executable, "-m", "genoshare", "audit", "adopt", "--data-dir", str(node.settings.data_dir),
    ]  # fmt: skip
    racing = [
        subprocess.Popen(command, env={**os.environ, **env(node)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120)[0].decode() for process in racing]
    assert sorted(process.returncode for process in racing) == [0, 1], outputs
    assert any("already keyed" in output for output in outputs), outputs
    report = AuditLog(node.database, key).verify()
    assert report.ok and report.entries == 21, report
    assert [path.name for path in node.settings.keys_dir.iterdir() if "audit" in path.name] == ["audit.key"]
