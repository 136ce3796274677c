"""DRS, ``/data`` reads, ingest and the Beacon indexer, each built from the parts its constructor names.

No ``Node``: if a service reached for anything else (a key file, a setting, another service), building or
using it here would fail.
"""

from __future__ import annotations

import hashlib
import time

from genoshare.access.passports import ANONYMOUS
from genoshare.datasets.service import DatasetService
from genoshare.drs.indexes import IndexFiles
from genoshare.drs.reads import TicketReads
from genoshare.drs.service import DrsService
from genoshare.index.published import BeaconIndexer
from genoshare.ingest.deidentify import Pseudonymiser
from genoshare.ingest.pipeline import Ingestor
from genoshare.store.beacon_tables import BeaconVariantIndex

from parts import TICKET_TTL, Parts
from support import HTSGET_DATA

VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"


def indexer(parts: Parts) -> BeaconIndexer:
    return BeaconIndexer(parts.database, parts.settings.data_dir, parts.objects, parts.keys.secret)


def ingestor(parts: Parts) -> Ingestor:
    pseudonymiser = Pseudonymiser(b"k" * 32)
    return Ingestor(parts.database, parts.objects, parts.keys, parts.audit, pseudonymiser, indexer(parts))


def test_ingest_from_its_parts_publishes_and_indexes(parts: Parts) -> None:
    parts.public_dataset()
    (row,) = ingestor(parts).ingest("open", [VCF]).published
    assert row.sha256 == hashlib.sha256(VCF.read_bytes()).hexdigest()
    with parts.database.sessions() as session:
        index = session.get(BeaconVariantIndex, row.id)
    assert index is not None and index.n_samples == 3
    assert (parts.settings.data_dir / index.path).is_dir()


def test_indexer_from_its_parts_rebuilds_a_dropped_index(parts: Parts) -> None:
    parts.public_dataset()
    (row,) = ingestor(parts).ingest("open", [VCF]).published
    with parts.database.session() as session:
        session.query(BeaconVariantIndex).delete()
    (rebuilt,) = indexer(parts).index_dataset("open")
    assert rebuilt.object_id == row.id and rebuilt.n_samples == 3
    assert indexer(parts).index_dataset("open") == []


def test_drs_and_data_reads_from_their_parts_serve_the_file(parts: Parts) -> None:
    parts.public_dataset()
    ingestor(parts).ingest("open", [VCF])
    drs = DrsService(
        parts.settings,
        parts.database,
        DatasetService(parts.database),
        parts.policy,
        parts.tickets,
        parts.subsets,
        IndexFiles(parts.objects),
    )
    assert drs.service_info()["drs"]["objectCount"] == 1
    blob = drs.get_object("open.spec-v4.3.vcf.gz", None)
    assert blob["size"] == VCF.stat().st_size

    access = drs.access_url("open.spec-v4.3.vcf.gz", "https", None)
    token = access["headers"][0].removeprefix("Authorization: Bearer ")
    ticket = parts.tickets.verify(token, "open.spec-v4.3.vcf.gz")
    assert ticket.actor == ANONYMOUS
    assert ticket.version == hashlib.sha256(VCF.read_bytes()).hexdigest()
    assert time.time() < ticket.expires <= time.time() + TICKET_TTL

    reads = TicketReads(
        parts.database, parts.objects, parts.keys.secret, parts.tickets, parts.policy, parts.subsets, parts.audit
    )
    opened = reads.open("open.spec-v4.3.vcf.gz", token)
    try:
        assert opened.file.read_plaintext(0, opened.size) == VCF.read_bytes()
        reads.recheck(opened)
        reads.record_read(opened, 0, opened.size, "GET")
    finally:
        opened.close()
    reads.record_stop(opened, "the grant was revoked", 1024)
    served, stopped = [event for event in parts.audit.entries() if event.action == "data.read"]
    assert (served.decision, served.details["end"]) == ("permit", VCF.stat().st_size)
    assert (stopped.decision, stopped.details["bytes_sent"]) == ("deny", 1024)
    assert stopped.reason == "stopped mid-stream: the grant was revoked"
