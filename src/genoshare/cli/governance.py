"""``genoshare access`` (requests and committee decisions) and ``genoshare consent`` (participants).

The command line acts as the node's steward (``steward@cli``), who may decide for any committee.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from genoshare.cli.common import DataDir, console, fail, open_node, reported
from genoshare.duo.purpose import ResearchPurpose
from genoshare.errors import GenoshareError
from genoshare.governance.consent import ConsentService
from genoshare.governance.rederive import rederive_pending
from genoshare.governance.requests import STEWARD, AccessRequests, NewRequest, view
from genoshare.governance.usage import Route, Use

access_app = typer.Typer(help="Access requests: list, show, approve, reject, revoke.", no_args_is_help=True)
consent_app = typer.Typer(
    help="Participants' consent: list, issue links, narrow, widen, withdraw.", no_args_is_help=True
)


def usage_table(uses: list[Use], title: str) -> Table:
    table = Table("user", "first", "last", "requests", "bytes", "routes", "projects", "purposes", title=title)
    for use in uses:
        table.add_row(
            use.actor,
            f"{use.first:%Y-%m-%d %H:%M}",
            f"{use.last:%Y-%m-%d %H:%M}",
            str(use.requests),
            f"{use.bytes_served:,}",
            "; ".join(_route_text(name, route) for name, route in sorted(use.routes.items())),
            "; ".join(sorted(use.projects)),
            "; ".join(sorted(use.purposes)),
        )
    return table


def _route_text(name: str, route: Route) -> str:
    """``htsget 2 (1,234 bytes)``, ``beacon 3 (12 records, 1 count)``: what one route served."""
    parts = [f"{route.bytes_served:,} bytes" if route.bytes_served else ""]
    parts += [f"{route.records} records" if route.records else "", f"{route.counts} counts" if route.counts else ""]
    shown = ", ".join(part for part in parts if part)
    return f"{name} {route.requests}" + (f" ({shown})" if shown else "")


@access_app.command("request")
def access_request(
    passport_file: Annotated[Path, typer.Option(help="File holding your GA4GH passport (JWT).", exists=True)],
    dataset: Annotated[list[str], typer.Option("--dataset", help="Controlled dataset id; repeatable.")],
    purpose_file: Annotated[
        Path,
        typer.Option(
            help='Research purpose as JSON, e.g. {"primary": "DS", "diseases": ["MONDO:0005148"]}.', exists=True
        ),
    ],
    project: Annotated[str, typer.Option(help="Project title.")],
    institution: Annotated[str, typer.Option(help="Your institution.")],
    data_dir: DataDir = Path("node"),
) -> None:
    """Request access as a researcher; prints the DUO match and the request's status."""
    node = open_node(data_dir)
    try:
        identity = node.passports.verify(passport_file.read_text().strip())
        purpose = ResearchPurpose.model_validate_json(purpose_file.read_text())
        request = AccessRequests(node).submit(identity, NewRequest(dataset, purpose, project, institution))
    except ValidationError as error:
        raise fail(f"{purpose_file}: {error.errors()[0]['msg']} at {error.errors()[0]['loc']}") from None
    except GenoshareError as error:
        raise fail(error.message) from None
    console.print(f"request {request.id}: [bold]{request.status}[/]")
    access_show(request.id, data_dir)


@access_app.command("list")
def access_list(
    status: Annotated[str | None, typer.Option(help="pending | approved | rejected | revoked")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    data_dir: DataDir = Path("node"),
) -> None:
    """List access requests with their DUO match outcome per dataset."""
    requests = [r for r in AccessRequests(open_node(data_dir)).visible_to(STEWARD) if status in (None, r.status)]
    if as_json:
        typer.echo(json.dumps([view(r) for r in requests], indent=2))
        return
    table = Table("id", "requester", "datasets", "project", "status", "DUO match")
    for r in requests:
        matched = ", ".join(f"{d}: {m['outcome']}" for d, m in r.match.items())
        table.add_row(r.id, r.requester, " ".join(r.datasets), r.project_title, r.status, matched)
    console.print(table)


@access_app.command("show")
def access_show(request_id: str, data_dir: DataDir = Path("node")) -> None:
    """One request with the reasons behind each consent code's outcome."""
    with reported():
        request = AccessRequests(open_node(data_dir)).get(request_id, STEWARD)
    console.print(f"[bold]{request.project_title}[/] ({request.institution}) by {request.requester}: {request.status}")
    for dataset_id, result in request.match.items():
        console.print(f"  {dataset_id}: [bold]{result['outcome']}[/]")
        for code in result["codes"]:
            for reason in code["reasons"]:
                console.print(f"    {code['code']}: {reason}", highlight=False)


@access_app.command("approve")
def access_approve(
    request_id: str,
    expires: Annotated[str | None, typer.Option(help="Last day of access, YYYY-MM-DD (default: one year).")] = None,
    data_dir: DataDir = Path("node"),
) -> None:
    """Approve a pending request: the node signs a ControlledAccessGrants visa per dataset."""
    try:
        end = dt.date.fromisoformat(expires) if expires else None
        request = AccessRequests(open_node(data_dir)).approve(request_id, STEWARD, end)
    except ValueError as error:
        raise fail(f"--expires: {error}") from None
    except GenoshareError as error:
        raise fail(error.message) from None
    console.print(f"approved {request.id} until {request.expires_at:%Y-%m-%d}")


@access_app.command("reject")
def access_reject(
    request_id: str, reason: Annotated[str, typer.Option(help="Why.")], data_dir: DataDir = Path("node")
) -> None:
    """Reject a pending request with a reason the requester will see."""
    with reported():
        AccessRequests(open_node(data_dir)).reject(request_id, STEWARD, reason)
    console.print(f"rejected {request_id}")


@access_app.command("revoke")
def access_revoke(
    request_id: str, reason: Annotated[str, typer.Option(help="Why.")], data_dir: DataDir = Path("node")
) -> None:
    """Revoke an approval; every API refuses the grant from its next request on."""
    with reported():
        AccessRequests(open_node(data_dir)).revoke(request_id, STEWARD, reason)
    console.print(f"revoked {request_id}")


@consent_app.command("list")
def consent_list(
    dataset_id: str, as_json: Annotated[bool, typer.Option("--json")] = False, data_dir: DataDir = Path("node")
) -> None:
    """Participants of a dataset (by pseudonym) with their consent state."""
    records = ConsentService(open_node(data_dir)).records(dataset_id)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in records], indent=2))
        return
    table = Table("participant", "status", "restrictions", "updated", "files")
    for r in records:
        table.add_row(r.participant, r.status, " ".join(r.restrictions), r.updated_at or "", str(len(r.files)))
    console.print(table)


@consent_app.command("link")
def consent_link(dataset_id: str, pseudonym: str, data_dir: DataDir = Path("node")) -> None:
    """Issue a participant's secret consent token (hand it over privately; only its hash is kept)."""
    node = open_node(data_dir)
    service = ConsentService(node)
    with reported():
        token = service.issue_link(service.find(dataset_id, pseudonym), STEWARD)
    console.print(f"consent token for {pseudonym}: {token}")
    console.print(f"the participant uses it as header X-Consent-Token on {node.settings.public_url}/consent")


@consent_app.command("narrow")
def consent_narrow(
    dataset_id: str,
    pseudonym: str,
    code: Annotated[list[str], typer.Option("--code", help="DUO modifier, e.g. NCU; repeatable.")],
    data_dir: DataDir = Path("node"),
) -> None:
    """Record a participant's narrower consent (e.g. no commercial use)."""
    service = ConsentService(open_node(data_dir))
    with reported():
        record = service.narrow(service.find(dataset_id, pseudonym), code, STEWARD)
    console.print(f"{pseudonym}: restrictions now {' '.join(record.restrictions)}")


@consent_app.command("widen")
def consent_widen(
    dataset_id: str,
    pseudonym: str,
    code: Annotated[list[str], typer.Option("--code", help="A narrowing to lift, e.g. NCU; repeatable.")],
    data_dir: DataDir = Path("node"),
) -> None:
    """Lift a participant's earlier narrowing (they consent to that use again)."""
    service = ConsentService(open_node(data_dir))
    with reported():
        record = service.widen(service.find(dataset_id, pseudonym), code, STEWARD)
    console.print(f"{pseudonym}: restrictions now {' '.join(record.restrictions) or 'none'}")


@consent_app.command("withdraw")
def consent_withdraw(dataset_id: str, pseudonym: str, data_dir: DataDir = Path("node")) -> None:
    """Withdraw a participant: left out of every answer at once; shared files are rewritten without them."""
    node = open_node(data_dir)
    service = ConsentService(node)
    with reported():
        result = service.withdraw(service.find(dataset_id, pseudonym), STEWARD)
    console.print(f"{pseudonym} withdrawn; unavailable now: {', '.join(result.unavailable) or 'none'}")
    with console.status("re-deriving shared files without them …"):
        done = rederive_pending(node)
    console.print(f"re-derived: {', '.join(done) or 'none'}")


@consent_app.command("rederive")
def consent_rederive(data_dir: DataDir = Path("node")) -> None:
    """Finish re-deriving files a stopped server left blocked."""
    done = rederive_pending(open_node(data_dir))
    console.print(f"re-derived: {', '.join(done) or 'none'}")


privacy_app = typer.Typer(help="Beacon privacy defences: link the accounts of one person.", no_args_is_help=True)


@privacy_app.command("link")
def privacy_link(
    account: Annotated[str, typer.Argument(help="subject@issuer, as in the audit log.")],
    other: Annotated[str, typer.Argument(help="Another account of the same person.")],
    data_dir: DataDir = Path("node"),
) -> None:
    """Record that two accounts are one person: from now on they share one privacy budget."""
    for name in (account, other):
        if "@" not in name:
            raise fail(f"{name!r}: accounts are named subject@issuer")
    principal = open_node(data_dir).privacy.link_accounts(account, other, by=STEWARD)
    console.print(f"{account} and {other} now share the budget of {principal}")
