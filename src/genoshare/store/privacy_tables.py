"""Tables of the Beacon privacy defences (``genoshare.access.privacy``); migrations 0004, 0009 and 0012 make them.

They hold what must survive a restart for the defences to mean anything: an attacker who could reset a
budget or re-roll a randomised answer by waiting for the node to restart would not be stopped at all.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Double, ForeignKey, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from genoshare.store.models import Base, utcnow


class PrivacyLink(Base):
    """One account and the person whose budget it spends: many tokens, one budget."""

    __tablename__ = "privacy_links"

    #: The account's natural principal: ``subject@issuer``, or ``subject@<first issuer>`` for linked issuers.
    account: Mapped[str] = mapped_column(String(500), primary_key=True)
    #: The principal the account's answers are charged to.
    principal: Mapped[str] = mapped_column(String(500), index=True)
    linked_by: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PrivacySession(Base):
    """A principal's query counters on one dataset.

    Every answer locks this row first, which serialises concurrent answers for one person so that two
    requests cannot both spend the last of a budget.
    """

    __tablename__ = "privacy_sessions"

    principal: Mapped[str] = mapped_column(String(500), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    #: Every allele-level request ever counted (cached repeats included).
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Fixed-window rate counters: the window's number (unix time // window length) and its count.
    minute_window: Mapped[int] = mapped_column(BigInteger, default=0)
    minute_count: Mapped[int] = mapped_column(Integer, default=0)
    day_window: Mapped[int] = mapped_column(BigInteger, default=0)
    day_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PrivacySpend(Base):
    """How much of one member's privacy budget one principal has used (in nats of attacker evidence)."""

    __tablename__ = "privacy_spends"

    principal: Mapped[str] = mapped_column(String(500), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    #: The member's sample number in the variant index (the carrier bitmaps' integer).
    member: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    spent: Mapped[float] = mapped_column(Double, default=0.0)


class PrivacyAnswer(Base):
    """The answer a principal got for one query.

    Repeats get it back, so they cost nothing and a randomised answer cannot be averaged away.
    """

    __tablename__ = "privacy_answers"

    principal: Mapped[str] = mapped_column(String(500), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    #: sha256 of the query key the Beacon service passed, so keys of any length fit one column.
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    exists: Mapped[bool] = mapped_column(Boolean)
    allele_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    carrier_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PrivacyWatch(Base):
    """What the attack watch (``genoshare.access.attack_watch``) counted for one person on one dataset.

    ``flagged_at`` is set once, when the person's questions first looked like a membership attack; the
    stewards' page lists these rows, and the metrics count them.
    """

    __tablename__ = "privacy_watch"

    principal: Mapped[str] = mapped_column(String(500), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    #: Questions on watched alleles (absent, or at most ``WatchRule.watch_max_count`` copies), repeats not
    #: counted.
    rare_questions: Mapped[int] = mapped_column(Integer, default=0)
    #: Their weights summed (``WatchRule.weight``, nats): what a member's evidence is a share of.
    evidence: Mapped[float] = mapped_column(Double, default=0.0, server_default="0")
    flagged_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    #: The account (``subject@issuer``) whose question raised the flag.
    account: Mapped[str | None] = mapped_column(String(500), nullable=True)
    #: Of the rare questions when flagged, how many were about alleles the member with most evidence carries.
    top_hits: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(1000), nullable=True)


class PrivacyWatchHit(Base):
    """How many of one person's rare questions on one dataset were about alleles one member carries; their weight."""

    __tablename__ = "privacy_watch_hits"

    principal: Mapped[str] = mapped_column(String(500), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    member: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    #: The weights of those questions summed (nats): the evidence a walk over this member would have built.
    evidence: Mapped[float] = mapped_column(Double, default=0.0, server_default="0")
    #: Where the first of those questions lay (``WatchRule.min_span``); None when not known.
    first_chromosome: Mapped[str | None] = mapped_column(String(100), nullable=True)
    first_start: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: Set once one of them lay on another chromosome or ``min_span`` bases from the first, or nowhere known:
    #: only then does the member count towards a flag, bar ``WatchRule.span_free_hits``.
    spread: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
