"""The htsget service built from the parts its constructor names, no ``Node``: its tickets open the file."""

from __future__ import annotations

import base64
import hashlib

from genoshare.drs.reads import TicketReads
from genoshare.htsget.service import VARIANTS, HtsgetService, parse_get
from genoshare.index.published import BeaconIndexer
from genoshare.ingest.deidentify import Pseudonymiser
from genoshare.ingest.pipeline import Ingestor

from parts import Parts
from support import HTSGET_DATA

VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"


def test_htsget_from_its_parts_tickets_the_whole_file(parts: Parts) -> None:
    parts.public_dataset()
    indexer = BeaconIndexer(parts.database, parts.settings.data_dir, parts.objects, parts.keys.secret)
    Ingestor(parts.database, parts.objects, parts.keys, parts.audit, Pseudonymiser(b"k" * 32), indexer).ingest(
        "open", [VCF]
    )
    service = HtsgetService(
        parts.settings,
        parts.database,
        parts.objects,
        parts.keys.secret,
        parts.policy,
        parts.tickets,
        parts.subsets,
        parts.audit,
    )
    assert service.service_info(VARIANTS)["htsget"]["formats"] == ["VCF", "BCF"]

    answer = service.ticket(parse_get(VARIANTS, "spec-v4.3", {}, None), None)["htsget"]
    assert answer["md5"] == hashlib.md5(VCF.read_bytes(), usedforsecurity=False).hexdigest()
    reads = TicketReads(
        parts.database, parts.objects, parts.keys.secret, parts.tickets, parts.policy, parts.subsets, parts.audit
    )
    got = b""
    for url in answer["urls"]:
        if url["url"].startswith("data:"):
            got += base64.b64decode(url["url"].partition(",")[2])
            continue
        first, _, last = url["headers"]["Range"].removeprefix("bytes=").partition("-")
        opened = reads.open(url["url"].rsplit("/", 1)[1], url["headers"]["Authorization"].removeprefix("Bearer "))
        try:
            got += opened.file.read_plaintext(int(first), int(last) + 1)
        finally:
            opened.close()
    assert got == VCF.read_bytes()
    assert [event.action for event in parts.audit.entries()][-1] == "htsget.ticket"
