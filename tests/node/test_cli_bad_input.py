"""Every command of ``genoshare``, given bad input in a real child process: a short error and an exit code.

The commands are read from the Typer app, so a new command without a case here fails this test.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import typer.main

from genoshare.cli.main import app

from processes import run_cli


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[str]:
    """Leaf commands by their full name (Typer brings its own click, so groups are known by ``commands``)."""
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield " ".join(path)
        return
    for name, sub in subcommands.items():
        yield from commands(sub, (*path, name))


#: For each command, arguments that must be refused ({node} is an initialised node, {missing} is not a node,
#: {junk} is a file of garbage, {nodir} a path in a directory that does not exist, {busy_port} is taken).
BAD_INPUT: dict[str, list[str]] = {
    "init": ["--data-dir", "{missing}", "--database-url", "not a database url"],
    "ingest": ["nosuch", "{junk}", "--data-dir", "{node}"],
    "ingest-phenotypes": ["nosuch", "{junk}", "--data-dir", "{node}"],
    "beacon-index": ["nosuch", "--data-dir", "{node}"],
    "beacon-genes": ["{junk}", "--data-dir", "{node}"],
    "serve": ["--data-dir", "{missing}"],
    "demo": ["--data-dir", "{missing}", "--port", "{busy_port}"],
    "datasets create": ["d1", "--title", "T", "--custodian", "C", "--duo", "NOT-A-CODE", "--data-dir", "{node}"],
    "datasets list": ["--data-dir", "{missing}"],
    "datasets delete": ["nosuch", "--yes", "--data-dir", "{node}"],
    "datasets committee": ["nosuch", "--member", "a@b", "--data-dir", "{node}"],
    "objects list": ["nosuch", "--data-dir", "{node}"],
    "objects remove": ["nosuch", "--yes", "--data-dir", "{node}"],
    "objects sweep": ["--data-dir", "{missing}"],
    "audit verify": ["--head", "{junk}", "--data-dir", "{node}"],
    "audit report": ["nosuch", "--data-dir", "{node}"],
    "audit head": ["--export", "{nodir}", "--data-dir", "{node}"],
    "audit adopt": ["--data-dir", "{node}"],  # already keyed: nothing to adopt
    "duo match": ["--dataset", "NOT-A-CODE", "--purpose", "GRU"],
    "duo codes": ["--no-such-option"],
    "access request": [
        *("--passport-file", "{junk}", "--dataset", "nosuch", "--purpose-file", "{junk}"),
        *("--project", "P", "--institution", "I", "--data-dir", "{node}"),
    ],
    "access list": ["--status", "bogus", "--data-dir", "{node}"],
    "access show": ["nosuch", "--data-dir", "{node}"],
    "access approve": ["nosuch", "--data-dir", "{node}"],
    "access reject": ["nosuch", "--reason", "r", "--data-dir", "{node}"],
    "access revoke": ["nosuch", "--reason", "r", "--data-dir", "{node}"],
    "consent list": ["nosuch", "--data-dir", "{node}"],
    "consent link": ["nosuch", "nobody", "--data-dir", "{node}"],
    "consent narrow": ["nosuch", "nobody", "--code", "NCU", "--data-dir", "{node}"],
    "consent widen": ["nosuch", "nobody", "--code", "NCU", "--data-dir", "{node}"],
    "consent withdraw": ["nosuch", "nobody", "--data-dir", "{node}"],
    "consent matchmaking": ["nosuch", "nobody", "--allow", "--data-dir", "{node}"],
    "annotations load": ["{junk}", "--data-dir", "{node}"],
    "clinical lookup": ["NC_000001.11:g.12345del", "--data-dir", "{node}"],
    "clinical match": ["{junk}", "--data-dir", "{node}"],
    "consent rederive": ["--data-dir", "{missing}"],
    "privacy link": ["alice", "bob@idp", "--data-dir", "{node}"],
    "network add": ["ftp://not-a-beacon.example", "--data-dir", "{node}"],
    "network remove": ["https://not-a-peer.example", "--data-dir", "{node}"],
    "network list": ["--data-dir", "{missing}"],
    "network check": ["--data-dir", "{missing}"],
    "network request": [
        "http://127.0.0.1:{busy_port}",
        "--passport-file",
        "{junk}",
        "--dataset",
        "d",
        "--purpose-file",
        "{junk}",
        "--project",
        "P",
        "--institution",
        "I",
    ],
    "check": ["--data-dir", "{missing}"],
    "settings-reference": ["--output", "{nodir}"],
    "datasets update": ["nosuch", "--title", "T", "--data-dir", "{node}"],
    "datasets beacon-policy": ["nosuch", "--set", "{junk}", "--data-dir", "{node}"],
    "consent find": ["nosuch", "NA00001", "--data-dir", "{node}"],
    "objects find": ["sha256:not-hex", "--data-dir", "{node}"],
    "backup": ["{junk}", "--data-dir", "{node}"],  # an existing file: never overwritten
    "restore": ["{junk}", "--data-dir", "{missing}"],
    "db upgrade": ["--dry-run", "--data-dir", "{missing}"],
    "rotate node-key": ["--data-dir", "{missing}"],
    "rotate ticket-secret": ["--data-dir", "{missing}"],
    "rotate visa-key": ["--data-dir", "{missing}"],
}


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("cli")
    node = root / "node"
    made = run_cli("init", "--data-dir", str(node), env={"GENOSHARE_DATABASE_URL": ""})
    assert made.returncode == 0, made.stderr
    junk = root / "junk.vcf"
    junk.write_bytes(b"\x00\xffnot what it claims to be\n" * 3)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield {
            "node": str(node),
            "missing": str(root / "missing"),
            "junk": str(junk),
            "nodir": str(root / "no" / "x"),
            "busy_port": str(busy.getsockname()[1]),
        }


def test_every_command_has_a_bad_input_case() -> None:
    assert sorted(commands(typer.main.get_command(app))) == sorted(BAD_INPUT)


def test_every_command_refuses_bad_input_in_one_line(places: dict[str, str]) -> None:
    def attempt(name: str) -> tuple[str, subprocess.CompletedProcess[str]]:
        # Each command its own missing directory: one that wrongly made a node must not serve another's case.
        mine = {**places, "missing": f"{places['missing']}-{name.replace(' ', '-')}"}
        arguments = [argument.format(**mine) for argument in BAD_INPUT[name]]
        return name, run_cli(
            *name.split(), *arguments, env={"GENOSHARE_DATABASE_URL": "", "COLUMNS": "200"}, timeout=60
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(attempt, sorted(BAD_INPUT)))
    problems = []
    for name, result in results:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        if result.returncode == 0:
            problems.append(f"{name}: exit 0 (stdout {result.stdout[-200:]!r})")
        elif "Traceback" in result.stderr or "internal error" in result.stderr:
            problems.append(f"{name}: traceback: {result.stderr[-400:]!r}")
        elif result.returncode == 2:
            # click's usage error (an option it does not know): a short box naming the option.
            if not 1 <= len(lines) <= 8:
                problems.append(f"{name}: usage error of {len(lines)} lines")
        elif len(lines) != 1 or not lines[0].startswith("error: "):
            problems.append(f"{name}: exit {result.returncode}, stderr {result.stderr!r}")
    assert not problems, "\n".join(problems)
