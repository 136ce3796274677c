"""Opening stored objects for a ticket holder: the one path from a ticket to decrypted bytes.

Used by the ``/data`` endpoint for both DRS and htsget.  It verifies the ticket, asks the access policy
again (a grant revoked or a dataset closed since the ticket was issued stops the read), and audits what is
served.

A ticket may carry a Crypt4GH recipient key (htsget's ``encryptionScheme=C4GH``).  The object is then the
stored file with its header re-written for that key: the same ciphertext segments, shifted by the
difference of the header lengths, never decrypted or re-encrypted.  Ranges address that re-keyed file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from genoshare.access.tickets import Ticket
from genoshare.audit import Entry
from genoshare.crypt.files import EncryptedFile, Reencryption
from genoshare.errors import NotFound
from genoshare.ids import is_wellformed_id
from genoshare.node import Node
from genoshare.store.models import DataObject


@dataclass
class OpenedObject:
    row: DataObject
    ticket: Ticket
    file: EncryptedFile
    #: For a ticket with a recipient key: the stored file's header re-written for it (no edit list).
    reencryption: Reencryption | None = None

    @property
    def plaintext_size(self) -> int:
        return self.file.plaintext_size

    @property
    def size(self) -> int:
        """Size of what this ticket reads: the plaintext, or the file re-keyed to the recipient."""
        if self.reencryption is None:
            return self.file.plaintext_size
        return len(self.reencryption.header) + self.file.file_size - self.file.header_size

    @property
    def mime_type(self) -> str:
        return self.row.mime_type if self.reencryption is None else "application/octet-stream"

    def iter_bytes(self, start: int, end: int, chunk_size: int) -> Iterator[bytes]:
        """Bytes ``[start, end)`` of what this ticket reads (argument errors raise now, not when iterated)."""
        if self.reencryption is None:
            return self.file.iter_plaintext(start, end, chunk_size)
        header = self.reencryption.header
        offset = self.file.header_size - len(header)
        stored = (max(start, len(header)) + offset, max(end, len(header)) + offset)
        part = Reencryption(header=header[start:end], data_ranges=(stored,) if stored[0] < stored[1] else ())
        return (piece for piece in self.file.iter_reencrypted(part, chunk_size) if piece)


class DataAccess:
    def __init__(self, node: Node) -> None:
        self.node = node

    def open(self, object_id: str, token: str) -> OpenedObject:
        ticket = self.node.tickets.verify(token, object_id)
        if not is_wellformed_id(object_id):
            raise NotFound(f"no object {object_id!r}")
        with self.node.database.sessions() as session:
            row = session.get(DataObject, object_id)
        if row is None or row.dataset_id != ticket.dataset_id:
            raise NotFound(f"no object {object_id!r}")
        self.node.policy.check_ticket(ticket)
        self.node.policy.check_object(row, ticket.grants)
        file = EncryptedFile(self.node.objects.local_path(row.blob_key), self.node.keys.secret)
        try:
            reencryption = file.reencrypted(ticket.recipient_key, []) if ticket.recipient_key else None
        except BaseException:
            file.close()
            raise
        return OpenedObject(row, ticket, file, reencryption)

    def record_read(self, opened: OpenedObject, start: int, end: int, method: str) -> None:
        self.node.audit.record(
            Entry(
                actor=opened.ticket.actor,
                action="data.read",
                resource=f"objects/{opened.row.id}",
                decision="permit",
                reason="valid ticket",
                details={
                    "dataset": opened.row.dataset_id,
                    "start": start,
                    "end": end,
                    "method": method,
                    "grants": list(opened.ticket.grants),
                    "reencrypted": opened.reencryption is not None,
                },
            )
        )
