"""What a Beacon network says about itself: ``info``, ``map``, ``entry_types``, ``configuration``, ``filtering_terms``.

An aggregator (a Beacon network's portal, another hub) asks these of ``/network/api`` before it asks any
query. Each answer is this node's own document, as the network serves it, and names every peer with what
it said or why it did not answer, as entry answers do (``info.network``). Filtering terms are the union of
every node's, each saying which nodes offer it, so a client knows where a filter can mean anything.

A peer's document is read as far as the Beacon v2 framework schemas require it (the fields named below);
one that breaks them is reported as ``invalid``, never merged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genoshare.network.merge import ANSWERED, INVALID, NOT_ANSWERED_NOTICE, InvalidAnswer

#: The informational endpoints a network answers, by path (``""`` is the Beacon's root, its info).
ABOUT = ("info", "map", "entry_types", "configuration", "filtering_terms")


def _response(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict) or not isinstance(document.get("meta"), dict):
        raise InvalidAnswer("the answer is not a JSON object with a meta")
    response = document.get("response")
    if not isinstance(response, dict):
        raise InvalidAnswer("the answer has no response object")
    return response


def _objects(value: Any, where: str, *required: str) -> None:
    """``value`` is an object of objects, each with the ``required`` string fields."""
    if not isinstance(value, dict) or not all(
        isinstance(item, dict) and all(isinstance(item.get(key), str) for key in required) for item in value.values()
    ):
        raise InvalidAnswer(f"{where} is not an object of objects with {', '.join(required) or 'fields'}")


def _info(response: dict[str, Any]) -> dict[str, Any]:
    if not all(isinstance(response.get(key), str) for key in ("id", "name", "apiVersion")):
        raise InvalidAnswer("response has no string id, name and apiVersion")
    return {"beaconId": response["id"], "beaconName": response["name"], "apiVersion": response["apiVersion"]}


def _map(response: dict[str, Any]) -> dict[str, Any]:
    _objects(response.get("endpointSets"), "response.endpointSets", "entryType", "rootUrl")
    return {"entryTypes": sorted({item["entryType"] for item in response["endpointSets"].values()})}


def _entry_types(response: dict[str, Any]) -> dict[str, Any]:
    _objects(response.get("entryTypes"), "response.entryTypes", "id", "name")
    return {"entryTypes": sorted(response["entryTypes"])}


def _configuration(response: dict[str, Any]) -> dict[str, Any]:
    maturity = response.get("maturityAttributes")
    if not isinstance(maturity, dict) or not isinstance(maturity.get("productionStatus"), str):
        raise InvalidAnswer("response has no maturityAttributes.productionStatus")
    _objects(response.get("entryTypes"), "response.entryTypes", "id", "name")
    return {"productionStatus": maturity["productionStatus"], "entryTypes": sorted(response["entryTypes"])}


def _filtering_terms(response: dict[str, Any]) -> dict[str, Any]:
    terms, resources = response.get("filteringTerms", []), response.get("resources", [])
    if not isinstance(terms, list) or not all(
        isinstance(term, dict) and isinstance(term.get("type"), str) and isinstance(term.get("id"), str)
        for term in terms
    ):
        raise InvalidAnswer("response.filteringTerms is not a list of terms with a string type and id")
    if not isinstance(resources, list) or not all(
        isinstance(resource, dict) and isinstance(resource.get("id"), str) for resource in resources
    ):
        raise InvalidAnswer("response.resources is not a list of resources with a string id")
    return {"filteringTerms": len(terms)}


READERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "info": _info,
    "map": _map,
    "entry_types": _entry_types,
    "configuration": _configuration,
    "filtering_terms": _filtering_terms,
}


@dataclass(frozen=True)
class NodeAbout:
    """One node's part of an informational answer: its document (when usable) and its note, or why not."""

    name: str
    url: str
    status: str
    seconds: float
    reason: str | None = None
    document: dict[str, Any] | None = None

    @classmethod
    def read(
        cls, kind: str, name: str, url: str, status: str, seconds: float, reason: str | None, document: Any
    ) -> NodeAbout:
        """A node's answer to ``kind``, ``invalid`` (not merged) if it is not the document the spec requires."""
        if status != ANSWERED:
            return cls(name, url, status, seconds, reason)
        try:
            READERS[kind](_response(document))
        except InvalidAnswer as error:
            return cls(name, url, INVALID, seconds, f"not a Beacon v2 {kind} answer: {error}")
        return cls(name, url, ANSWERED, seconds, None, document)

    def describe(self, kind: str) -> dict[str, Any]:
        note: dict[str, Any] = {"name": self.name, "url": self.url, "status": self.status}
        note["seconds"] = round(self.seconds, 4)
        if self.reason:
            note["reason"] = self.reason
        if self.document is not None:
            note.update(READERS[kind](self.document["response"]))
        return note


def network_note(kind: str, nodes: list[NodeAbout], deadline: float, problems: list[str]) -> dict[str, Any]:
    """``info.network`` of an informational answer: every node (this one first), what it said or why not."""
    network: dict[str, Any] = {"deadlineSeconds": deadline, "nodes": [node.describe(kind) for node in nodes]}
    missing = [node.name for node in nodes if node.document is None]
    if missing:
        network["notAnswered"] = {"nodes": missing, "message": NOT_ANSWERED_NOTICE}
    if problems:
        network["problems"] = problems
    answered = [node for node in nodes if node.document is not None]
    if kind in ("map", "entry_types", "configuration"):
        offered: dict[str, list[str]] = {}
        for node in answered:
            for entry_type in node.describe(kind)["entryTypes"]:
                offered.setdefault(entry_type, []).append(node.name)
        network["entryTypes"] = offered
    return network


def about(
    kind: str, own: dict[str, Any], nodes: list[NodeAbout], deadline: float, problems: list[str]
) -> dict[str, Any]:
    """The network's ``kind`` document: ``own`` (this node's, as the network serves it) and ``info.network``.

    ``nodes`` are every node's parts, this node's first; for filtering terms, see ``union_of_terms``.
    """
    return {**own, "info": {"network": network_note(kind, nodes, deadline, problems)}}


def union_of_terms(nodes: list[NodeAbout], skip: int = 0, limit: int = 0) -> dict[str, Any]:
    """Every node's filtering terms, once each (by ``type`` and ``id``), each naming the nodes that offer it.

    The first node's label is kept; scopes are the union (a term scoped to individuals on one node and to
    biosamples on another filters both, somewhere). Resources are the union by ``id``. The union is paged.
    """
    terms: dict[tuple[str, str], dict[str, Any]] = {}
    resources: dict[str, dict[str, Any]] = {}
    for node in nodes:
        if node.document is None:
            continue
        response = node.document["response"]
        for term in response.get("filteringTerms", []):
            kept = terms.setdefault((term["type"], term["id"]), {**term, "scopes": [], "nodes": []})
            scopes = term.get("scopes")
            for scope in scopes if isinstance(scopes, list) else []:
                if isinstance(scope, str) and scope not in kept["scopes"]:
                    kept["scopes"].append(scope)
            if node.name not in kept["nodes"]:
                kept["nodes"].append(node.name)
        for resource in response.get("resources", []):
            resources.setdefault(resource["id"], resource)
    listed = [{k: v for k, v in term.items() if k != "scopes" or v} for term in terms.values()]
    page = listed[skip : skip + limit] if limit else listed[skip:]
    return {"filteringTerms": page, "resources": list(resources.values())}
