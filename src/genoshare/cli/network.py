"""``genoshare network add|remove|list|check|request``: the node's peers in its Beacon network (docs/network.md).

``add`` and ``remove`` edit ``[[network.peers]]`` in the data directory's ``genoshare.toml`` (the server
reads it at start); ``list`` shows them with the Beacons of the configured Service Registries; ``check``
asks each one for its service-info, Beacon map and entry types, and exits 1 if any is not healthy.
``request`` is a researcher's: one access request sent to a node, which forwards each peer its part.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import tomllib
import uuid
from pathlib import Path
from typing import Annotated, Any

import httpx
import tomli_w
import typer
from pydantic import ValidationError
from rich.table import Table

from genoshare.cli.common import DataDir, console, errors, fail, node_settings
from genoshare.network.check import check_network
from genoshare.network.peers import describe
from genoshare.network.service import UNKNOWN, NetworkService
from genoshare.settings import CONFIG_FILE, Peer, Settings

network_app = typer.Typer(
    help="The node's Beacon network: peers it asks on /network/api and whose grants it may trust.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
HEADER = "# genoshare node configuration; GENOSHARE_* environment variables override it.\n"


def _settings(data_dir: Path) -> Settings:
    settings = node_settings(data_dir)
    if not settings.keys_dir.is_dir():
        raise fail(f"{data_dir} is not a genoshare node: run `genoshare init --data-dir {data_dir}` first")
    return settings


def _config(settings: Settings) -> tuple[Path, dict[str, Any]]:
    path = settings.data_dir / CONFIG_FILE
    try:
        return path, tomllib.loads(path.read_text()) if path.exists() else {}
    except tomllib.TOMLDecodeError as error:
        raise fail(f"{path} is not valid TOML: {error}") from None


def _write(path: Path, config: dict[str, Any]) -> None:
    """The file with its new peers, for this user only (it may hold the database password)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(HEADER + tomli_w.dumps(config))


@network_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="The peer node's public URL (its Beacon at <url>/api).")],
    name: Annotated[str, typer.Option(help="Display name [default: the URL's host].")] = "",
    trusts: Annotated[
        list[str] | None,
        typer.Option("--trusts", help="A passport issuer the peer accepts (repeatable): passports go only there."),
    ] = None,
    trust_grants: Annotated[
        bool, typer.Option(help="Accept the peer's node-signed passports, and its grants to its own datasets.")
    ] = False,
    beacon_url: Annotated[str | None, typer.Option(help="Its Beacon's base URL, if not <url>/api.")] = None,
    deadline: Annotated[float | None, typer.Option(help="Seconds to wait for it [default: the network's].")] = None,
    data_dir: DataDir = Path("node"),
) -> None:
    """Add a peer to the node's network (takes effect when the server starts)."""
    settings = _settings(data_dir)
    values: dict[str, Any] = {"url": url, "name": name, "trusts": trusts or [], "trust_grants": trust_grants}
    if beacon_url:
        values["beacon_url"] = beacon_url
    if deadline is not None:
        values["deadline_seconds"] = deadline
    try:
        peer = Peer.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        raise fail(f"{'.'.join(map(str, first['loc'])) or 'peer'}: {first['msg']}") from None
    if any(known.url == peer.url for known in settings.network.peers):
        raise fail(f"{peer.url} is a peer already (genoshare network remove {peer.url} first)")
    path, config = _config(settings)
    network = config.setdefault("network", {})
    network.setdefault("peers", []).append(peer.model_dump(mode="json", exclude_defaults=True))
    _write(path, config)
    console.print(f"peer [bold]{peer.name or peer.url}[/] added to {path}; restart the server to ask it")


@network_app.command("remove")
def remove(
    url: Annotated[str, typer.Argument(help="The peer's URL, as `genoshare network list` shows it.")],
    data_dir: DataDir = Path("node"),
) -> None:
    """Remove a peer from the node's network."""
    settings = _settings(data_dir)
    path, config = _config(settings)
    peers = config.get("network", {}).get("peers", [])
    kept = [peer for peer in peers if str(peer.get("url", "")).rstrip("/") != url.rstrip("/")]
    if len(kept) == len(peers):
        raise fail(f"{url} is not a peer in {path}")
    config["network"]["peers"] = kept
    _write(path, config)
    console.print(f"peer {url} removed from {path}")


@network_app.command("list")
def list_peers(data_dir: DataDir = Path("node"), as_json: JsonOption = False) -> None:
    """The peers: configured ones and those of the configured Service Registries."""
    settings = _settings(data_dir)
    network = NetworkService(settings.network, settings.public_url)

    async def read() -> tuple[list[Any], list[str]]:
        try:
            return await network.peers()
        finally:
            await network.close()

    peers, problems = asyncio.run(read())
    grants = {peer.url for peer in settings.network.peers if peer.trust_grants}
    rows = [
        {
            "name": peer.name,
            "url": peer.url,
            "beaconUrl": peer.beacon_url,
            "trusts": sorted(peer.trusts),
            "trustGrants": peer.url in grants,
            "deadlineSeconds": peer.deadline,
            "source": peer.source,
        }
        for peer in peers
    ]
    for problem in problems:
        errors.print(f"warning: {problem}", highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("no peers: add one with `genoshare network add URL`")
        return
    table = Table("name", "url", "Beacon", "passports of", "grants trusted", "deadline", "from")
    for row in rows:
        table.add_row(
            row["name"],
            row["url"],
            row["beaconUrl"],
            ", ".join(row["trusts"]) or "-",
            "yes" if row["trustGrants"] else "no",
            f"{row['deadlineSeconds']:g} s",
            row["source"],
        )
    console.print(table)


@network_app.command("check")
def check(data_dir: DataDir = Path("node"), as_json: JsonOption = False) -> None:
    """Ask every peer for its service-info, Beacon map and entry types; exit 1 if any is not healthy."""
    settings = _settings(data_dir)
    results, problems = asyncio.run(check_network(NetworkService(settings.network, settings.public_url)))
    for problem in problems:
        errors.print(f"warning: {problem}", highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps([result.as_dict() for result in results], indent=2))
    elif results:
        table = Table("name", "healthy", "latency", "service", "entry types", "problems")
        for result in results:
            service = result.service
            table.add_row(
                result.peer.name,
                "yes" if result.healthy else "[red]no[/]",
                "-" if result.latency_ms is None else f"{result.latency_ms:.1f} ms",
                f"{service.get('name')} ({service.get('type')} {service.get('version')})" if service else "-",
                ", ".join(result.entry_types) or "-",
                "; ".join(result.problems) or "-",
            )
        console.print(table)
    else:
        console.print("no peers: add one with `genoshare network add URL`")
    if problems or not all(result.healthy for result in results):
        raise typer.Exit(1)


#: The exit status of ``request`` when some node may or may not have made the request: send it again.
MAYBE_MADE = 3


@network_app.command("request")
def request_access(
    node_url: Annotated[str, typer.Argument(help="The node to send it to (yours): it forwards each peer its part.")],
    passport_file: Annotated[Path, typer.Option(help="File holding your GA4GH passport (JWT).", exists=True)],
    dataset: Annotated[
        list[str], typer.Option("--dataset", help="A dataset id of that node, or <peer url>/datasets/<id>; repeatable.")
    ],
    purpose_file: Annotated[Path, typer.Option(help='Research purpose as JSON, e.g. {"primary": "GRU"}.', exists=True)],
    project: Annotated[str, typer.Option(help="Project title.")],
    institution: Annotated[str, typer.Option(help="Your institution.")],
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="The key printed for a request sent before: sent again, made at most once at each node."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the node's answer.")] = 60.0,
    as_json: JsonOption = False,
) -> None:
    """Request access to datasets on several nodes at once; exit 3 if some node may have made it without saying.

    Each node's part is made at most once under the request's Idempotency-Key: when the answer (or a node's)
    did not come, the command prints how to send the same request again under the same key, which is safe.
    """
    try:
        token, purpose = passport_file.read_text().strip(), json.loads(purpose_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise fail(f"cannot read the passport or the purpose: {error}") from None
    key = idempotency_key or str(uuid.uuid4())
    body = {"datasets": dataset, "purpose": purpose, "project_title": project, "institution": institution}
    url = f"{node_url.rstrip('/')}/network/governance/requests"
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    arguments = ["--passport-file", str(passport_file), *(a for d in dataset for a in ("--dataset", d))]
    arguments += ["--purpose-file", str(purpose_file), "--project", project, "--institution", institution]
    retry = shlex.join(["genoshare", "network", "request", node_url, *arguments, "--idempotency-key", key])
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=timeout)
    except (httpx.ConnectError, httpx.ConnectTimeout) as error:
        raise fail(f"not sent ({describe(error)}): nothing was made") from None
    except httpx.TimeoutException:
        raise _may_have_been_made(f"sent, no answer within {timeout:g} s", retry) from None
    except httpx.HTTPError as error:
        raise _may_have_been_made(f"sent, then {describe(error)}", retry) from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    message = answer.get("msg") if isinstance(answer, dict) else None
    said = f"{node_url} answered HTTP {response.status_code}" + (f": {message}" if message else "")
    if response.status_code >= 500:
        raise _may_have_been_made(said, retry)
    if response.status_code not in (200, 201) or not isinstance(answer, dict):
        raise fail(said)
    parts = answer.get("requests", [])
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
    else:
        table = Table("node", "datasets", "status", "request", "why")
        for part in parts:
            made = part.get("request") or {}
            table.add_row(
                part["node"],
                ", ".join(part.get("datasets", [])),
                part["status"],
                f"{made.get('id', '')} ({made.get('status', '')})" if made else "-",
                part.get("reason") or "-",
            )
        console.print(table)
    if any(part["status"] == UNKNOWN for part in parts):
        raise _may_have_been_made("some nodes were sent their part and did not say what became of it", retry)
    if not answer.get("complete"):
        raise typer.Exit(1)


def _may_have_been_made(what: str, retry: str) -> typer.Exit:
    """Exit ``MAYBE_MADE``, saying what happened and the command that sends the request again under its key."""
    errors.print(f"{what}: the request may have been made.", markup=False, highlight=False, soft_wrap=True)
    errors.print(f"Sending it again is safe (made at most once at each node):\n  {retry}", markup=False, soft_wrap=True)
    return typer.Exit(MAYBE_MADE)
