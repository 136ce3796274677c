"""A data file's index (``.bai``, ``.crai``, ``.tbi``, ``.csi``) as a DRS object of its own, linked to the file.

Tools that read a BAM, CRAM or VCF by region (samtools, IGV, bcftools) need its index beside it; htsget
needs none, DRS clients do. The index of ``study.x.bam`` is the DRS object ``study.x.bam.bai`` (the name the
tools look for), readable by exactly whom may read the file, and for a caller served a subset (a narrowed
consent) it is the subset's own index. The two name each other in their ``aliases``
(``index:drs://host/study.x.bam.bai`` and ``index-of:drs://host/study.x.bam``).

The index has no row of its own: it is described from its data file's row, and its size and checksums are
read from the store once per stored index (keys are content checksums, so a key's bytes never change).
"""

from __future__ import annotations

import hashlib
import threading

from sqlalchemy.orm import Session

from genoshare.store.models import DataObject
from genoshare.store.objects import ObjectStore

INDEX_FORMATS = ("bai", "crai", "csi", "tbi")
INDEX_MIME_TYPE = "application/octet-stream"


def index_id(row: DataObject) -> str | None:
    """The DRS id of a data file's index, or None for a file stored without one."""
    return f"{row.id}.{row.index_format}" if row.index_key and row.index_format else None


def index_parent(drs_id: str) -> str | None:
    """The id of the data file whose index ``drs_id`` would name (``<file id>.<index format>``), if any."""
    parent, _, suffix = drs_id.rpartition(".")
    return parent if suffix in INDEX_FORMATS and parent else None


def data_file_of(session: Session, drs_id: str) -> DataObject | None:
    """The data file whose index ``drs_id`` names, if there is one."""
    parent = index_parent(drs_id)
    if parent is None:
        return None
    row = session.get(DataObject, parent)
    return row if row is not None and index_id(row) == drs_id else None


class IndexFiles:
    """Describes indexes as DRS objects: size and checksums read from the store, remembered per key."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self._sums: dict[str, tuple[int, str, str]] = {}
        self._lock = threading.Lock()

    def of(self, served: DataObject) -> DataObject:
        """The index of ``served`` (a data file as this caller gets it) as an object row, not stored anywhere."""
        assert served.index_key is not None and served.index_format is not None
        size, md5, sha256 = self._checksums(served.index_key)
        return DataObject(
            id=f"{served.id}.{served.index_format}",
            dataset_id=served.dataset_id,
            name=f"{served.name}.{served.index_format}",
            htsget_id=served.htsget_id,
            format=served.format,
            size=size,
            md5=md5,
            sha256=sha256,
            source_sha256=served.sha256,
            blob_key=served.index_key,
            index_key=None,
            index_format=None,
            mime_type=INDEX_MIME_TYPE,
            created_at=served.created_at,
            status=served.status,
        )

    def _checksums(self, key: str) -> tuple[int, str, str]:
        known = self._sums.get(key)
        if known is None:
            data = self.objects.read_bytes(key)
            known = (len(data), hashlib.md5(data, usedforsecurity=False).hexdigest(), hashlib.sha256(data).hexdigest())
            with self._lock:
                if len(self._sums) > 10_000:
                    self._sums.clear()
                self._sums[key] = known
        return known
