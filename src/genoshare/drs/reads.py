"""What ``/data`` serves: the bytes a data ticket opens, for as long as the access it was issued under lasts.

``TicketReads.open`` is the path from a data ticket to the stored bytes (``genoshare.store.blobs`` reads both
kinds): it verifies the ticket, asks the access policy again (a grant revoked or a file closed since the
ticket was issued stops the read; ``recheck`` asks again while a long read streams), and ``record_read``
audits each range served.  A ticket with a recipient key (htsget ``encryptionScheme=C4GH``) on a plaintext
object is refused when issued (``genoshare.htsget.service``), and again here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TypeVar

from genoshare.access.policy import AccessPolicy
from genoshare.access.served import ServedFiles
from genoshare.access.tickets import Ticket, TicketSigner
from genoshare.audit import AuditLog, Entry
from genoshare.crypt.files import EncryptedFile, Reencryption
from genoshare.crypt.keys import SecretKeys
from genoshare.drs.indexes import IndexFiles, data_file_of
from genoshare.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated
from genoshare.ids import is_wellformed_id
from genoshare.store.blobs import PlainFile, StoredBytes, is_plaintext
from genoshare.store.db import Database
from genoshare.store.models import DataObject
from genoshare.store.objects import ObjectStore

_Opened = TypeVar("_Opened", EncryptedFile, PlainFile)


@dataclass
class OpenedBlob:
    row: DataObject
    ticket: Ticket
    file: EncryptedFile | PlainFile
    #: For a ticket with a recipient key: the stored file's header re-written for it (no edit list).
    reencryption: Reencryption | None = None
    #: For a ticket with a recipient key: the stored file's bytes, whose segments follow the new header as they are.
    stored: StoredBytes | None = None
    #: Pseudonyms of the people the served file leaves out (their consent excludes the ticket's grants).
    withheld: frozenset[str] = frozenset()

    @property
    def size(self) -> int:
        """Size of what this ticket reads: the plaintext, or the encrypted file re-keyed to the recipient."""
        if self.reencryption is None or not isinstance(self.file, EncryptedFile):
            return self.file.plaintext_size
        return len(self.reencryption.header) + self.file.file_size - self.file.header_size

    @property
    def mime_type(self) -> str:
        return self.row.mime_type if self.reencryption is None else "application/octet-stream"

    def reencrypted_parts(self, start: int, end: int) -> tuple[bytes, int, int]:
        """Bytes ``[start, end)`` of the file re-keyed to the recipient: ``(header slice, first, last)``.

        The slice of the new header they cover, followed by the stored bytes ``[first, last)``: ciphertext
        segments, sent as they are, never decrypted or re-encrypted.
        """
        assert self.reencryption is not None and isinstance(self.file, EncryptedFile)
        header = self.reencryption.header
        shift = self.file.header_size - len(header)
        first, last = max(start, len(header)) + shift, max(end, len(header)) + shift
        return header[start:end], first, max(first, last)

    def close(self) -> None:
        self.file.close()
        if self.stored is not None:
            self.stored.close()


def _as_described(row: DataObject, file: _Opened) -> _Opened:
    """``file``, if it is as long as the file its row describes.

    Bytes someone else wrote in its place (another tool with access to the object store) are refused, not
    served under the row's name and checksums.
    """
    if file.plaintext_size != row.size:
        file.close()
        raise NotFound(
            f"{row.id}: the stored bytes are not the file's ({file.plaintext_size} bytes where it has {row.size}); "
            "the node's operator must restore them"
        )
    return file


class TicketReads:
    """What ``/data`` serves: the bytes a data ticket opens, for as long as the access it was issued under lasts."""

    def __init__(
        self,
        database: Database,
        objects: ObjectStore,
        secret_key: SecretKeys,
        tickets: TicketSigner,
        policy: AccessPolicy,
        subsets: ServedFiles,
        audit: AuditLog,
    ) -> None:
        self.database = database
        self.objects = objects
        #: The node's Crypt4GH secret key: stored files are decrypted (or re-keyed for a recipient) with it.
        self.secret_key = secret_key
        self.tickets = tickets
        self.policy = policy
        self.subsets = subsets
        self.audit = audit
        #: Data files' indexes, each a DRS object of its own (``genoshare.drs.indexes``).
        self.indexes = IndexFiles(objects)

    def open(self, object_id: str, token: str) -> OpenedBlob:
        ticket = self.tickets.verify(token, object_id)
        row, withheld = self._still_readable(ticket)
        if is_plaintext(row.blob_key):
            if ticket.recipient_key:
                raise InvalidInput(f"{object_id} is stored unencrypted (public data): it is not served as Crypt4GH")
            return OpenedBlob(
                row, ticket, _as_described(row, PlainFile(self.objects.open(row.blob_key))), withheld=withheld
            )
        file = _as_described(row, EncryptedFile(self.objects.open(row.blob_key), self.secret_key))
        if not ticket.recipient_key:
            return OpenedBlob(row, ticket, file, withheld=withheld)
        try:
            reencryption = file.reencrypted(ticket.recipient_key, [])
            stored = StoredBytes(self.objects.open(row.blob_key))
            return OpenedBlob(row, ticket, file, reencryption, stored, withheld)
        except BaseException:
            file.close()
            raise

    def _still_readable(self, ticket: Ticket) -> tuple[DataObject, frozenset[str]]:
        """The ticket's object, if the ticket still opens it (not expired, grants not revoked, file not closed).

        As served: itself, or its subset without the people (also returned) whose consent excludes the grants.
        """
        if ticket.expires < time.time():
            raise Unauthenticated("data ticket expired: ask DRS or htsget for a new URL")
        if not is_wellformed_id(ticket.object_id):
            raise NotFound(f"no object {ticket.object_id!r}")
        with self.database.sessions() as session:
            row = session.get(DataObject, ticket.object_id)
            data_file = None if row is not None else data_file_of(session, ticket.object_id)
        row = row or data_file
        if row is None or row.dataset_id != ticket.dataset_id:
            raise NotFound(f"no object {ticket.object_id!r}")
        self.policy.check_ticket(ticket)
        withheld = self.policy.check_object(row, ticket.grants)
        served = self.subsets.served(row, withheld)
        if data_file is not None:  # the index of the file as this ticket's grants are served it
            served = self.indexes.of(served)
        if ticket.version is not None and served.sha256 != ticket.version:
            raise PermissionDenied(
                f"{row.id} has changed since this ticket was issued (a participant's consent changed): ask again"
            )
        return served, withheld

    def recheck(self, opened: OpenedBlob) -> None:
        """Raise if access to an object being streamed has ended (expiry, revocation, withdrawal) since it opened.

        A download is one GET for most clients (curl, wget, browsers, DRS clients), so checking only when a
        request arrives would let a revoked or expired ticket stream a whole file; ``/data`` calls this every
        few seconds while it streams.
        """
        self._still_readable(opened.ticket)

    def record_read(self, opened: OpenedBlob, start: int, end: int, method: str) -> None:
        """One audit entry per range served."""
        self.audit.record(
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
                    # Whose data the bytes held: usage reports tell each participant (consent may leave some out).
                    "withheld": sorted(opened.withheld),
                },
            )
        )

    def record_stop(self, opened: OpenedBlob, reason: str, bytes_sent: int) -> None:
        """The entry of a stream cut before its end: access ended while it streamed, or its client stopped reading."""
        ticket = opened.ticket
        self.audit.record(
            Entry(
                actor=ticket.actor,
                action="data.read",
                resource=f"objects/{ticket.object_id}",
                decision="deny",
                reason=f"stopped mid-stream: {reason}",
                details={"dataset": ticket.dataset_id, "bytes_sent": bytes_sent},
            )
        )
