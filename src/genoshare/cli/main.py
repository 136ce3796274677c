"""``genoshare``: run and manage a node. Every command works on one data directory (``--data-dir``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from genoshare import __version__
from genoshare.audit.log import AuditKeyError
from genoshare.cli.beacon import register as register_beacon_commands
from genoshare.cli.clinical import register as register_clinical_commands
from genoshare.cli.common import (
    DataDir,
    IndexEngine,
    console,
    ensure_port_free,
    errors,
    fail,
    node_settings,
    open_node,
    reported,
    whole,
)
from genoshare.cli.duo import duo_app
from genoshare.cli.governance import access_app, consent_app, privacy_app, usage_table
from genoshare.cli.network import network_app
from genoshare.cli.operations import checked_settings, warn
from genoshare.cli.operations import register as register_operations_commands
from genoshare.cli.stewardship import register as register_stewardship_commands
from genoshare.datasets.service import NewDataset
from genoshare.drs.indexes import index_id
from genoshare.node import PRIVATE_UMASK, build_datasets, build_usage, init_node
from genoshare.operations.checks import database_problem
from genoshare.operations.metrics_dir import join_run, start_run

app = typer.Typer(
    name="genoshare",
    help="Share genomic data under GA4GH standards: Beacon v2, htsget, DRS, Passports, DUO, Crypt4GH.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
datasets_app = typer.Typer(
    help="Create and inspect datasets (consent codes, custodian, access level).", no_args_is_help=True
)
objects_app = typer.Typer(help="List the files (DRS objects) of a dataset.", no_args_is_help=True)
audit_app = typer.Typer(help="Inspect and verify the tamper-evident audit log.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(objects_app, name="objects")
app.add_typer(audit_app, name="audit")
app.add_typer(duo_app, name="duo")
app.add_typer(network_app, name="network")
app.add_typer(access_app, name="access")
app.add_typer(consent_app, name="consent")
app.add_typer(privacy_app, name="privacy")
register_beacon_commands(app)
register_clinical_commands(app)
register_operations_commands(app)
register_stewardship_commands(datasets_app, consent_app, objects_app)


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"genoshare {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Share genomic data under GA4GH standards: Beacon v2, htsget, DRS, Passports, DUO, Crypt4GH."""


@app.command()
def init(
    data_dir: DataDir = Path("node"),
    public_url: Annotated[
        str | None, typer.Option(help="URL clients use to reach this node [default: http://127.0.0.1:8080].")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL of the metadata database, e.g. postgresql+psycopg://user@host/db "
            "[default: GENOSHARE_DATABASE_URL, else SQLite in the data directory]; kept in genoshare.toml."
        ),
    ] = None,
) -> None:
    """Create a node: config file, Crypt4GH node key, database schema and audit chain (SQLite by default)."""
    given = {"public_url": public_url, "database_url": database_url}
    settings = node_settings(data_dir, **{key: value for key, value in given.items() if value is not None})
    if not settings.database_url.startswith("sqlite"):
        # Before anything is made: a database the node cannot reach leaves no half-made node behind.
        problem = database_problem(settings.database_url)
        if problem is not None:
            raise fail(problem.line())
    with reported():
        init_node(settings).close()
    console.print(
        f"node ready in [bold]{settings.data_dir}[/] (database {settings.database_url.split('://')[0]}, "
        f"objects {settings.objects_url})"
    )


@datasets_app.command("create")
def datasets_create(
    dataset_id: Annotated[str, typer.Argument(help="Short id, e.g. cohort1.")],
    title: Annotated[str, typer.Option(help="Human-readable title.")],
    custodian: Annotated[str, typer.Option(help="Who owns the data (institution or person).")],
    duo: Annotated[
        list[str],
        typer.Option(
            "--duo", help="DUO consent code, repeatable: GRU, NPU, DS:MONDO:0005015, TS:12, MOR:2027-01-31 ..."
        ),
    ],
    access: Annotated[str, typer.Option(help="public | registered | controlled")] = "controlled",
    description: str = "",
    license: Annotated[str, typer.Option(help="Data licence or agreement name.")] = "",
    keep_sample_names: Annotated[
        bool, typer.Option(help="Do not pseudonymise VCF sample names (only for data that is already public).")
    ] = False,
    store_plaintext: Annotated[
        bool,
        typer.Option(
            help="Store the files unencrypted and serve them straight from disk (fastest); public datasets only."
        ),
    ] = False,
    data_dir: DataDir = Path("node"),
) -> None:
    """Create a dataset with its consent codes and access level."""
    node = open_node(data_dir)
    with reported():
        dataset = build_datasets(node).create(
            NewDataset(
                id=dataset_id,
                title=title,
                custodian=custodian,
                access_level=access,
                duo_codes=duo,
                description=description,
                license=license,
                pseudonymise=not keep_sample_names,
                store_plaintext=store_plaintext,
            )
        )
    at_rest = "; files stored unencrypted" if dataset.store_plaintext else ""
    console.print(
        f"dataset [bold]{dataset.id}[/] created ({dataset.access_level}; {' '.join(dataset.duo_codes)}{at_rest})"
    )


@datasets_app.command("list")
def datasets_list(data_dir: DataDir = Path("node"), as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List datasets."""
    rows = build_datasets(open_node(data_dir)).list()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "id": d.id,
                        "title": d.title,
                        "custodian": d.custodian,
                        "access": d.access_level,
                        "duo": d.duo_codes,
                    }
                    for d in rows
                ],
                indent=2,
            )
        )
        return
    table = Table(whole("id"), "title", "custodian", "access", "consent codes")
    for d in rows:
        table.add_row(d.id, d.title, d.custodian, d.access_level, " ".join(d.duo_codes))
    console.print(table)


@app.command()
def ingest(
    dataset_id: Annotated[str, typer.Argument(help="Dataset to add the files to.")],
    files: Annotated[list[Path], typer.Argument(help="VCF/BCF/BAM/CRAM files.", exists=True, dir_okay=False)],
    data_dir: DataDir = Path("node"),
    engine: IndexEngine = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Files validated, de-identified and encrypted at once, each in a worker process "
            "(default: the cores, at most 4).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Validate, de-identify, encrypt, index and publish files; all of them or none."""
    from genoshare.ingest.workers import default_jobs
    from genoshare.node import build_ingestor

    node = open_node(data_dir)
    join_run(node.settings.data_dir)  # the server's /metrics shows this ingest's progress and outcome
    from genoshare.operations.metrics import IngestMetrics

    metrics = IngestMetrics()
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=errors, transient=True) as bars:
        tasks: dict[tuple[str, str], TaskID] = {}

        def progress(name: str, stage: str, done: int, total: int) -> None:
            key = (name, stage)
            if key not in tasks:
                tasks[key] = bars.add_task(f"{stage:>8} {name}", total=total)
            bars.update(tasks[key], completed=done, total=total)
            metrics.progress(name, stage, done, total)

        with reported(), metrics.ingest(len(files)):
            result = build_ingestor(node, engine).ingest(dataset_id, files, progress, jobs=jobs or default_jobs())
            metrics.published(len(result.published), len(result.unchanged))
    for row in result.published:
        console.print(f"published [bold]{row.id}[/] ({row.format}, {row.size:,} bytes, sha256 {row.sha256[:12]}…)")
    for name in result.unchanged:
        console.print(f"unchanged {name} (same content already in {dataset_id})")


@objects_app.command("list")
def objects_list(
    dataset_id: str, data_dir: DataDir = Path("node"), as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """List a dataset's files with their DRS ids, sizes and checksums."""
    with reported():
        rows = build_datasets(open_node(data_dir)).objects(dataset_id)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "id": o.id,
                        "name": o.name,
                        "format": o.format,
                        "size": o.size,
                        "md5": o.md5,
                        "sha256": o.sha256,
                        "htsget_id": o.htsget_id,
                        # Its index, a DRS object of its own (None for a file stored without one).
                        "index": index_id(o),
                    }
                    for o in rows
                ],
                indent=2,
            )
        )
        return
    table = Table(whole("DRS id"), "format", "size", whole("sha256"), whole("index (DRS id)"))
    for o in rows:
        table.add_row(o.id, o.format, f"{o.size:,}", o.sha256, index_id(o) or "")
    console.print(table)


@audit_app.command("verify")
def audit_verify(
    data_dir: DataDir = Path("node"),
    head: Annotated[
        Path | None,
        typer.Option(help="A head exported by `audit head --export`: fail if the chain no longer holds it."),
    ] = None,
) -> None:
    """Recompute the keyed chain; exit 1 and name the first bad entry if anything was edited, removed or moved."""
    anchor = _read_anchor(head) if head is not None else None
    node = open_node(data_dir)
    report = node.audit.verify()
    if not report.ok:
        raise fail(f"audit log BROKEN at entry {report.first_bad_seq}: {report.problem}")
    if anchor is not None:
        problem = node.audit.verify_anchor(anchor, node.issuer.key)
        if problem is not None:
            raise fail(f"audit log BROKEN: {problem}")
    anchored = f"; holds the head exported at {anchor.get('exported_at')}" if anchor is not None else ""
    console.print(f"audit log intact: {report.entries} entries, head {report.head}{anchored}")


def _read_anchor(path: Path) -> dict[str, object]:
    try:
        anchor = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise fail(f"cannot read the exported head {path}: {error}") from None
    if not isinstance(anchor, dict):
        raise fail(f"{path} is not an exported audit head (a JSON object from `genoshare audit head --export`)")
    return anchor


@audit_app.command("adopt")
def audit_adopt(
    data_dir: DataDir = Path("node"),
    operator: Annotated[str, typer.Option(help="Who adopts the chain (recorded in its adoption entry).")] = "",
) -> None:
    """Key a chain written before audit keys existed: verify it unkeyed, re-hash it, append an entry saying so.

    Only for a node made before audit keys: a keyed node whose key is missing restores it from backup
    instead (whoever deleted it may have rewritten the database as a valid unkeyed chain).
    """
    node = open_node(data_dir)
    with reported():
        report = node.audit.adopt(operator or f"operator:{os.environ.get('USER', 'unknown')}")
    console.print(f"audit log adopted and keyed: {report.entries} entries, head {report.head}")


@audit_app.command("report")
def audit_report(
    dataset_id: Annotated[str, typer.Argument(help="Dataset to report on.")],
    participant: Annotated[str | None, typer.Option(help="Only what served this pseudonym's data.")] = None,
    grant: Annotated[str | None, typer.Option(help="Only the uses relying on this grant (visa jti).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    data_dir: DataDir = Path("node"),
) -> None:
    """Who used a dataset (or one participant's data): when, how much, by which route, under which project."""
    node = open_node(data_dir)
    with reported():
        build_datasets(node).get(dataset_id)
    uses = build_usage(node).of(dataset_id, participant, grant)
    if as_json:
        typer.echo(json.dumps([use.as_dict() for use in uses], indent=2))
        return
    scope = (f", participant {participant}" if participant else "") + (f", grant {grant}" if grant else "")
    console.print(usage_table(uses, f"Use of {dataset_id}{scope}"))


@datasets_app.command("committee")
def datasets_committee(
    dataset_id: str,
    member: Annotated[list[str], typer.Option("--member", help="Committee member as subject@issuer; repeatable.")],
    auto_approve: Annotated[
        bool, typer.Option(help="Approve at once the requests that DUO matching fully permits.")
    ] = False,
    data_dir: DataDir = Path("node"),
) -> None:
    """Name the data access committee of a dataset (replaces the previous list)."""
    node = open_node(data_dir)
    with reported():
        dataset = build_datasets(node).set_committee(dataset_id, member, auto_approve)
    console.print(f"committee of {dataset.id}: {', '.join(dataset.committee)}; auto-approve {dataset.auto_approve}")


@audit_app.command("head")
def audit_head(
    data_dir: DataDir = Path("node"),
    export: Annotated[
        Path | None,
        typer.Option(help="Write the head, signed with the node's key, to this file; keep it off the node."),
    ] = None,
) -> None:
    """Print the chain's head (entries and hash); with --export, save it signed, to anchor it outside the node."""
    node = open_node(data_dir)
    if export is None:
        report = node.audit.verify()
        typer.echo(f"{report.entries} {report.head}")
        return
    try:
        anchor = node.audit.signed_head(node.issuer.key, node.issuer.issuer)
    except AuditKeyError as error:
        raise fail(str(error)) from None
    try:
        export.write_text(json.dumps(anchor, indent=2) + "\n")
    except OSError as error:
        raise fail(f"cannot write {export}: {error}") from None
    typer.echo(f"{anchor['seq']} {anchor['hash']} (signed head written to {export})")


@app.command()
def serve(
    data_dir: DataDir = Path("node"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes (privacy and revocation state is shared).")
    ] = 1,
    proxy_headers: Annotated[
        bool, typer.Option(help="Take the client address and scheme from X-Forwarded-* (behind a proxy).")
    ] = False,
    forwarded_allow_ips: Annotated[
        str, typer.Option(help="Comma-separated proxy addresses whose X-Forwarded-* headers are believed.")
    ] = "127.0.0.1",
    root_path: Annotated[
        str, typer.Option(help="The path prefix a proxy strips, e.g. /genoshare (also put it in public_url).")
    ] = "",
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate chain (PEM); serve HTTPS.")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM) of --ssl-certfile.")] = None,
    log_format: Annotated[str, typer.Option(help="json (one object a line) or text.")] = "json",
) -> None:
    """Serve the node's APIs (DRS, htsget, Beacon, service-info) with uvicorn, within the node's server limits.

    Settings, database, keys and files are checked first (as `genoshare check` does): a problem refuses the
    start, one line each; so do unsafe settings when `environment` is prod.
    """
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise fail("give both --ssl-certfile and --ssl-keyfile, or neither")
    for path in (ssl_certfile, ssl_keyfile):
        if path is not None and not path.is_file():
            raise fail(f"{path} does not exist")
    if log_format not in ("json", "text"):
        raise fail(f"--log-format {log_format}: write json or text")
    if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
        raise fail(f"--root-path {root_path}: write it as /prefix (a leading slash, none at the end)")
    _, problems = checked_settings(data_dir)
    warn(problems)
    node = open_node(data_dir)
    with reported():
        node.audit.key()  # every request appends to the chain: a missing key refuses to start, in one line
    # Before prometheus_client is imported: every worker (and ingests meanwhile) adds to one /metrics.
    start_run(node.settings.data_dir)
    from genoshare.api.server import ServeOptions, run

    scheme = "https" if ssl_certfile else "http"
    console.print(
        f"serving {node.settings.node_name} on {scheme}://{host}:{port}{root_path} "
        f"(public URL {node.settings.public_url}; {workers} worker{'s' if workers > 1 else ''})"
    )
    options = ServeOptions(
        host=host,
        port=port,
        workers=workers,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        root_path=root_path,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        log_format="text" if log_format == "text" else "json",
    )
    try:
        run(node, options)
    finally:
        node.close()  # its HTTP client's connections to issuers and brokers, and the database pool


@app.command()
def demo(
    data_dir: DataDir = Path("demo-node"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Prepare the demo node and exit.")] = False,
    broker_port: Annotated[
        int | None, typer.Option(help="Port of the demo passport broker the portal signs in at (default: port + 1).")
    ] = None,
) -> None:
    """Init a node with demo data (htsget test files, a synthetic cohort) and serve it, with its web portal."""
    from genoshare.demo.broker import start_in_thread
    from genoshare.demo.setup import prepare_demo

    broker_port = broker_port or port + 1
    public_url, broker_url = f"http://{host}:{port}", f"http://{host}:{broker_port}"
    if not no_serve:
        ensure_port_free(host, port)
        ensure_port_free(host, broker_port)
    info = prepare_demo(data_dir, public_url, console, broker_url=broker_url)
    console.print(info.instructions(), soft_wrap=True)
    if not no_serve:
        # DEMO ONLY: the stand-in passport broker, in this process beside the node.
        start_in_thread(host, broker_port, Path(data_dir), (f"{public_url}/portal/signin/callback",))
        serve(data_dir=data_dir, host=host, port=port)


def main() -> None:
    """Run the CLI; a bug still ends in one line (``GENOSHARE_TRACEBACK=1`` shows the traceback)."""
    # Whatever a command writes (database, staging, indexes, keys) is for this user only.
    os.umask(PRIVATE_UMASK)
    try:
        app()
    except AuditKeyError as error:  # a command that appends to the chain, on a node whose key is missing
        errors.print(f"[bold red]error:[/] {error.message}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
    except Exception as error:
        if os.environ.get("GENOSHARE_TRACEBACK"):
            raise
        first = (str(error).strip().splitlines() or [""])[0]
        errors.print(
            f"[bold red]error:[/] internal error, {type(error).__name__}: {first} "
            "(a bug in genoshare; rerun with GENOSHARE_TRACEBACK=1 and report it)",
            highlight=False,
            soft_wrap=True,
        )
        raise SystemExit(70) from None
