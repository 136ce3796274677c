"""Reads peers' Beacon answers and merges them into one, honestly.

Only what the Beacon v2 response schemas guarantee is read: ``responseSummary.exists``, the optional
``numTotalResults``, ``meta.returnedGranularity`` and the result sets' required fields (``id``, ``setType``,
``exists``, ``resultsCount``, ``results``), so any Beacon v2 implementation can be a peer. An answer that
breaks them is reported as invalid and not merged.

The merge adds nothing a peer did not give: each peer's result sets are passed on as they came (with the
node they came from); a total is given only when every node that answered gave one (a sum leaving out a
node that answered yes/no would read as "none" next to its "yes"); the level is the one the nodes actually
gave, never more; and every node that did not answer is named with why, in ``info.network`` and as a
handover to ask it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from genoshare.access.granularity import Granularity

GRANULARITIES = {"boolean": Granularity.BOOLEAN, "count": Granularity.COUNT, "record": Granularity.RECORD}

ANSWERED = "answered"
#: Why a node is missing from an answer: no answer within its deadline, no connection, it refused the
#: request (401, 403, 429), it failed (any other status, a broken connection), or its answer is not Beacon v2.
TIMEOUT, UNREACHABLE, REFUSED, ERROR, INVALID = "timeout", "unreachable", "refused", "error", "invalid"

NOT_ANSWERED_NOTICE = (
    "These nodes gave no answer that could be used, so this answer says nothing about their data (see "
    "info.network.nodes for why, and beaconHandovers to ask them directly)."
)
#: The handover type of "ask this node directly": EDAM's "Database search" operation.
DATABASE_SEARCH = {"id": "EDAM:operation_2421", "label": "Database search"}


class InvalidAnswer(ValueError):
    """A peer's answer is not a Beacon v2 entry response."""


@dataclass(frozen=True)
class PeerResult:
    """What a peer answered, as far as the schemas guarantee it."""

    exists: bool
    granularity: Granularity
    total: int | None
    result_sets: list[dict[str, Any]] = field(default_factory=list)
    #: A genoshare peer's per-dataset notes (``info.datasets``): how each of its datasets answered, and why.
    datasets: list[Any] | None = None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _result_set(item: Any, index: int) -> dict[str, Any]:
    where = f"response.resultSets[{index}]"
    if not isinstance(item, dict):
        raise InvalidAnswer(f"{where} is not an object")
    if not isinstance(item.get("id"), str) or not isinstance(item.get("setType"), str):
        raise InvalidAnswer(f"{where} has no string id and setType")
    if not isinstance(item.get("exists"), bool) or not _count(item.get("resultsCount")):
        raise InvalidAnswer(f"{where} has no boolean exists and non-negative integer resultsCount")
    results = item.get("results")
    if not isinstance(results, list) or not all(isinstance(result, dict) for result in results):
        raise InvalidAnswer(f"{where}.results is not a list of objects")
    if "info" in item and not isinstance(item["info"], dict):
        raise InvalidAnswer(f"{where}.info is not an object")
    return item


def read_answer(document: Any) -> PeerResult:
    """A peer's entry answer (boolean, count or result sets), or ``InvalidAnswer`` saying what is wrong."""
    if not isinstance(document, dict):
        raise InvalidAnswer("the answer is not a JSON object")
    if not isinstance(document.get("meta"), dict):
        raise InvalidAnswer("the answer has no meta")
    summary = document.get("responseSummary")
    if not isinstance(summary, dict) or not isinstance(summary.get("exists"), bool):
        raise InvalidAnswer("the answer has no boolean responseSummary.exists")
    total = summary.get("numTotalResults")
    if total is not None and not _count(total):
        raise InvalidAnswer("responseSummary.numTotalResults is not a non-negative integer")
    response = document.get("response")
    result_sets: list[dict[str, Any]] = []
    if response is not None:
        if not isinstance(response, dict) or not isinstance(response.get("resultSets"), list):
            raise InvalidAnswer("response has no resultSets list")
        result_sets = [_result_set(item, index) for index, item in enumerate(response["resultSets"])]
    # The level actually given, never more than the answer shows: a "count" without a total is a yes/no.
    shown = Granularity.BOOLEAN if total is None else Granularity.COUNT
    if response is not None:
        shown = Granularity.RECORD
    declared = GRANULARITIES.get(document["meta"].get("returnedGranularity"), shown)
    info = document.get("info")
    datasets = info.get("datasets") if isinstance(info, dict) else None
    return PeerResult(
        exists=summary["exists"],
        granularity=min(declared, shown),
        total=total,
        result_sets=result_sets,
        datasets=datasets if isinstance(datasets, list) else None,
    )


@dataclass(frozen=True)
class NodeAnswer:
    """One node's part of a network answer: what it answered, or why not."""

    name: str
    url: str
    #: The query as the node itself would take it (a handover when it did not answer).
    query_url: str
    status: str
    seconds: float
    reason: str | None = None
    result: PeerResult | None = None
    #: Whether the caller's passport was sent, and if not, why.
    passport: str = "none given"
    #: The HTTP status of a node that refused or failed (what a network of one would answer).
    http_status: int | None = None

    def describe(self) -> dict[str, Any]:
        note: dict[str, Any] = {
            "name": self.name,
            "url": self.url,
            "status": self.status,
            "seconds": round(self.seconds, 4),
            "passport": self.passport,
        }
        if self.reason:
            note["reason"] = self.reason
        if self.result is not None:
            note["exists"] = self.result.exists
            note["returnedGranularity"] = self.result.granularity.beacon
            if self.result.total is not None:
                note["numTotalResults"] = self.result.total
            if self.result.datasets is not None:
                note["datasets"] = self.result.datasets
        return note


def merge(meta: dict[str, Any], nodes: list[NodeAnswer], deadline: float, problems: list[str]) -> dict[str, Any]:
    """The network answer: ``meta`` (without ``returnedGranularity``) of the node that asks, then the nodes'.

    Callers make sure at least one node answered: with none, there is nothing to say "no" about.
    """
    answered = [node for node in nodes if node.result is not None]
    results = [node.result for node in answered if node.result is not None]
    levels = [result.granularity for result in results]
    returned = (
        Granularity.RECORD
        if Granularity.RECORD in levels
        else Granularity.COUNT
        if levels and min(levels) >= Granularity.COUNT
        else Granularity.BOOLEAN
    )
    summary: dict[str, Any] = {"exists": any(result.exists for result in results)}
    totals = [result.total for result in results]
    if totals and all(total is not None for total in totals) and returned >= Granularity.COUNT:
        summary["numTotalResults"] = sum(total or 0 for total in totals)
    network: dict[str, Any] = {"deadlineSeconds": deadline, "nodes": [node.describe() for node in nodes]}
    missing = [node for node in nodes if node.result is None]
    if missing:
        network["notAnswered"] = {"nodes": [node.name for node in missing], "message": NOT_ANSWERED_NOTICE}
    if problems:
        network["problems"] = problems
    document: dict[str, Any] = {
        "meta": {**meta, "returnedGranularity": returned.beacon},
        "responseSummary": summary,
        "info": {"network": network},
    }
    if missing:
        document["beaconHandovers"] = [
            {
                "handoverType": DATABASE_SEARCH,
                "url": node.query_url,
                "note": f"{node.name} did not answer ({node.status}: {node.reason}); ask it directly.",
            }
            for node in missing
        ]
    sets = [_from_node(result_set, node) for node in answered if node.result for result_set in node.result.result_sets]
    if sets or returned == Granularity.RECORD:
        document["response"] = {"resultSets": sets}
    return document


def _from_node(result_set: dict[str, Any], node: NodeAnswer) -> dict[str, Any]:
    """The result set as the node gave it, its ``info`` saying which node that was."""
    info = dict(result_set.get("info") or {})
    info["node"] = {"name": node.name, "url": node.url}
    return {**result_set, "info": info}
