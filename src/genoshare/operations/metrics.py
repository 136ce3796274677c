"""Prometheus metrics of one node's API (``GET /metrics``).

Counters and the latency histogram belong to the process that answered (each worker of ``serve --workers``
keeps its own; Prometheus sums them when it scrapes each worker, or reads one worker as a sample). The
gauges read the database when scraped, so every worker reports the same, whole-node values: the audit
chain's length, files waiting to be re-derived after a withdrawal, files per status, and the people flagged
for questions that look like a membership attack, per dataset (``genoshare.access.attack_watch``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from genoshare.errors import GenoshareError
from genoshare.operations.metrics_dir import current
from genoshare.store.db import Database
from genoshare.store.models import AuditHead, DataObject
from genoshare.store.privacy_tables import PrivacyWatch

#: Seconds; htsget and /data streams run long, Beacon answers in milliseconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class NodeState(Collector):
    """Whole-node gauges, read from the database at each scrape."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.database.session() as session:
            chain = session.scalar(select(AuditHead.seq)) or 0
            statuses = dict(
                session.execute(select(DataObject.status, func.count()).group_by(DataObject.status)).tuples().all()
            )
            flagged = dict(
                session.execute(
                    select(PrivacyWatch.dataset_id, func.count())
                    .where(PrivacyWatch.flagged_at.is_not(None))
                    .group_by(PrivacyWatch.dataset_id)
                ).all()
            )
        yield GaugeMetricFamily("genoshare_audit_chain_length", "Entries in the audit chain.", value=chain)
        yield GaugeMetricFamily(
            "genoshare_rederivations_pending",
            "Files blocked until they are rewritten without people who withdrew.",
            value=statuses.get("rederiving", 0),
        )
        files = GaugeMetricFamily("genoshare_objects", "Files (DRS objects) by status.", labels=["status"])
        for status, count in sorted(statuses.items()):
            files.add_metric([status], count)
        yield files
        flags = GaugeMetricFamily(
            "genoshare_privacy_attack_flags",
            "People flagged to the stewards because their Beacon questions look like a membership attack.",
            labels=["dataset"],
        )
        for dataset_id, count in sorted(flagged.items()):
            flags.add_metric([dataset_id], count)
        yield flags


class Metrics:
    """One API's metrics, in a registry of its own (tests run several nodes in one process)."""

    def __init__(self, database: Database) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "genoshare_request_seconds",
            "Time to answer a request, by route template (never the path a client sent).",
            ["method", "route", "status"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.denials = Counter(
            "genoshare_access_denials",
            "Requests refused, by the API that refused them and the error code (the reason's kind).",
            ["action", "code"],
            registry=self.registry,
        )
        self.privacy_refusals = Counter(
            "genoshare_privacy_refusals",
            "Beacon queries refused by a dataset's privacy policy (rate limits per principal).",
            ["kind"],
            registry=self.registry,
        )
        self.node_state = NodeState(database)
        self.registry.register(self.node_state)

    def exposition(self) -> bytes:
        """The Prometheus text of ``/metrics``: every process of the run added up, and the whole-node gauges."""
        directory = current()
        if directory is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, directory)
        merged.register(self.node_state)
        return generate_latest(merged)


class IngestMetrics:
    """One ``genoshare ingest``: files by outcome, bytes through each stage, what is still running."""

    def __init__(self) -> None:
        registry = CollectorRegistry()  # written to the run's files; this process never exposes it
        self.files = Counter(
            "genoshare_ingest_files",
            "Files given to ingest, by outcome: published, unchanged (already there) or failed (nothing published).",
            ["outcome"],
            registry=registry,
        )
        self.failures = Counter(
            "genoshare_ingest_failures", "Ingests that published nothing, by error code.", ["code"], registry=registry
        )
        self.bytes = Counter(
            "genoshare_ingest_bytes",
            "Bytes through each ingest stage (checksum, validate, rewrite, encrypt, index): its progress.",
            ["stage"],
            registry=registry,
        )
        self.running = Gauge(
            "genoshare_ingests_running", "Ingests in progress.", registry=registry, multiprocess_mode="livesum"
        )
        self.pending = Gauge(
            "genoshare_ingest_files_pending",
            "Files of the running ingests not published yet.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._done: dict[tuple[str, str], int] = {}

    def progress(self, name: str, stage: str, done: int, total: int) -> None:
        """The pipeline's progress callback (``StageProgress``): counts the bytes since its last call."""
        before = self._done.get((name, stage), 0)
        if done > before:
            self.bytes.labels(stage).inc(done - before)
        self._done[(name, stage)] = done

    @contextmanager
    def ingest(self, files: int) -> Iterator[None]:
        """Count one ingest of ``files`` files while it runs, and its failure if it raises."""
        self.running.inc()
        self.pending.inc(files)
        try:
            yield
        except Exception as error:  # any failure publishes nothing: counted, then reported as it would be
            self.files.labels("failed").inc(files)
            self.failures.labels(error.code if isinstance(error, GenoshareError) else type(error).__name__).inc()
            raise
        finally:
            self.running.dec()
            self.pending.dec(files)
            directory = current()
            if directory is not None:  # this process's live gauges leave the sum when it ends
                mark_process_dead(os.getpid(), directory)

    def published(self, published: int, unchanged: int) -> None:
        self.files.labels("published").inc(published)
        self.files.labels("unchanged").inc(unchanged)
