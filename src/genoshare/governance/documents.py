"""Documents attached to access requests (an ethics approval, a signed agreement), kept like data files.

Each is Crypt4GH-encrypted to the node's key before it reaches the object store, so a copy of the store
reveals no more of a researcher's ethics paperwork than of a genome. Who may read one is who may see its
request (``genoshare.access.requests``): the requester, the committees of its datasets, the stewards.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path

from sqlalchemy import select

from genoshare.access.requests import RequestAccess
from genoshare.access.roles import Caller
from genoshare.crypt.files import EncryptedFile, encrypt_file
from genoshare.crypt.keys import KeyPair, NodeKeys, storing_encrypted
from genoshare.errors import InvalidInput, NotFound, Unavailable
from genoshare.store.db import Database
from genoshare.store.models import RequestDocument
from genoshare.store.objects import ObjectStore

#: What a committee can open in a browser without running anything: PDF, images, plain text, office files.
MEDIA_TYPES = {
    ".pdf": "application/pdf",
    ".txt": "text/plain",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
MAX_DOCUMENTS = 10


def safe_name(name: str) -> str:
    """The uploaded file's name, reduced to a plain file name (shown and offered on download, never a path)."""
    base = re.split(r"[\\/]", name)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "_", base).strip(" .")
    return cleaned[:200] or "document"


class RequestDocuments:
    def __init__(
        self, database: Database, objects: ObjectStore, keys: KeyPair | NodeKeys, access: RequestAccess
    ) -> None:
        self.database = database
        self.objects = objects
        self.keys = keys
        self.access = access

    @staticmethod
    def check(name: str, content: bytes) -> tuple[str, str]:
        """The name to keep and the media type of a document one may attach; ``InvalidInput`` otherwise.

        Called before the request is made too, so that a refused file does not leave a request without it.
        """
        filename = safe_name(name)
        media_type = MEDIA_TYPES.get(Path(filename).suffix.lower())
        if media_type is None:
            raise InvalidInput(f"attach a PDF, text, image or office document, not {filename!r}")
        if not content:
            raise InvalidInput(f"{filename} is empty")
        return filename, media_type

    def attach(self, caller: Caller, request_id: str, name: str, content: bytes) -> RequestDocument:
        """Store ``content`` encrypted with the request; only its requester attaches documents."""
        request = self.access.visible_one(caller, request_id)
        if request.requester != caller.actor:
            raise NotFound(f"no access request {request_id!r} of yours")
        filename, media_type = self.check(name, content)
        if len(self.list(caller, request_id)) >= MAX_DOCUMENTS:
            raise InvalidInput(f"a request holds at most {MAX_DOCUMENTS} documents")
        document_id = str(uuid.uuid4())
        key = f"documents/{request_id}/{document_id}.c4gh"
        with self.objects.work_dir("document") as work:
            plain, sealed = work / "plain", work / "sealed.c4gh"
            plain.write_bytes(content)
            with storing_encrypted(self.keys):  # a rotation retires no key this file was encrypted to
                encrypt_file(plain, sealed, self.keys)
                plain.unlink()
                self.objects.put(sealed, key)
        document = RequestDocument(
            id=document_id,
            request_id=request_id,
            name=filename,
            media_type=media_type,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            blob_key=key,
            uploaded_by=caller.actor,
        )
        with self.database.session() as session:
            session.add(document)
        return document

    def list(self, caller: Caller, request_id: str) -> list[RequestDocument]:
        self.access.visible_one(caller, request_id)
        with self.database.sessions() as session:
            query = select(RequestDocument).where(RequestDocument.request_id == request_id)
            return list(session.scalars(query.order_by(RequestDocument.uploaded_at)))

    def read(self, caller: Caller, document_id: str) -> tuple[RequestDocument, bytes]:
        """The document and its plaintext, for someone who may see its request."""
        with self.database.sessions() as session:
            document = session.get(RequestDocument, document_id)
        if document is None:
            raise NotFound(f"no document {document_id!r}")
        self.access.visible_one(caller, document.request_id)
        with EncryptedFile(self.objects.open(document.blob_key), self.keys) as sealed:
            content = b"".join(sealed.iter_plaintext())
        if hashlib.sha256(content).hexdigest() != document.sha256:
            raise Unavailable(f"document {document_id} does not read back as it was stored")
        return document, content
