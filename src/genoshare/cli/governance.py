"""``genoshare access`` (requests and committee decisions) and ``genoshare consent`` (participants).

The command line acts as the node's operator (``genoshare.access.roles.Operator``): whoever runs it on the
node's data directory holds its keys and database, so acts as steward of every dataset and may decide for
any committee. The audit log names them ``operator:<their login name>``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import segno
import typer
from pydantic import ValidationError
from rich.table import Table

from genoshare.access.privacy import LEVEL_NAMES, parse_account
from genoshare.access.roles import Operator
from genoshare.cli.common import DataDir, console, errors, fail, open_node, reported, whole
from genoshare.duo.purpose import ResearchPurpose
from genoshare.errors import GenoshareError, InvalidInput
from genoshare.governance.rederive import Rederivation
from genoshare.governance.requests import NewRequest, view
from genoshare.governance.usage import Route, Use
from genoshare.node import build_access_requests, build_consent, build_datasets, build_rederiver

REQUEST_STATES = ("pending", "approved", "rejected", "revoked")

access_app = typer.Typer(
    help="Access requests: list, show, approve, reject, revoke; as the node's operator, steward of every dataset.",
    no_args_is_help=True,
)
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
    passport, purpose_text = _read_text(passport_file), _read_text(purpose_file)
    try:
        identity = node.passports.verify(passport.strip())
        purpose = ResearchPurpose.model_validate_json(purpose_text)
        request = build_access_requests(node).submit(identity, NewRequest(dataset, purpose, project, institution))
    except ValidationError as error:
        raise fail(f"{purpose_file}: {error.errors()[0]['msg']} at {error.errors()[0]['loc']}") from None
    except GenoshareError as error:
        raise fail(error.message) from None
    console.print(f"request {request.id}: [bold]{request.status}[/]")
    access_show(request.id, data_dir)


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise fail(f"{path}: cannot read it as text: {error}") from None


@access_app.command("list")
def access_list(
    status: Annotated[str | None, typer.Option(help="pending | approved | rejected | revoked")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    data_dir: DataDir = Path("node"),
) -> None:
    """List access requests with their DUO match outcome per dataset."""
    if status not in (None, *REQUEST_STATES):
        raise fail(f"--status {status!r}: one of {', '.join(REQUEST_STATES)}")
    requests = build_access_requests(open_node(data_dir)).visible_to(Operator.at_command_line(), status)
    if as_json:
        typer.echo(json.dumps([view(r) for r in requests], indent=2))
        return
    table = Table(whole("id"), "requester", "datasets", "project", "status", "DUO match")
    for r in requests:
        matched = ", ".join(f"{d}: {m['outcome']}" for d, m in r.match.items())
        table.add_row(r.id, r.requester, " ".join(r.datasets), r.project_title, r.status, matched)
    console.print(table)


@access_app.command("show")
def access_show(request_id: str, data_dir: DataDir = Path("node")) -> None:
    """One request with the reasons behind each consent code's outcome."""
    with reported():
        request = build_access_requests(open_node(data_dir)).get(request_id, Operator.at_command_line())
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
        request = build_access_requests(open_node(data_dir)).approve(request_id, Operator.at_command_line(), end)
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
        build_access_requests(open_node(data_dir)).reject(request_id, Operator.at_command_line(), reason)
    console.print(f"rejected {request_id}")


@access_app.command("revoke")
def access_revoke(
    request_id: str, reason: Annotated[str, typer.Option(help="Why.")], data_dir: DataDir = Path("node")
) -> None:
    """Revoke an approval; every API refuses the grant from its next request on."""
    with reported():
        build_access_requests(open_node(data_dir)).revoke(request_id, Operator.at_command_line(), reason)
    console.print(f"revoked {request_id}")


@consent_app.command("list")
def consent_list(
    dataset_id: str, as_json: Annotated[bool, typer.Option("--json")] = False, data_dir: DataDir = Path("node")
) -> None:
    """Participants of a dataset (by pseudonym) with their consent state."""
    node = open_node(data_dir)
    with reported():
        build_datasets(node).get(dataset_id)
    records = build_consent(node).records(dataset_id)
    waiting = build_rederiver(node).blocked(dataset_id)
    if as_json:
        problems = {file.object_id: file for file in waiting}
        rows = [
            {
                **r.as_dict(),
                "blocked": [
                    {"file": f, "failure": problems[f].failure, "failed_at": _iso(problems[f].failed_at)}
                    for f in r.files
                    if f in problems
                ],
            }
            for r in records
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(whole("participant"), "status", "restrictions", "updated", "files")
    for r in records:
        table.add_row(r.participant, r.status, " ".join(r.restrictions), r.updated_at or "", str(len(r.files)))
    console.print(table)
    for file in waiting:
        if file.failure is None:
            console.print(f"blocked until re-derived: {file.object_id} (waiting)", highlight=False)
        else:
            console.print(
                f"blocked until re-derived: {file.object_id}; last attempt failed {file.failed_at:%Y-%m-%d %H:%M} "
                f"UTC: {file.failure} (retried by the server and by `genoshare consent rederive`)",
                highlight=False,
                soft_wrap=True,
            )


@consent_app.command("link")
def consent_link(
    dataset_id: str,
    pseudonym: str,
    also: Annotated[
        list[str] | None,
        typer.Option(help="The same person in another dataset, as DATASET:PSEUDONYM; repeatable: one link for all."),
    ] = None,
    qr: Annotated[Path | None, typer.Option(help="Also write the link as a QR code to this PNG file.")] = None,
    data_dir: DataDir = Path("node"),
) -> None:
    """Issue a participant's personal consent link (hand it over privately; only its hash is kept).

    Opening the link shows the participant what their consent allows and who used their data, and lets them
    narrow, widen or withdraw it. A new link replaces the old one.
    """
    node = open_node(data_dir)
    service = build_consent(node)
    others = []
    for item in also or []:
        other_dataset, sep, other_pseudonym = item.partition(":")
        if not sep or not other_dataset or not other_pseudonym:
            raise fail(f"--also {item!r}: give DATASET:PSEUDONYM")
        with reported():
            others.append(service.find(other_dataset, other_pseudonym))
    with reported():
        token = service.issue_link(service.find(dataset_id, pseudonym), Operator.at_command_line().actor, others)
    link = f"{node.settings.public_url}/consent/{token}"
    if qr is not None:
        try:
            segno.make(link, error="m").save(str(qr), kind="png", scale=8, border=4)
        except OSError as error:
            raise fail(f"--qr {qr}: {error.strerror or error}") from None
    console.print(f"consent link for {pseudonym}: {link}", highlight=False, soft_wrap=True)
    if qr is not None:
        console.print(f"QR code of the link: {qr}", highlight=False)
    console.print(f"(API clients send the secret {token} as header X-Consent-Token)", highlight=False, soft_wrap=True)


@consent_app.command("narrow")
def consent_narrow(
    dataset_id: str,
    pseudonym: str,
    code: Annotated[list[str], typer.Option("--code", help="DUO modifier, e.g. NCU; repeatable.")],
    data_dir: DataDir = Path("node"),
) -> None:
    """Record a participant's narrower consent (e.g. no commercial use)."""
    service = build_consent(open_node(data_dir))
    with reported():
        record = service.narrow(service.find(dataset_id, pseudonym), code, Operator.at_command_line().actor)
    console.print(f"{pseudonym}: restrictions now {' '.join(record.restrictions)}")


@consent_app.command("matchmaking")
def consent_matchmaking(
    dataset_id: str,
    pseudonym: str,
    allow: Annotated[
        bool, typer.Option("--allow/--refuse", help="The participant's choice on rare-disease matchmaking.")
    ],
    data_dir: DataDir = Path("node"),
) -> None:
    """Record a participant's choice on rare-disease matchmaking (Matchmaker Exchange)."""
    service = build_consent(open_node(data_dir))
    with reported():
        service.set_matchmaking(service.find(dataset_id, pseudonym), allow, Operator.at_command_line().actor)
    console.print(f"{pseudonym}: matchmaking {'allowed' if allow else 'refused'}")


@consent_app.command("widen")
def consent_widen(
    dataset_id: str,
    pseudonym: str,
    code: Annotated[list[str], typer.Option("--code", help="A narrowing to lift, e.g. NCU; repeatable.")],
    data_dir: DataDir = Path("node"),
) -> None:
    """Lift a participant's earlier narrowing (they consent to that use again)."""
    service = build_consent(open_node(data_dir))
    with reported():
        record = service.widen(service.find(dataset_id, pseudonym), code, Operator.at_command_line().actor)
    console.print(f"{pseudonym}: restrictions now {' '.join(record.restrictions) or 'none'}")


@consent_app.command("withdraw")
def consent_withdraw(dataset_id: str, pseudonym: str, data_dir: DataDir = Path("node")) -> None:
    """Withdraw a participant: left out of every answer at once; shared files are rewritten without them."""
    node = open_node(data_dir)
    service = build_consent(node)
    with reported():
        result = service.withdraw(service.find(dataset_id, pseudonym), Operator.at_command_line().actor)
    console.print(f"{pseudonym} withdrawn", highlight=False)
    console.print(f"no longer served (only they were in it): {', '.join(result.unavailable) or 'none'}")
    console.print(f"blocked until rewritten without them: {', '.join(result.rederiving) or 'none'}")
    with console.status("re-deriving shared files without them …"):
        outcome = build_rederiver(node).rederive_pending()
    _report_rederivation(outcome)


@consent_app.command("rederive")
def consent_rederive(data_dir: DataDir = Path("node")) -> None:
    """Retry re-deriving the files still blocked (a stopped server, or a failed attempt)."""
    _report_rederivation(build_rederiver(open_node(data_dir)).rederive_pending())


def _iso(at: dt.datetime | None) -> str | None:
    return None if at is None else (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).isoformat()


def _report_rederivation(outcome: Rederivation) -> None:
    """What was rewritten on stdout; each failure as one line on stderr, and exit 1 if there was any."""
    console.print(f"re-derived: {', '.join(outcome.done) or 'none'}")
    for object_id, reason in outcome.failed.items():
        errors.print(
            f"[bold red]error:[/] {object_id} stays blocked for every grantee, re-deriving failed: {reason}",
            highlight=False,
            soft_wrap=True,
        )
    if outcome.failed:
        raise typer.Exit(1)


privacy_app = typer.Typer(help="Beacon privacy defences: link the accounts of one person.", no_args_is_help=True)


@privacy_app.command("link")
def privacy_link(
    account: Annotated[
        str, typer.Argument(help="subject@issuer as in the audit log; an e-mail subject: alice@uni.example@https://idp")
    ],
    other: Annotated[str, typer.Argument(help="Another account of the same person.")],
    data_dir: DataDir = Path("node"),
) -> None:
    """Record that two accounts are one person: from now on they share one privacy budget.

    Their attack-watch counts are judged together at once: a walk split over the two is flagged now.
    """
    with reported():
        for name in (account, other):
            parse_account(name)
    node = open_node(data_dir)
    guard = node.privacy
    with reported():
        first, second = guard.canonical_account(account), guard.canonical_account(other)
    if first == second:
        raise fail(f"{account!r} and {other!r} are the same account, {first}")
    operator = Operator.at_command_line().actor
    principal = guard.link_accounts(first, second, by=operator)
    console.print(f"{first} and {second} now share the budget of {principal}")
    if guard.watch is None:
        return
    rules = {}
    for dataset in build_datasets(node).list():
        try:
            found = [rule for level in LEVEL_NAMES if (rule := guard.settings(dataset, level).watch_rule) is not None]
        except InvalidInput as error:
            errors.print(f"[bold yellow]warning:[/] not judged on {dataset.id}: {error.message}", highlight=False)
            continue
        if found:  # the access level whose rule flags soonest: the steward is told, nothing is refused
            rules[dataset.id] = min(found, key=lambda rule: (rule.min_evidence, rule.min_share))
    for flag in guard.watch.review(principal, rules, second, f"; counted together once {operator} linked {first}"):
        console.print(f"flagged on {flag.dataset_id} as a possible membership attack: {flag.reason}", soft_wrap=True)
