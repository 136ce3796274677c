"""The data steward's pages, and every committee's access report (equity: whom a dataset actually serves).

Stewards (``roles.stewards``) see each dataset's files, ingest history, participants by pseudonym with
their consent state, Beacon privacy-budget refusals, files waiting to be rewritten after a withdrawal, the
audit chain's verification, and the people whose Beacon questions looked like a membership attack; they
set a dataset's licence, data access agreement, citation and the committee's mail address. A dataset's
access report (requests and approvals by the requester's country and sector, time to decision, denial
reasons) is open to its committee too, as a page, a CSV and a bar chart drawn on the server as inline SVG
(no script).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup, escape

from genoshare.governance.report import AccessReport, Group, access_report
from genoshare.governance.stewardship import Stewardship
from genoshare.node import Node, build_rederiver
from genoshare.portal.i18n import N_
from genoshare.portal.web import (
    COMMITTEE,
    PREFIX,
    STEWARD,
    NavItem,
    Viewer,
    flash,
    portal_of,
    portal_router,
    redirect,
    render,
    require_role,
    t,
)

router = portal_router()
NAV: list[NavItem] = [NavItem(f"{PREFIX}/steward", N_("Stewardship"), frozenset({STEWARD}))]
StewardDep = Annotated[Viewer, Depends(require_role(STEWARD))]
ReportDep = Annotated[Viewer, Depends(require_role(COMMITTEE, STEWARD))]

#: The chart's geometry, in SVG user units.
BAR_HEIGHT, GAP, LABEL_WIDTH, CHART_WIDTH = 22, 10, 130, 560


def stewardship(request: Request) -> Stewardship:
    """Built once per application, from the composition root's parts."""
    built: Stewardship | None = getattr(request.app.state, "stewardship", None)
    if built is None:
        node: Node = request.app.state.node
        built = Stewardship(node.database, node.audit, build_rederiver(node).blocked)
        request.app.state.stewardship = built
    return built


@router.get("/steward")
def steward_home(request: Request, viewer: StewardDep) -> HTMLResponse:
    portal = portal_of(request)
    return render(
        request,
        "steward/home.html",
        datasets=portal.services.datasets.list(),
        chain=stewardship(request).chain(),
        flags=stewardship(request).flags(),
    )


@router.get("/steward/datasets/{dataset_id}")
def dataset_page(request: Request, dataset_id: str, viewer: StewardDep) -> HTMLResponse:
    return render(request, "steward/dataset.html", overview=stewardship(request).overview(dataset_id))


@router.post("/steward/datasets/{dataset_id}/terms")
def set_terms(
    request: Request,
    dataset_id: str,
    viewer: StewardDep,
    license: Annotated[str, Form(max_length=200)] = "",
    agreement: Annotated[str, Form(max_length=20000)] = "",
    citation: Annotated[str, Form(max_length=2000)] = "",
    committee_email: Annotated[str, Form(max_length=320)] = "",
) -> RedirectResponse:
    stewardship(request).set_terms(
        dataset_id,
        viewer.actor,
        license=license,
        agreement=agreement,
        citation=citation,
        committee_email=committee_email,
    )
    flash(request, t(request, "The dataset's terms are saved."), "success")
    return redirect(f"{PREFIX}/steward/datasets/{dataset_id}")


# -- the access report ---------------------------------------------------------------------------------


def _report(request: Request, viewer: Viewer, dataset_id: str) -> AccessReport:
    """The report, for the dataset's committee or a steward only (``genoshare.access`` decides)."""
    portal = portal_of(request)
    assert viewer.identity is not None
    portal.roles.require_committee(viewer.identity, [dataset_id])
    portal.services.datasets.get(dataset_id)  # a steward passes for any name: one of no dataset is a 404
    return access_report(portal.services.datasets.database, dataset_id)


@dataclass(frozen=True)
class Chart:
    """A horizontal bar chart: per group, its requests and, over them, its approvals."""

    title: str
    groups: list[Group]

    def svg(self, requests_label: str, approved_label: str) -> Markup:
        most = max([g.requests for g in self.groups] or [1])
        scale = (CHART_WIDTH - LABEL_WIDTH - 40) / most
        height = len(self.groups) * (BAR_HEIGHT + GAP) + 40
        title = escape(self.title)
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_WIDTH} {height}" role="img" '
            f'aria-label="{title}" class="chart"><title>{title}</title>'
        ]
        for row, group in enumerate(self.groups):
            y = row * (BAR_HEIGHT + GAP)
            name = escape(group.name)
            parts.append(f'<text x="0" y="{y + 16}" font-size="14" fill="#1b1b1b">{name}</text>')
            parts.append(
                f'<rect x="{LABEL_WIDTH}" y="{y}" width="{group.requests * scale:.1f}" height="{BAR_HEIGHT}" '
                f'fill="#9fb8d6"><title>{name}: {group.requests} {escape(requests_label)}</title></rect>'
            )
            parts.append(
                f'<rect x="{LABEL_WIDTH}" y="{y + 5}" width="{group.approved * scale:.1f}" height="{BAR_HEIGHT - 10}" '
                f'fill="#0b4f9c"><title>{name}: {group.approved} {escape(approved_label)}</title></rect>'
            )
            parts.append(
                f'<text x="{LABEL_WIDTH + group.requests * scale + 6:.1f}" y="{y + 16}" font-size="14" '
                f'fill="#1b1b1b">{group.approved}/{group.requests}</text>'
            )
        legend = len(self.groups) * (BAR_HEIGHT + GAP) + 10
        parts.append(f'<rect x="0" y="{legend}" width="14" height="14" fill="#9fb8d6"/>')
        parts.append(f'<text x="20" y="{legend + 12}" font-size="13" fill="#1b1b1b">{escape(requests_label)}</text>')
        parts.append(f'<rect x="180" y="{legend}" width="14" height="14" fill="#0b4f9c"/>')
        parts.append(f'<text x="200" y="{legend + 12}" font-size="13" fill="#1b1b1b">{escape(approved_label)}</text>')
        parts.append("</svg>")
        return Markup("".join(parts))  # noqa: S704 - every text in it is escaped above


@router.get("/reports/{dataset_id}")
def report_page(request: Request, dataset_id: str, viewer: ReportDep) -> HTMLResponse:
    report = _report(request, viewer, dataset_id)
    requests_label, approved_label = t(request, "requests"), t(request, "approved")
    charts = [
        Chart(t(request, "Requests and approvals by country"), report.by("country")).svg(
            requests_label, approved_label
        ),
        Chart(t(request, "Requests and approvals by sector"), report.by("sector")).svg(requests_label, approved_label),
    ]
    dataset = portal_of(request).services.datasets.get(dataset_id)
    return render(request, "steward/report.html", report=report, dataset=dataset, charts=charts)


@router.get("/reports/{dataset_id}/access-report.csv")
def report_csv(request: Request, dataset_id: str, viewer: ReportDep) -> Response:
    report = _report(request, viewer, dataset_id)
    return Response(
        report.csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{dataset_id}-access-report.csv"'},
    )
