"""Stewards' lifecycle commands: edit a dataset, set its Beacon policy, find a participant's pseudonym."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from genoshare.cli.common import DataDir, console, fail, open_node, reported
from genoshare.ingest.deidentify import Pseudonymiser
from genoshare.node import PSEUDONYM_KEY_FILE, build_datasets
from genoshare.store.models import Dataset

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


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

        The pseudonym is recomputed from the node's pseudonym key, so the mapping needs no list of names.
        """
        node = open_node(data_dir)
        datasets = build_datasets(node)
        with reported():
            dataset = datasets.get(dataset_id)
            if dataset.pseudonymise:
                key = node.settings.keys_dir / PSEUDONYM_KEY_FILE
                if not key.is_file():
                    raise fail(f"no pseudonyms exist yet in this node ({key} is missing: nothing was ingested)")
                pseudonym = Pseudonymiser(key.read_bytes()).pseudonym(dataset_id, source_id)
            else:
                pseudonym = source_id  # a dataset ingested with --keep-sample-names
            person = datasets.participant(dataset_id, pseudonym)
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
