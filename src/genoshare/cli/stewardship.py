"""Stewards' lifecycle commands: edit, delete, Beacon policy of a dataset; remove or find a file; find a person."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from genoshare.access.roles import Operator
from genoshare.cli.common import DataDir, console, fail, open_node, reported
from genoshare.governance.lifecycle import Removal
from genoshare.ingest.deidentify import Pseudonymiser
from genoshare.node import PSEUDONYM_KEY_FILE, build_datasets, build_lifecycle
from genoshare.store.models import Dataset

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
YesOption = Annotated[bool, typer.Option("--yes", help="Delete without asking (required when not at a terminal).")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")]


def _removal(remove: Callable[[bool], Removal], what: str, yes: bool, dry_run: bool, as_json: bool) -> None:
    """Show what ``remove`` takes away, ask (or require ``--yes``), then do it; the outcome as text or JSON."""
    with reported():
        plan = remove(True)
    if not dry_run and not yes:
        if not sys.stdin.isatty():
            raise fail(f"deleting {what} cannot be undone: add --yes (or --dry-run to list what would go)")
        _print_removal(plan)
        if not typer.confirm(f"Delete {what}?", default=False):
            raise fail("nothing deleted")
    done = plan
    if not dry_run:
        with reported():
            done = remove(False)
    if as_json:
        typer.echo(json.dumps(done.as_dict(), indent=2))
    else:
        _print_removal(done)
    if done.left:
        raise fail(
            f"{len(done.left)} stored file(s) could not be deleted (nothing serves them; the audit log lists them; "
            "`genoshare objects sweep` deletes them once the store works): " + " ".join(done.left)
        )


def _print_removal(removal: Removal) -> None:
    verb = "would delete" if removal.dry_run else "deleted"
    subject = f"dataset {removal.id}" if removal.kind == "dataset" else f"file {removal.id} of {removal.dataset}"
    console.print(f"{verb} {subject}:", soft_wrap=True, highlight=False)
    lines = [
        f"{len(removal.objects)} file(s): {' '.join(removal.objects)}" if removal.objects else "",
        f"{len(removal.stored)} stored object(s) (files, indexes, per-consent subsets)",
        f"Beacon index: {' '.join(removal.beacon_indexes)}" if removal.beacon_indexes else "",
        f"{len(removal.grants)} grant(s): {' '.join(removal.grants)}" if removal.grants else "",
        *(f"access request {request}: dataset {state}" for request, state in removal.requests.items()),
        f"{removal.participants} participant(s)" + (" and their consent records" if removal.kind == "dataset" else ""),
    ]
    for line in filter(None, lines):
        console.print(f"  {line}", soft_wrap=True, highlight=False)


def _dataset_json(dataset: Dataset) -> dict[str, Any]:
    return {
        "id": dataset.id,
        "title": dataset.title,
        "description": dataset.description,
        "custodian": dataset.custodian,
        "license": dataset.license,
        "access": dataset.access_level,
        "duo": dataset.duo_codes,
        "beacon_policy": dataset.beacon_policy or {},
    }


def register(datasets_app: typer.Typer, consent_app: typer.Typer, objects_app: typer.Typer) -> None:
    @objects_app.command("find")
    def objects_find(
        checksum: Annotated[str, typer.Argument(help="sha256:<hex> or md5:<hex> of the file (as served or ingested).")],
        as_json: JsonOption = False,
        data_dir: DataDir = Path("node"),
    ) -> None:
        """The DRS objects with this checksum, in any dataset: which file a checksum in a report names."""
        node = open_node(data_dir)
        with reported():
            found = build_datasets(node).objects_by_checksum(checksum)
        rows = [{"id": o.id, "dataset": o.dataset_id, "name": o.name, "sha256": o.sha256, "md5": o.md5} for o in found]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            raise fail(f"no DRS object has the checksum {checksum}")
        for row in rows:
            console.print(f"{row['id']}  ({row['dataset']}, {row['name']})", soft_wrap=True)

    @datasets_app.command("delete")
    def datasets_delete(
        dataset_id: str,
        yes: YesOption = False,
        dry_run: DryRunOption = False,
        as_json: JsonOption = False,
        data_dir: DataDir = Path("node"),
    ) -> None:
        """Delete a dataset: its files, Beacon index, participants and grants; its access requests are closed.

        Serving stops first (one transaction), then the stored bytes go; the audit log keeps the history and
        records who deleted it. The id cannot be used again (visas naming it may still circulate).
        """
        lifecycle = build_lifecycle(open_node(data_dir))
        actor = Operator.at_command_line().actor
        _removal(
            lambda dry: lifecycle.delete_dataset(dataset_id, actor, dry_run=dry),
            f"dataset {dataset_id}",
            yes,
            dry_run,
            as_json,
        )

    @objects_app.command("remove")
    def objects_remove(
        object_id: Annotated[str, typer.Argument(help="The file's DRS id (genoshare objects list DATASET).")],
        yes: YesOption = False,
        dry_run: DryRunOption = False,
        as_json: JsonOption = False,
        data_dir: DataDir = Path("node"),
    ) -> None:
        """Remove one file: DRS, htsget and Beacon stop serving it at once, then its stored bytes are deleted.

        Running downloads of it are cut; the dataset's grants and requests stay. The audit log records it.
        """
        lifecycle = build_lifecycle(open_node(data_dir))
        actor = Operator.at_command_line().actor
        _removal(
            lambda dry: lifecycle.remove_object(object_id, actor, dry_run=dry),
            f"file {object_id}",
            yes,
            dry_run,
            as_json,
        )

    @objects_app.command("sweep")
    def objects_sweep(as_json: JsonOption = False, data_dir: DataDir = Path("node")) -> None:
        """Delete the stored bytes that earlier removals could not (the store failed); `genoshare check` lists them.

        Nothing serves them already. Bytes that a later ingest of the same file uses again stay. Audited.
        """
        lifecycle = build_lifecycle(open_node(data_dir))
        with reported():
            done = lifecycle.sweep(Operator.at_command_line().actor)
        if as_json:
            typer.echo(json.dumps(done.as_dict(), indent=2))
        else:
            console.print(
                f"deleted {len(done.done)} stored file(s) left by earlier removals"
                + (f"; {len(done.kept)} kept, used again by data published since" if done.kept else ""),
                soft_wrap=True,
                highlight=False,
            )
        if done.left:
            raise fail(f"{len(done.left)} stored file(s) still cannot be deleted: " + " ".join(done.left))

    @datasets_app.command("update")
    def datasets_update(
        dataset_id: str,
        title: Annotated[str | None, typer.Option(help="New title.")] = None,
        description: Annotated[str | None, typer.Option(help="New description.")] = None,
        custodian: Annotated[str | None, typer.Option(help="New custodian.")] = None,
        license: Annotated[str | None, typer.Option(help="New licence or agreement name.")] = None,
        as_json: JsonOption = False,
        data_dir: DataDir = Path("node"),
    ) -> None:
        """Edit a dataset's title, description, custodian or licence (not its access level or consent codes)."""
        node = open_node(data_dir)
        with reported():
            dataset = build_datasets(node).update(
                dataset_id, title=title, description=description, custodian=custodian, license=license
            )
        if as_json:
            typer.echo(json.dumps(_dataset_json(dataset), indent=2))
            return
        console.print(f"dataset [bold]{dataset.id}[/] updated: {dataset.title} ({dataset.custodian})")

    @datasets_app.command("beacon-policy")
    def datasets_beacon_policy(
        dataset_id: str,
        set_file: Annotated[
            Path | None,
            typer.Option(
                "--set", help="A JSON file with the new policy (min_count, count_rounding, privacy; docs/privacy.md)."
            ),
        ] = None,
        data_dir: DataDir = Path("node"),
    ) -> None:
        """Print a dataset's Beacon disclosure and privacy policy (JSON), or replace it with --set FILE."""
        node = open_node(data_dir)
        datasets = build_datasets(node)
        with reported():
            if set_file is None:
                dataset = datasets.get(dataset_id)
            else:
                try:
                    policy = json.loads(set_file.read_text())
                except (OSError, UnicodeDecodeError, ValueError) as error:
                    raise fail(f"cannot read a JSON policy from {set_file}: {error}") from None
                dataset = datasets.set_beacon_policy(dataset_id, policy)
        typer.echo(json.dumps(dataset.beacon_policy or {}, indent=2, sort_keys=True))

    @consent_app.command("find")
    def consent_find(
        dataset_id: str,
        source_id: Annotated[str, typer.Argument(help="The institution's own id of the person (the sample name).")],
        as_json: JsonOption = False,
        data_dir: DataDir = Path("node"),
    ) -> None:
        """The pseudonym and consent of the person the institution knows as SOURCE_ID (never served by an API).

        The database keeps no source id, only a hash of it under the node's pseudonym key: found by that hash.
        """
        node = open_node(data_dir)
        datasets = build_datasets(node)
        with reported():
            datasets.get(dataset_id)
            key = node.settings.keys_dir / PSEUDONYM_KEY_FILE
            if not key.is_file():
                raise fail(f"no participants exist yet in this node ({key} is missing: nothing was ingested)")
            person = datasets.participant_by_source(
                dataset_id, Pseudonymiser(key.read_bytes()).source_key(dataset_id, source_id)
            )
        found = {
            "dataset": dataset_id,
            "pseudonym": person.pseudonym,
            "consent": person.consent_status,
            "restrictions": person.consent_restrictions or [],
        }
        if as_json:
            typer.echo(json.dumps(found, indent=2))
            return
        narrowed = f", narrowed by {' '.join(found['restrictions'])}" if found["restrictions"] else ""
        console.print(f"{person.pseudonym} in {dataset_id}: consent {person.consent_status}{narrowed}", soft_wrap=True)
