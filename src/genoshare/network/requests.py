"""A researcher's access requests on other nodes, as those nodes last gave them through this node.

``GET /network/governance/requests`` asks every node each time; what each node gives is also kept here, so
that when a node cannot be asked, the researcher still sees its requests, as it last told them and when,
beside why it could not be asked now (never as if it had answered). Only for a researcher this node
verified: what a node tells one person is never shown to someone merely claiming to be them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select

from genoshare.store.db import Database
from genoshare.store.models import utcnow
from genoshare.store.network_tables import NetworkRequest

#: Requests of one node kept per answer, and the largest one kept: a node's answer is the node's to fill,
#: and this node's database is not.
MAX_KEPT = 500
MAX_REQUEST_BYTES = 64 * 1024

LAST_KNOWN_NOTICE = (
    "This node could not be asked now: these are its requests as it last told them (seenAt); its decisions "
    "may have changed since. Ask it again, or ask it directly."
)


def _keepable(item: Any) -> bool:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not 0 < len(item["id"]) <= 100:
        return False
    try:
        return len(json.dumps(item)) <= MAX_REQUEST_BYTES
    except (TypeError, ValueError):  # pragma: no cover - parsed JSON always serialises
        return False


class NetworkRequests:
    """The (node, request id) list of each researcher, with each request's last known state."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def remember(self, requester: str, node_name: str, node_url: str, requests: list[Any]) -> None:
        """What ``node_url`` just gave ``requester`` (the requests a node lists, or one it just took)."""
        kept = [item for item in requests if _keepable(item)][:MAX_KEPT]
        if not kept:
            return
        now = utcnow()
        with self.database.session() as session:
            for item in kept:
                row = session.get(NetworkRequest, (requester, node_url, item["id"]))
                if row is None:
                    row = NetworkRequest(requester=requester, node_url=node_url, remote_id=item["id"])
                    session.add(row)
                row.node_name, row.state, row.seen_at = node_name, item, now

    def last_known(self, requester: str, node_url: str) -> list[dict[str, Any]]:
        """``requester``'s requests on ``node_url`` as it last gave them, each with when (``seenAt``)."""
        with self.database.session() as session:
            rows = session.scalars(
                select(NetworkRequest)
                .where(NetworkRequest.requester == requester, NetworkRequest.node_url == node_url)
                .order_by(NetworkRequest.seen_at, NetworkRequest.remote_id)
            ).all()
        return [{"seenAt": _when(row.seen_at), "request": row.state} for row in rows]


def _when(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
