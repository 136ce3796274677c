"""Objects in an S3-compatible store (AWS S3, MinIO, Ceph RGW, ...), through boto3.

boto3 rather than obstore or fsspec/s3fs: it is the reference client every S3-compatible gateway is tested
against, its client is thread-safe with one pool of keep-alive connections for the whole process (the
node's readers run in threads). Multipart uploads are the node's own (a few parts in flight), not the
transfer manager's: the node needs the ETag the store answers with, and a condition on the completion.

What the node asks of the store, and how:

* reads are ranged GETs of exactly the bytes a reader wants, pinned to the ETag seen when the object
  was opened (``If-Match``), and that ETag must be the one recorded when the node stored the object
  (``genoshare.store.ledger``: bytes someone else put under the key are refused, never served): a data
  file is never copied to local disk, and a read never mixes two versions -- except one a rotation of the
  node key makes (``replace``): it rewrites a Crypt4GH header to the same length and leaves every segment as
  it was, so a reader follows the new ETag, once recorded, when the length is unchanged (a running download
  goes on; the segments it reads are the bytes it would have read);
* writes upload a finished staging file under its final key (one PUT, or a multipart upload whose parts
  become visible only when it completes): a crash mid-upload publishes nothing; the ETag the store answers
  is recorded;
* small objects parsed whole from a path (htsget indexes) are downloaded once into a local cache; keys
  are content checksums, so a cached copy never goes stale;
* staging (plaintext scratch) stays on local disk, with the same locks and crash sweep as a file store.

Every failure to reach the store, or a refusal of the node's credentials, is ``Unavailable`` (503) with the
error's code only; the node's log names the store (a client is not told the bucket).  Neither a credential
nor the endpoint's answer text ever reaches a log or a client.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import boto3
from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from genoshare.crypt.files import ENCRYPTED_SUFFIX, Positional
from genoshare.errors import InvalidInput, NotFound, Unavailable
from genoshare.settings import S3Settings
from genoshare.store.ledger import Ledger, ObjectChanged, same_etag

_log = logging.getLogger(__name__)
_MISSING = {"404", "NoSuchKey", "NotFound"}
#: Files above this go up in parts of this size (S3 allows at most 10 000 parts: 640 GB).
_PART_SIZE = 64 * 1024 * 1024
#: The largest object one PUT stores (S3's limit).
_SINGLE_PUT = 5 * 1024**3
#: Parts of one multipart upload in flight at once (each one part's size in memory).
_PARTS_AT_ONCE = 4
#: How long a reader that followed a rewrite waits for its record (``S3ObjectStore.check_recorded``).
_RECORD_WAIT = 2.0
#: Objects whose size and ETag an S3 store remembers (a few dozen bytes each).
_OPENED_SIZE = 65536
#: Reads at least this long that continue the previous one fetch the next piece ahead (a stream, not a ticket).
_READ_AHEAD_FROM = 512 * 1024


@contextmanager
def _asking(store: str, verb: str, key: str = "") -> Iterator[None]:
    """S3 and connection errors as the node's own: ``NotFound`` for a missing key, ``Unavailable`` otherwise."""
    try:
        yield
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", "unknown"))
        if code in _MISSING:
            raise NotFound(f"object bytes missing from the store: {key}") from None
        if code in {"412", "PreconditionFailed"}:
            raise _Changed(f"object {key} changed while being read") from None
        _log.warning("object store %s refused to %s %s: %s", store, verb, key, code)
        raise Unavailable(f"the object store refused to {verb} ({code}): try again later") from None
    except BotoCoreError as error:
        _log.warning("object store %s unreachable (%s) to %s %s", store, type(error).__name__, verb, key)
        raise Unavailable(f"the object store is unreachable ({type(error).__name__}): try again later") from None
    except Boto3Error as error:
        # The transfer manager's wrappings (an upload or a download) of the errors above, whose text quotes the
        # store's answer: told as the error they wrap.
        cause = getattr(error, "last_exception", None) or error.__context__
        if isinstance(cause, ClientError | BotoCoreError):
            with _asking(store, verb, key):
                raise cause from None
        _log.warning("object store %s failed to %s %s (%s)", store, verb, key, type(error).__name__)
        raise Unavailable(f"the object store failed to {verb} ({type(error).__name__}): try again later") from None


class _Changed(NotFound):
    """The object's ETag is not the one it was opened with."""


class Staging(Protocol):
    """Local scratch with the file store's locks and crash sweep (``LocalObjectStore`` on a scratch directory)."""

    def staging_dir(self) -> Path: ...

    def work_dir(self, prefix: str) -> AbstractContextManager[Path]: ...

    def sweep_staging(self) -> list[str]: ...


class S3Object:
    """One object's bytes, read by ranged GETs.

    A large read (a stream's piece: ``/data``, a copy) fetches the next piece of the same size in the
    background, so the store's round trip overlaps the sending of this one; a read elsewhere drops it.
    Small reads (a ticket's cut points) fetch nothing ahead.
    """

    def __init__(self, store: S3ObjectStore, key: str, size: int, etag: str) -> None:
        self._store = store
        self._key = key
        self.name = f"s3://{store.bucket}/{key}"
        self.size = size
        self._etag = etag
        self._lock = threading.Lock()
        self._ahead: tuple[int, int, Future[bytes]] | None = None

    def _get(self, start: int, end: int) -> bytes:
        try:
            return self._get_pinned(start, end)
        except _Changed:
            # Rewritten under its key: only a node-key rotation does that, to a Crypt4GH file's header and to the
            # same length (``replace``). Other bytes under a plaintext key are not the ones this read (and the
            # ticket's checksum) began on: the read fails rather than mix them in, and the next open looks afresh.
            if not self._key.endswith(ENCRYPTED_SUFFIX):
                self._store.forget(self._key)
                raise
            with _asking(self._store.label, "read", self._key):
                head = self._store.client.head_object(Bucket=self._store.bucket, Key=self._key)
            if int(head["ContentLength"]) != self.size:
                raise
            self._store.check_recorded(self._store.unprefixed(self._key), str(head["ETag"]), wait=True)
            self._etag = str(head["ETag"])
            self._store.remember(self._key, self.size, self._etag)
            return self._get_pinned(start, end)

    def _get_pinned(self, start: int, end: int) -> bytes:
        with _asking(self._store.label, "read", self._key):
            answer = self._store.client.get_object(
                Bucket=self._store.bucket, Key=self._key, Range=f"bytes={start}-{end - 1}", IfMatch=self._etag
            )
            data: bytes = answer["Body"].read()
        return data

    def readinto(self, into: memoryview, offset: int) -> int:
        end = min(offset + len(into), self.size)
        if end <= offset:
            return 0
        with self._lock:
            ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[:2] == (offset, end):
            data = ahead[2].result()
        else:
            if ahead is not None:
                ahead[2].cancel()
            data = self._get(offset, end)
        following = min(end + (end - offset), self.size)
        if end - offset >= _READ_AHEAD_FROM and following > end:
            with self._lock:
                self._ahead = (end, following, self._store.pool.submit(self._get, end, following))
        into[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Drop a piece fetched ahead; the connections belong to the store's pool."""
        with self._lock:
            ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead[2].cancel()


class S3ObjectStore:
    """Objects under ``prefix`` in ``bucket``; staging and cached indexes on local disk."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        settings: S3Settings,
        staging: Staging,
        cache: Path,
        ledger: Ledger | None = None,
    ) -> None:
        """``ledger``: where the ETag of each upload is recorded and each first read checked (none: not checked)."""
        self.bucket = bucket
        self.prefix = prefix
        self.label = f"s3://{bucket}/{prefix}".rstrip("/")
        self._staging = staging
        self._cache = cache
        config = Config(
            region_name=settings.region,
            max_pool_connections=settings.max_connections,
            connect_timeout=settings.connect_timeout_seconds,
            read_timeout=settings.read_timeout_seconds,
            retries={"mode": "standard", "max_attempts": 3},
            s3={"addressing_style": settings.addressing_style},
            # Self-hosted gateways do not all know the checksums boto3 adds by default; TLS and MD5 suffice.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        secret, token = settings.secret_access_key, settings.session_token
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.endpoint_url,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            aws_session_token=token.get_secret_value() if token else None,
            config=config,
        )
        self._opened: dict[str, tuple[int, str]] = {}
        #: Fetches pieces ahead of streams: at most as many at once as the connection pool holds.
        self.pool = ThreadPoolExecutor(max_workers=settings.max_connections, thread_name_prefix="s3-ahead")
        self._lock = threading.Lock()
        self.ledger = ledger
        #: Files above this size go up in a multipart upload, in parts of this size.
        self.multipart_threshold = _PART_SIZE
        #: Rewrites (``replace``) up to this size are one conditional PUT, whose condition S3 checks atomically:
        #: S3's limit for one PUT (lowered by tests of the multipart rewrite).
        self.single_put_limit = _SINGLE_PUT

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.label!r})"

    def _key(self, key: str) -> str:
        parts = PurePosixPath(key).parts
        if not parts or key.startswith("/") or ".." in parts:
            raise InvalidInput(f"object key escapes the store: {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, source: Path, key: str) -> None:
        """Upload ``source`` unless the object is there already, as the node recorded it.

        Keys are content checksums: an object the node stored holds these bytes. One the node has no record of
        (or another record: written by someone else) is uploaded again, over it.
        """
        try:
            etag = str(self._head(key)["ETag"])
        except NotFound:
            etag = ""
        if etag and (self.ledger is None or self._recorded_as(key, etag)):
            source.unlink(missing_ok=True)
            return
        self._upload(source, key)

    def _recorded_as(self, key: str, etag: str) -> bool:
        assert self.ledger is not None
        recorded = self.ledger.recorded(key)
        return recorded is not None and same_etag(recorded, etag)

    def _upload(self, source: Path, key: str, if_match: str = "") -> bool:
        """Store ``source`` under ``key`` (only over the object whose ETag is ``if_match``, if given); record it.

        False when the condition failed (the object was deleted or changed meanwhile): nothing was stored.
        """
        size = source.stat().st_size
        condition = {"IfMatch": if_match} if if_match else {}
        try:
            if size > (self.single_put_limit if if_match else self.multipart_threshold):
                etag = self._upload_parts(source, key, if_match)
            else:
                with _asking(self.label, "write", key), source.open("rb") as body:
                    answer = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body, **condition)
                etag = answer["ETag"]
        except NotFound:  # the condition failed: deleted (404) or changed (412) since
            if if_match:
                return False
            raise
        if self.ledger is not None:
            self.ledger.record(key, size, str(etag))
        return True

    def _upload_parts(self, source: Path, key: str, if_match: str) -> str:
        """A multipart upload of ``source``; its ETag. Parts go up a few at a time (each read when it is sent).

        With ``if_match`` the completion is conditional (``If-Match`` on CompleteMultipartUpload, which AWS S3
        honours), and the object's ETag is checked just before it too, for stores that ignore the condition:
        those leave a window of one round trip in which a delete is undone.
        """
        stored = self._key(key)
        with _asking(self.label, "write", key):
            upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=stored)["UploadId"]
        try:
            size = source.stat().st_size
            starts = range(0, size, _PART_SIZE)
            with source.open("rb") as handle, ThreadPoolExecutor(_PARTS_AT_ONCE, thread_name_prefix="s3-part") as pool:

                def send(number: int, start: int) -> dict[str, Any]:
                    body = os.pread(handle.fileno(), _PART_SIZE, start)
                    with _asking(self.label, "write", key):
                        part = self.client.upload_part(
                            Bucket=self.bucket, Key=stored, UploadId=upload, PartNumber=number, Body=body
                        )
                    return {"PartNumber": number, "ETag": part["ETag"]}

                parts = list(pool.map(send, range(1, len(starts) + 1), starts))
            condition = {}
            if if_match:
                if not same_etag(str(self._head(key)["ETag"]), if_match):
                    raise _Changed(f"object {key} changed while being rewritten")
                condition = {"IfMatch": if_match}
            with _asking(self.label, "write", key):
                done = self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=stored, UploadId=upload, MultipartUpload={"Parts": parts}, **condition
                )
        except BaseException:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=stored, UploadId=upload)
            raise
        return str(done["ETag"])

    def replace(self, source: Path, key: str) -> bool:
        """Rewrite the object on the condition that it is the one there now (``If-Match``): a delete meanwhile wins.

        One PUT up to ``single_put_limit``; above, a multipart upload conditional at its completion
        (``_upload_parts``).
        """
        try:
            etag = str(self._head(key)["ETag"])
            return self._upload(source, key, if_match=etag)
        except NotFound:  # deleted before the HEAD
            return False
        finally:
            self.forget(self._key(key))
            source.unlink(missing_ok=True)

    def check_recorded(self, key: str, etag: str, *, wait: bool = False) -> None:
        """Raise ``ObjectChanged`` unless ``etag`` is the one recorded for ``key`` (or none is recorded).

        ``wait``: a reader that followed a rewrite may see it before the rotation that made it has recorded it
        (one database write after the PUT): looked at again for ``_RECORD_WAIT`` seconds before refusing.
        """
        if self.ledger is None:
            return
        deadline = time.monotonic() + (_RECORD_WAIT if wait else 0.0)
        while True:
            try:
                self.ledger.check(key, etag)
                return
            except ObjectChanged:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except NotFound:
            return False
        return True

    def _head(self, key: str) -> dict[str, Any]:
        with _asking(self.label, "read", key):
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        return head

    def open(self, key: str) -> Positional:
        """The object's bytes; its size and ETag are remembered, so a ticket or a read costs no HEAD after the first.

        Keys are content checksums: an object never changes under its key.  One deleted since (by this
        process: forgotten here; by another: its next read gets a 404) is ``NotFound``.
        """
        with self._lock:
            known = self._opened.get(key)
        if known is None:
            head = self._head(key)
            known = int(head["ContentLength"]), str(head["ETag"])
            self.check_recorded(key, known[1])
            with self._lock:
                if len(self._opened) >= _OPENED_SIZE:
                    self._opened.clear()
                self._opened[key] = known
        return S3Object(self, self._key(key), *known)

    def remember(self, stored_key: str, size: int, etag: str) -> None:
        """The object under ``stored_key`` (prefix included) has this ETag now: later opens pin to it."""
        key = self.unprefixed(stored_key)
        with self._lock:
            if key in self._opened:
                self._opened[key] = size, etag

    def forget(self, stored_key: str) -> None:
        """The object under ``stored_key`` changed: the next open reads its size and ETag again."""
        with self._lock:
            self._opened.pop(self.unprefixed(stored_key), None)

    def unprefixed(self, stored_key: str) -> str:
        return stored_key[len(self.prefix) + 1 :] if self.prefix else stored_key

    def read_bytes(self, key: str) -> bytes:
        with _asking(self.label, "read", key):
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            data: bytes = answer["Body"].read()
        self.check_recorded(key, str(answer["ETag"]))
        return data

    def local_copy(self, key: str) -> Path:
        target = self._cache / self._key(key)
        if target.is_file():
            return target
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        try:
            with _asking(self.label, "read", key), partial.open("wb") as out:
                answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
                self.check_recorded(key, str(answer["ETag"]))
                for piece in answer["Body"].iter_chunks(_PART_SIZE // 16):
                    out.write(piece)
            os.chmod(partial, 0o600)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    def delete(self, key: str) -> None:
        with self._lock:
            self._opened.pop(key, None)
        with _asking(self.label, "delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        cached = self._cache / self._key(key)
        cached.unlink(missing_ok=True)

    def keys(self, prefix: str) -> list[str]:
        start = len(self.prefix) + 1 if self.prefix else 0
        found: list[str] = []
        with _asking(self.label, "list", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix))
            for page in pages:
                found.extend(entry["Key"][start:] for entry in page.get("Contents", []))
        return sorted(found)

    def check(self) -> None:
        with _asking(self.label, "list the bucket"):
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)

    def staging_dir(self) -> Path:
        return self._staging.staging_dir()

    def work_dir(self, prefix: str) -> AbstractContextManager[Path]:
        return self._staging.work_dir(prefix)

    def sweep_staging(self) -> list[str]:
        return self._staging.sweep_staging()
