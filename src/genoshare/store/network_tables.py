"""The Beacon network's table (``genoshare.network.requests``); migration 0010 creates it.

A researcher's access requests on other nodes, as those nodes last told them through this one: the list
of "all decisions in one place" must not lose a node's requests while that node is down.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from genoshare.store.models import Base, utcnow


class NetworkRequest(Base):
    """One access request on another node, for the researcher who made it, as that node last gave it."""

    __tablename__ = "network_requests"

    #: The researcher (``subject@issuer``), as this node verified their passport.
    requester: Mapped[str] = mapped_column(String(500), primary_key=True)
    #: The node's ``url`` (its public URL) and the request's id there.
    node_url: Mapped[str] = mapped_column(String(500), primary_key=True)
    remote_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    node_name: Mapped[str] = mapped_column(String(500))
    #: The request as the node last gave it (its status and decisions included).
    state: Mapped[dict[str, object]] = mapped_column(JSON)
    #: When the node last gave it.
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
