"""Commands for running a node: ``check``, ``settings-reference``, and the checks ``serve`` runs first."""

from __future__ import annotations

import json
from base64 import b64encode
from pathlib import Path
from typing import Annotated

import typer

from genoshare.access.roles import Operator
from genoshare.audit import Entry
from genoshare.cli.common import DataDir, console, errors, fail, node_settings, open_node, reported
from genoshare.crypt.errors import CryptError
from genoshare.operations.backup import backup, restore, verify
from genoshare.operations.checks import Problem, check_node, database_problem, load_checked, refusals
from genoshare.operations.rotation import rotate_node_key, rotate_ticket_secret, rotate_visa_key
from genoshare.operations.settings_docs import reference
from genoshare.operations.upgrade import pending, upgrade
from genoshare.settings import Settings
from genoshare.store.db import Database


def checked_settings(data_dir: Path) -> tuple[Settings, list[Problem]]:
    """The settings and the node's problems; exits with every problem that refuses the start, one per line."""
    settings, problems = load_checked(data_dir)
    if settings is not None:
        problems = check_node(settings)
        refused = refusals(settings, problems)
    else:
        refused = problems
    if refused:
        lines = [problem.line() + (" — refused in production" * (problem.kind == "unsafe")) for problem in refused]
        for line in lines[:-1]:
            errors.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        raise fail(lines[-1])
    assert settings is not None
    return settings, problems


def warn(problems: list[Problem]) -> None:
    for problem in problems:
        refused = " — refused in production" * (problem.kind == "unsafe")
        errors.print(f"[yellow]warning:[/] {problem.line()}{refused}", highlight=False, soft_wrap=True)


db_app = typer.Typer(help="The node's metadata database: schema upgrades.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the pending migrations; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    data_dir: DataDir = Path("node"),
) -> None:
    """Migrate the database schema to this genoshare's version (take a backup first), or list what would change."""
    settings = node_settings(data_dir)
    if not settings.keys_dir.is_dir():
        raise fail(f"{data_dir} is not a genoshare node: run `genoshare init --data-dir {data_dir}` first")
    problem = database_problem(settings.database_url)
    if problem is not None:
        raise fail(problem.line())
    database = Database(settings.database_url)
    try:
        with reported():
            done = pending(database.engine) if dry_run else upgrade(database.engine, settings.keys_dir)
    finally:
        database.dispose()
    if as_json:
        typer.echo(json.dumps([{"revision": m.revision, "summary": m.summary} for m in done], indent=2))
        return
    verb = "would apply" if dry_run else "applied"
    if not done:
        console.print("the database schema is up to date")
    for migration in done:
        console.print(f"{verb} {migration.revision}: {migration.summary}", soft_wrap=True)


rotate_app = typer.Typer(help="Replace a key without rewriting data or stopping downloads.", no_args_is_help=True)


@rotate_app.command("ticket-secret")
def rotate_ticket_secret_command(data_dir: DataDir = Path("node")) -> None:
    """New download tickets under a new secret; those already handed out keep working until they expire."""
    node = open_node(data_dir)
    try:
        rotate_ticket_secret(node.settings.keys_dir)
    except OSError as error:
        raise fail(f"cannot rotate the ticket secret in {node.settings.keys_dir}: {error.strerror}") from None
    finally:
        node.close()
    console.print(
        "ticket secret rotated: running servers sign with the new one within a second; tickets already "
        f"handed out work until they expire (at most {node.settings.ticket_ttl_seconds} s)"
    )


@rotate_app.command("visa-key")
def rotate_visa_key_command(data_dir: DataDir = Path("node")) -> None:
    """A new key signs this node's visas; the old one stays in its JWKS until the grants it signed expire."""
    node = open_node(data_dir)
    try:
        kid = rotate_visa_key(node)
    except (OSError, ValueError) as error:
        raise fail(f"cannot rotate the visa-signing key in {node.settings.keys_dir}: {error}") from None
    finally:
        node.close()
    console.print(f"visa-signing key rotated: new kid {kid}; the old key stays in /.well-known/jwks.json")


@rotate_app.command("node-key")
def rotate_node_key_command(data_dir: DataDir = Path("node")) -> None:
    """A new Crypt4GH node key: every stored file's header re-encrypted to it (data untouched), the old one deleted.

    Running servers follow without a restart. Stopped half-way (a crash, Ctrl-C), the node still serves every
    file; run the command again to finish (it carries on where it stopped). Take a backup first.
    """
    node = open_node(data_dir)
    try:
        with reported():
            done = rotate_node_key(node.settings.keys_dir, node.objects, waiting=_waiting_for_writers)
            details = {
                "rewritten": done.rewritten,
                "already": done.already,
                "public_key": b64encode(done.public_key).decode(),
            }
            node.audit.record(
                Entry(Operator.at_command_line().actor, "keys.rotate", "keys/node", "permit", "node key", details)
            )
    except (OSError, CryptError) as error:
        raise fail(f"node key rotation stopped: {error}; the node serves every file: run it again to finish") from None
    finally:
        node.close()
    console.print(
        f"node key rotated: {done.rewritten} stored headers re-encrypted to the new key "
        f"({done.already} already were); the old secret key is deleted",
        soft_wrap=True,
    )


def _waiting_for_writers() -> None:
    console.print(
        "node key rotation: waiting for a process (an ingest?) to store the files it encrypted to the old key",
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(rotate_app, name="rotate")

    @app.command("backup")
    def backup_command(
        archive: Annotated[Path, typer.Argument(help="The archive to write (a new file; keep it as safe as keys).")],
        data_dir: DataDir = Path("node"),
    ) -> None:
        """Write the whole node to one archive: database, objects, indexes, keys, configuration, audit chain."""
        node = open_node(data_dir)
        try:
            with reported():
                manifest = backup(node, archive)
        finally:
            node.close()
        files = manifest["files"]
        audit = manifest["audit"]
        assert isinstance(files, dict) and isinstance(audit, dict)
        console.print(f"backup written to {archive}: {len(files)} files, audit chain {audit['entries']} entries")

    @app.command("restore")
    def restore_command(
        archive: Annotated[Path, typer.Argument(help="An archive written by `genoshare backup`.")],
        data_dir: DataDir = Path("node"),
        database_url: Annotated[
            str | None, typer.Option(help="An empty PostgreSQL database, for the backup of a PostgreSQL node.")
        ] = None,
    ) -> None:
        """Restore a backup into a new data directory, then verify every file and the audit chain."""
        with reported():
            manifest = restore(archive, data_dir, database_url)
        node = open_node(data_dir)
        try:
            with reported():
                verified = verify(node, manifest)
        finally:
            node.close()
        console.print(
            f"restored into {node.settings.data_dir} and verified: {verified.files} files, "
            f"audit chain intact ({verified.audit_entries} entries, head {verified.audit_head})"
        )

    @app.command()
    def check(data_dir: DataDir = Path("node")) -> None:
        """Check settings, database, keys, files and object store; print each problem with its fix, one a line.

        Exit 1 if the node could not start; unsafe settings (placeholders, test keys, readable files, short
        secrets) are warnings on a dev node and errors on a production one (``environment = "prod"``).
        """
        settings, problems = checked_settings(data_dir)
        warn([problem for problem in problems if problem.kind != "error"])
        console.print(f"node {settings.data_dir} ({settings.environment}): can start; {len(problems)} warning(s)")

    @app.command("settings-reference")
    def settings_reference(
        output: Annotated[Path | None, typer.Option(help="Write the page here (e.g. docs/settings.md).")] = None,
    ) -> None:
        """Print (or write) the reference of every setting: key, environment variable, default, meaning."""
        page = reference()
        if output is None:
            typer.echo(page, nl=False)
            return
        try:
            output.write_text(page)
        except OSError as error:
            raise fail(f"cannot write {output}: {error.strerror}") from None
        console.print(f"settings reference written to {output}")
