"""A production node (``environment = "prod"``) refuses to start on unsafe settings, through `genoshare serve`.

Unsafe: the placeholder organisation, a node key whose secret half is published (the htsget-rs test keys of
the demo data), a data directory or database other users can read, a secret too short to resist guessing.
Each refusal is one line per problem, naming its fix; the same node in development starts with warnings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from genoshare.node import init_node
from genoshare.settings import load_settings

from processes import Server, free_port

TEST_KEYS = Path(__file__).resolve().parents[2] / "src" / "genoshare" / "demo" / "data" / "htsget" / "c4gh" / "keys"
SAFE = 'environment = "production"\norganization = "Hôpital Test"\nnode_id = "org.hopital-test.genoshare"\n'
ENV = {"GENOSHARE_DATABASE_URL": "", "GENOSHARE_ENVIRONMENT": ""}


@pytest.fixture
def production_node(tmp_path: Path) -> Path:
    directory = tmp_path / "node"
    init_node(load_settings(directory, database_url="")).close()
    (directory / "genoshare.toml").write_text(SAFE)
    return directory


def start(directory: Path, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`genoshare serve`, expected to refuse: it exits at once (or is stopped after 20 s, failing the test)."""
    command = [sys.executable, "-m", "genoshare", "serve", "-d", str(directory), "--port", str(free_port())]
    env = {**os.environ, **ENV, **(extra or {})}
    env = {key: value for key, value in env.items() if value != ""}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=20, check=False)


def _placeholder(directory: Path) -> str:
    (directory / "genoshare.toml").write_text('environment = "production"\nnode_id = "org.hopital-test.genoshare"\n')
    return "organization: is the placeholder 'Example Institute'"


def _test_key(directory: Path) -> str:
    for suffix in ("pub", "sec"):
        target = directory / "keys" / f"node.{suffix}"
        target.unlink()
        shutil.copyfile(TEST_KEYS / f"alice.{suffix}", target)
        target.chmod(0o600)
    return "is a published test key"


def _readable_database(directory: Path) -> str:
    (directory / "genoshare.db").chmod(0o644)
    return "database file"


def _readable_directory(directory: Path) -> str:
    directory.chmod(0o755)
    return "data directory"


def _short_webhook_secret(directory: Path) -> str:
    secret = directory / "webhook.secret"
    secret.write_text("hunter2")
    secret.chmod(0o600)
    with (directory / "genoshare.toml").open("a") as config:
        config.write(f'[notify.webhook]\nurl = "https://hooks.example.org/x"\nsecret_file = "{secret}"\n')
    return "shorter than 16"


@pytest.mark.parametrize(
    "make_unsafe", [_placeholder, _test_key, _readable_database, _readable_directory, _short_webhook_secret]
)
def test_production_refuses_to_start(production_node: Path, make_unsafe: Callable[[Path], str]) -> None:
    expected = make_unsafe(production_node)
    refused = start(production_node)
    assert refused.returncode == 1, refused.stderr
    assert "Uvicorn running" not in refused.stderr + refused.stdout
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("error: ") and "fix:" in line for line in lines), lines
    assert any(expected in line and "refused in production" in line for line in lines), lines


def test_the_same_unsafe_node_in_development_starts_with_a_warning(production_node: Path, serve: type[Server]) -> None:
    expected = _test_key(production_node)
    server = serve(production_node, {**ENV, "GENOSHARE_ENVIRONMENT": "dev"})
    assert httpx.get(f"{server.url}/service-info").json()["environment"] == "dev"
    assert expected in server.stop()


def test_a_safe_production_node_starts_and_announces_its_organisation(
    production_node: Path, serve: type[Server]
) -> None:
    server = serve(production_node, {"GENOSHARE_DATABASE_URL": f"sqlite:///{production_node / 'genoshare.db'}"})
    info = httpx.get(f"{server.url}/service-info").json()
    assert (info["organization"]["name"], info["environment"]) == ("Hôpital Test", "prod")
    assert "refused in production" not in server.stop()


def test_secrets_the_node_drew_that_begin_or_end_in_a_whitespace_byte_are_whole(
    production_node: Path, serve: type[Server]
) -> None:
    """The node's own secrets are random bytes: about one in twenty begins or ends in a byte that is
    whitespace as text, and is every bit as strong. A check that stripped them refused such a node."""
    drawn = sorted((production_node / "keys").glob("*.secret"))
    assert drawn, "init made no secrets"
    for path in drawn:
        path.write_bytes(b"\n" + os.urandom(30) + b" ")
    server = serve(production_node, {"GENOSHARE_DATABASE_URL": f"sqlite:///{production_node / 'genoshare.db'}"})
    assert httpx.get(f"{server.url}/service-info").json()["environment"] == "prod"
    assert "refused in production" not in server.stop()
