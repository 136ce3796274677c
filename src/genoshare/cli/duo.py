"""``genoshare duo``: consent codes for data stewards, and a dry run of the consent check.

``match`` answers the question a data access committee asks before granting access, with the same
rules the node applies, so a steward can see why a request would be refused or sent to review.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from genoshare.duo.codes import parse_dataset_codes
from genoshare.duo.errors import DuoError
from genoshare.duo.matching import MatchResult, Outcome, ResearchPurpose, match
from genoshare.duo.parameters import PARAMETERS
from genoshare.duo.purpose import parse_category
from genoshare.duo.terms import DUO_VERSION, duo_release

#: Exit codes of ``duo match``. 2 is click's usage-error code, so review gets 3.
EXIT_CODES = {Outcome.PERMIT: 0, Outcome.DENY: 1, Outcome.NEEDS_REVIEW: 3}

_MATCH_HELP = """Decide whether a research purpose is permitted by a dataset's consent codes.

Repeat --dataset for each code of the dataset (GRU, DS:MONDO:0005015, TS:12,
DUO:0000007:MONDO:0005015, ...). --purpose is the category of the research:
NRES, GRU, HMB, POA or DS:MONDO:<id>. The flags say what the purpose declares.

Exit codes:
0 PERMIT: every code permits the purpose.
1 DENY: at least one code forbids it.
2 usage error: an unknown or malformed code, purpose or option.
3 NEEDS_REVIEW: nothing forbids it, but a person must check something.
"""

duo_app = typer.Typer(
    help=f"GA4GH Data Use Ontology (DUO {DUO_VERSION}) consent codes.",
    no_args_is_help=True,
)

_STYLE = {Outcome.PERMIT: "green", Outcome.DENY: "bold red", Outcome.NEEDS_REVIEW: "yellow"}


@duo_app.command("match", help=_MATCH_HELP)
def match_command(
    dataset: Annotated[list[str], typer.Option("--dataset", help="A consent code of the dataset (repeat).")],
    purpose: Annotated[str, typer.Option("--purpose", help="Purpose category: NRES, GRU, HMB, POA or DS:MONDO:<id>.")],
    disease: Annotated[
        list[str] | None, typer.Option("--disease", help="A further MONDO disease of a DS purpose (repeat).")
    ] = None,
    for_profit: Annotated[
        bool, typer.Option("--for-profit", help="The requester is a for-profit organisation.")
    ] = False,
    commercial: Annotated[bool, typer.Option("--commercial", help="The use is commercial.")] = False,
    methods: Annotated[bool, typer.Option("--methods", help="The research develops methods or software.")] = False,
    ancestry: Annotated[
        bool, typer.Option("--ancestry", help="The research studies population origins/ancestry.")
    ] = False,
    genetic: Annotated[bool, typer.Option("--genetic", help="A genetic study (genotype, +/- phenotype).")] = False,
    clinical_care: Annotated[bool, typer.Option("--clinical-care", help="The use is clinical care.")] = False,
    irb: Annotated[bool, typer.Option("--irb", help="Local IRB/ERB approval is in hand.")] = False,
    collaboration: Annotated[bool, typer.Option("--collaboration", help="Collaboration with the PIs agreed.")] = False,
    publish: Annotated[bool, typer.Option("--publish", help="Results will be made available.")] = False,
    return_data: Annotated[bool, typer.Option("--return-data", help="Derived data will be returned.")] = False,
    location: Annotated[str | None, typer.Option(help="Where the data will be used (GAZ id or place).")] = None,
    topic: Annotated[list[str] | None, typer.Option("--topic", help="A research topic, for RS (repeat).")] = None,
    requester: Annotated[str | None, typer.Option(help="Requester id, for US.")] = None,
    institution: Annotated[str | None, typer.Option(help="Institution, for IS.")] = None,
    project: Annotated[str | None, typer.Option(help="Project id, for PS.")] = None,
    on: Annotated[
        dt.datetime | None, typer.Option("--date", formats=["%Y-%m-%d"], help="Decision day [today].")
    ] = None,
    granted_on: Annotated[
        dt.datetime | None,
        typer.Option("--granted-on", formats=["%Y-%m-%d"], help="When access began, for TS."),
    ] = None,
    publication_date: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Planned publication day, for MOR.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    try:
        codes = parse_dataset_codes(dataset)
    except DuoError as error:
        raise typer.BadParameter(str(error), param_hint="'--dataset'") from None
    try:
        category, diseases = parse_category(purpose)
        research = ResearchPurpose(
            primary=category,
            diseases=(*diseases, *(disease or ())),
            for_profit=for_profit,
            commercial=commercial,
            methods_development=methods,
            population_ancestry=ancestry,
            genetic_study=genetic,
            clinical_care=clinical_care,
            irb_approval=irb,
            collaboration_agreed=collaboration,
            publication_planned=publish or publication_date is not None,
            return_of_results=return_data,
            location=location,
            topics=tuple(topic or ()),
            requester_id=requester,
            institution=institution,
            project_id=project,
            date=on.date() if on else dt.date.today(),
            access_granted_on=granted_on.date() if granted_on else None,
            publication_date=publication_date.date() if publication_date else None,
        )
        result = match(research, codes)
    except ValidationError as error:
        raise typer.BadParameter(_first_error(error), param_hint="'--purpose'") from None
    except DuoError as error:
        raise typer.BadParameter(str(error), param_hint="'--purpose'") from None
    if as_json:
        document = {"dataset": [str(c) for c in codes], "purpose": research.model_dump(mode="json")}
        typer.echo(json.dumps(document | result.to_dict(), indent=2))
    else:
        _print_result(result)
    raise typer.Exit(EXIT_CODES[result.outcome])


@duo_app.command("codes")
def codes_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the DUO consent codes and the parameter each one needs."""
    rows = [
        {
            "shorthand": term.shorthand,
            "id": term.id,
            "kind": term.kind.value,
            "label": term.label,
            "parameter": PARAMETERS[term.shorthand].description if term.shorthand in PARAMETERS else None,
            "example": PARAMETERS[term.shorthand].example if term.shorthand in PARAMETERS else term.shorthand,
        }
        for term in duo_release().consent_codes()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"DUO {DUO_VERSION} consent codes")
    for column in ("code", "id", "kind", "label", "parameter"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["shorthand"], row["id"], row["kind"], row["label"], row["example"] if row["parameter"] else ""
        )
    Console().print(table)


def _print_result(result: MatchResult) -> None:
    console = Console()
    style = _STYLE[result.outcome]
    console.print(f"[{style}]{result.outcome.value}[/]", highlight=False)
    table = Table(show_header=True)
    table.add_column("code")
    table.add_column("outcome")
    table.add_column("reasons")
    for decision in result.decisions:
        outcome = decision.outcome
        table.add_row(str(decision.code), f"[{_STYLE[outcome]}]{outcome.value}[/]", "\n".join(decision.reasons))
    console.print(table)
    if result.expires_on:
        console.print(f"access expires on {result.expires_on} (TS)", highlight=False)


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {message}" if where else message
