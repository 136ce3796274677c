"""Opening stored objects for a ticket holder: the one path from a ticket to decrypted bytes.

Used by the ``/data`` endpoint for both DRS and htsget.  It verifies the ticket, asks the access policy
again (a grant revoked or a dataset closed since the ticket was issued stops the read), and audits what is
served.
"""

from __future__ import annotations

from dataclasses import dataclass

from genoshare.access.tickets import Ticket
from genoshare.audit import Entry
from genoshare.crypt.files import EncryptedFile
from genoshare.errors import NotFound
from genoshare.ids import is_wellformed_id
from genoshare.node import Node
from genoshare.store.models import DataObject


@dataclass
class OpenedObject:
    row: DataObject
    ticket: Ticket
    file: EncryptedFile

    @property
    def plaintext_size(self) -> int:
        return self.file.plaintext_size

    @property
    def mime_type(self) -> str:
        return self.row.mime_type


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
        return OpenedObject(
            row, ticket, EncryptedFile(self.node.objects.local_path(row.blob_key), self.node.keys.secret)
        )

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
                },
            )
        )
