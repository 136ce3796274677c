"""``genoshare audit verify`` when the audit key cannot be read: a clear refusal, never "intact", never a crash.

Red team (issue 12 follow-up): with a directory in the key's place the command ended in "internal error,
IsADirectoryError ... (a bug in genoshare)" (exit 70).
"""

from __future__ import annotations

from pathlib import Path

from genoshare.audit import Entry
from genoshare.node import init_node
from genoshare.settings import load_settings

from processes import run_cli


def test_an_unreadable_audit_key_fails_verification_with_one_clear_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    node = init_node(load_settings(tmp_path / "node", database_url=url))
    node.audit.record(Entry("someone@issuer", "data.read", "objects/x", "deny", "no grant"))
    key = node.audit.key_file
    node.close()
    key.rename(key.with_name("audit.key.elsewhere"))
    key.mkdir()
    done = run_cli("audit", "verify", "--data-dir", str(tmp_path / "node"), env={"GENOSHARE_DATABASE_URL": url})
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "intact" not in output and "internal error" not in output and "Traceback" not in output
    assert "cannot read the audit key" in output
