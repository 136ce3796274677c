"""Clinical commands: load clinical significance, look a variant up, ask the matchmaking peers.

Mounted on the main CLI by ``register(app)``: ``genoshare annotations load``, ``genoshare clinical lookup``
and ``genoshare clinical match``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from genoshare.access.roles import Operator
from genoshare.cli.common import DataDir, console, fail, open_node, reported
from genoshare.clinical.mme import parse_request
from genoshare.node import build_annotations, build_beacon, build_clinical_lookup, build_matchmaker_client

annotations_app = typer.Typer(
    help="Clinical significance the lookup reports (a ClinVar-format VCF).", no_args_is_help=True
)
clinical_app = typer.Typer(
    help="Clinical use: variant lookup, rare-disease matchmaking with Matchmaker Exchange peers.", no_args_is_help=True
)


@annotations_app.command("load")
def annotations_load(
    vcf: Annotated[Path, typer.Argument(help="ClinVar-format VCF (plain or .gz) with CLNSIG, CLNDN, CLNREVSTAT.")],
    assembly: Annotated[str | None, typer.Option(help="Assembly, if the VCF has no ##reference line.")] = None,
    source: Annotated[str | None, typer.Option(help="Source name [default: ##source, else ClinVar].")] = None,
    data_dir: DataDir = Path("node"),
) -> None:
    """Load (or replace) a release of clinical significance: every lookup reports it with its source and date."""
    node = open_node(data_dir)
    with reported():
        try:
            loaded = build_annotations(node).load(vcf, assembly, source)
        finally:
            node.close()
    date = f" of {loaded.source_date}" if loaded.source_date else ""
    console.print(f"{loaded.records} variants loaded from {loaded.source}{date} ({loaded.assembly})")


@clinical_app.command("lookup")
def clinical_lookup(
    variant: Annotated[str, typer.Argument(help="VCF coordinates (1-12345-A-G) or HGVS (NC_000001.11:g.12345A>G).")],
    assembly: Annotated[str, typer.Option(help="Assembly of VCF coordinates.")] = "GRCh38",
    passport_file: Annotated[
        Path | None, typer.Option(help="Ask with this passport (JWT) [default: anonymously].", exists=True)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    data_dir: DataDir = Path("node"),
) -> None:
    """What is known about a variant: gene, clinical significance, and the node's counts as the Beacon gives them."""
    node = open_node(data_dir)
    with reported():
        try:
            identity = None
            if passport_file is not None:
                try:
                    token = passport_file.read_text().strip()
                except (OSError, UnicodeDecodeError) as error:
                    raise fail(f"{passport_file}: cannot read it as text: {error}") from None
                identity = node.passports.verify(token)
            answer = build_clinical_lookup(node, build_beacon(node)).lookup(variant, identity, assembly)
        finally:
            node.close()
    if as_json:
        print(json.dumps(answer, indent=2))
        return
    console.print(f"[bold]{answer['variant']['label']}[/]  gene: {', '.join(answer['genes']) or 'none known'}")
    if "vrs" in answer["variant"]:
        console.print(f"  GA4GH VRS id {answer['variant']['vrs']['id']}")
    for item in answer["clinicalSignificance"]:
        conditions = "; ".join(item["conditions"]) or "no condition given"
        console.print(
            f"  {item['significance']} ({item['reviewStatus']}) for {conditions}"
            f" [dim]{item['source']} {item['sourceDate']}[/]"
        )
    table = Table("dataset", "access", "level", "exists", "carriers", "allele frequency")
    for row in answer["datasets"]:
        table.add_row(
            row["dataset"],
            row["accessLevel"],
            row.get("granularity", "not consulted"),
            "" if "exists" not in row else ("yes" if row["exists"] else "no"),
            str(row.get("carriers", "")),
            "" if "alleleFrequency" not in row else f"{row['alleleFrequency']:.4g}",
        )
    console.print(table)
    for note in answer["notes"]:
        console.print(f"[dim]{note}[/]")


@clinical_app.command("match")
def clinical_match(
    patient_file: Annotated[Path, typer.Argument(help="An MME match request (JSON with a patient).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    data_dir: DataDir = Path("node"),
) -> None:
    """Send a patient to every configured Matchmaker Exchange peer; each peer's answer or why there is none."""
    try:
        body = json.loads(patient_file.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise fail(f"{patient_file}: cannot read it: {error}") from None
    except json.JSONDecodeError as error:
        raise fail(f"{patient_file}: not JSON: {error}") from None
    node = open_node(data_dir)
    with reported():
        try:
            request = parse_request(body)
            answers = build_matchmaker_client(node).search(request, Operator.at_command_line().actor)
        finally:
            node.close()
    if as_json:
        print(json.dumps([answer.as_dict() for answer in answers], indent=2))
        return
    for answer in answers:
        status = f"{answer.status} in {answer.seconds:.2f} s"
        console.print(f"[bold]{answer.peer}[/]: {status}" + (f" ({answer.message})" if answer.message else ""))
        for result in answer.results:
            patient = result["patient"]
            contact = patient.get("contact", {})
            console.print(
                f"  {result['score']['patient']:.3f}  {patient['id']}  contact {contact.get('name')} "
                f"<{contact.get('href')}>"
            )
    if not any(answer.status == "answered" for answer in answers):
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.add_typer(annotations_app, name="annotations")
    app.add_typer(clinical_app, name="clinical")
