"""Whom a dataset actually serves: its access requests by the requester's country and sector, with outcomes.

A committee sees from this whether its data reaches researchers beyond a few rich institutions: requests
and approvals per country and sector (declared with the request; the affiliation comes from the
requester's passport), how long decisions took, and why requests were denied. Each dataset of a
multi-dataset request counts with the decision taken on that dataset.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from genoshare.store.db import Database
from genoshare.store.models import AccessRequest

#: Shown for a request that did not say (requests made before the country and sector were asked).
UNSTATED = "not stated"
#: The CSV's columns: one line per request.
#: How a spreadsheet's formula may start (OWASP, CSV injection): a cell starting so is prefixed with ``'``.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = ("dataset", "request", "submitted", "country", "sector", "affiliation", "status", "decided", "days", "reason")


@dataclass(frozen=True)
class RequestRow:
    """One request as the report counts it for one dataset."""

    request: str
    created_at: datetime
    country: str
    sector: str
    affiliation: str
    status: str
    decided_at: datetime | None
    reason: str

    @property
    def days_to_decision(self) -> float | None:
        if self.decided_at is None:
            return None
        return (self.decided_at - self.created_at).total_seconds() / 86400


@dataclass
class Group:
    """Requests from one country or one sector, by outcome."""

    name: str
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return sum(self.counts.values())

    @property
    def approved(self) -> int:
        # A revoked grant was approved first: it served the requester for a while.
        return self.counts["approved"] + self.counts["revoked"]


@dataclass(frozen=True)
class AccessReport:
    dataset: str
    rows: tuple[RequestRow, ...]

    def by(self, attribute: str) -> list[Group]:
        """Groups by ``country`` or ``sector``, most requests first."""
        groups: dict[str, Group] = {}
        for row in self.rows:
            name = getattr(row, attribute) or UNSTATED
            groups.setdefault(name, Group(name)).counts[row.status] += 1
        return sorted(groups.values(), key=lambda g: (-g.requests, g.name))

    @property
    def days_to_decision(self) -> list[float]:
        return [days for row in self.rows if (days := row.days_to_decision) is not None]

    @property
    def median_days_to_decision(self) -> float | None:
        days = self.days_to_decision
        return statistics.median(days) if days else None

    @property
    def denial_reasons(self) -> list[tuple[str, int]]:
        """Reasons of rejections, most frequent first."""
        counted = Counter(row.reason or UNSTATED for row in self.rows if row.status == "rejected")
        return sorted(counted.items(), key=lambda item: (-item[1], item[0]))

    def csv(self) -> str:
        """One line per request, for a spreadsheet: the figures of the page can be recomputed from it."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in self.rows:
            days = row.days_to_decision
            writer.writerow(
                _cell(value)
                for value in [
                    self.dataset,
                    row.request,
                    row.created_at.isoformat(),
                    row.country or UNSTATED,
                    row.sector or UNSTATED,
                    row.affiliation,
                    row.status,
                    row.decided_at.isoformat() if row.decided_at else "",
                    "" if days is None else f"{days:.2f}",
                    row.reason,
                ]
            )
        return out.getvalue()


def _cell(value: str) -> str:
    """A cell a spreadsheet shows as text: an affiliation from a passport (``=HYPERLINK(...)``) runs nothing."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def dataset_status(request: AccessRequest, dataset_id: str) -> tuple[str, datetime | None, str]:
    """The state of ``dataset_id`` in ``request``: its own decision if it has one, else the request's."""
    decision = (request.decisions or {}).get(dataset_id)
    if decision is not None:
        return decision["status"], datetime.fromisoformat(decision["at"]), decision.get("note", "")
    return request.status, request.decided_at, request.reason


def access_report(database: Database, dataset_id: str) -> AccessReport:
    with database.sessions() as session:
        requests = list(session.scalars(select(AccessRequest).order_by(AccessRequest.created_at)))
    rows = []
    for request in requests:
        if dataset_id not in request.datasets:
            continue
        status, decided_at, reason = dataset_status(request, dataset_id)
        rows.append(
            RequestRow(
                request.id,
                request.created_at,
                request.country.upper(),
                request.sector,
                request.affiliation,
                status,
                decided_at if status != "pending" else None,
                reason if status in ("rejected", "revoked") else "",
            )
        )
    return AccessReport(dataset_id, tuple(rows))
