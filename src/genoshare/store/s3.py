"""Objects in an S3-compatible store (AWS S3, MinIO, Ceph RGW, ...), through boto3.

boto3 rather than obstore or fsspec/s3fs: it is the reference client every S3-compatible gateway is tested
against, its client is thread-safe with one pool of keep-alive connections for the whole process (the
node's readers run in threads), and its transfer manager does the multipart upload a large file needs.

What the node asks of the store, and how:

* reads are ranged GETs of exactly the bytes a reader wants, pinned to the ETag seen when the object
  was opened (``If-Match``): a data file is never copied to local disk, and a read never mixes two versions
  -- except one a rotation of the node key makes (``replace``): it rewrites a Crypt4GH header to the same
  length and leaves every segment as it was, so a reader follows the new ETag when the length is unchanged
  (a running download goes on; the segments it reads are the bytes it would have read);
* writes upload a finished staging file under its final key (one PUT, or a multipart upload whose parts
  become visible only when it completes): a crash mid-upload publishes nothing;
* small objects parsed whole from a path (htsget indexes) are downloaded once into a local cache; keys
  are content checksums, so a cached copy never goes stale;
* staging (plaintext scratch) stays on local disk, with the same locks and crash sweep as a file store.

Every failure to reach the store, or a refusal of the node's credentials, is ``Unavailable`` (503) with the
error's code only; the node's log names the store (a client is not told the bucket).  Neither a credential
nor the endpoint's answer text ever reaches a log or a client.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from genoshare.crypt.files import ENCRYPTED_SUFFIX, Positional
from genoshare.errors import InvalidInput, NotFound, Unavailable
from genoshare.settings import S3Settings

_log = logging.getLogger(__name__)
_MISSING = {"404", "NoSuchKey", "NotFound"}
#: Files above this go up in parts of this size (S3 allows at most 10 000 parts: 640 GB).
_PART_SIZE = 64 * 1024 * 1024
#: The largest object one PUT stores (S3's limit).
_SINGLE_PUT = 5 * 1024**3
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

    def __init__(self, bucket: str, prefix: str, settings: S3Settings, staging: Staging, cache: Path) -> None:
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
        self._transfer = TransferConfig(multipart_threshold=_PART_SIZE, multipart_chunksize=_PART_SIZE)

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.label!r})"

    def _key(self, key: str) -> str:
        parts = PurePosixPath(key).parts
        if not parts or key.startswith("/") or ".." in parts:
            raise InvalidInput(f"object key escapes the store: {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, source: Path, key: str) -> None:
        if self.exists(key):
            # Keys are content checksums: an existing object already holds these bytes.
            source.unlink(missing_ok=True)
            return
        self._upload(source, key)

    def _upload(self, source: Path, key: str) -> None:
        with _asking(self.label, "write", key):
            self.client.upload_file(str(source), self.bucket, self._key(key), Config=self._transfer)

    def replace(self, source: Path, key: str) -> bool:
        """One PUT on the condition that the object is the one there now (``If-Match``): a delete meanwhile wins.

        Above what one PUT takes (5 GiB), a multipart upload, which boto3's transfer manager sends without a
        condition: an object deleted while it uploads is stored again.
        """
        try:
            etag = str(self._head(key)["ETag"])
            if source.stat().st_size > _SINGLE_PUT:
                self._upload(source, key)
            else:
                with _asking(self.label, "write", key), source.open("rb") as body:
                    self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body, IfMatch=etag)
        except NotFound:  # deleted before the HEAD, or since (the condition failed)
            return False
        finally:
            self.forget(self._key(key))
            source.unlink(missing_ok=True)
        return True

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
            with self._lock:
                if len(self._opened) >= _OPENED_SIZE:
                    self._opened.clear()
                self._opened[key] = known
        return S3Object(self, self._key(key), *known)

    def remember(self, stored_key: str, size: int, etag: str) -> None:
        """The object under ``stored_key`` (prefix included) has this ETag now: later opens pin to it."""
        key = self._unprefixed(stored_key)
        with self._lock:
            if key in self._opened:
                self._opened[key] = size, etag

    def forget(self, stored_key: str) -> None:
        """The object under ``stored_key`` changed: the next open reads its size and ETag again."""
        with self._lock:
            self._opened.pop(self._unprefixed(stored_key), None)

    def _unprefixed(self, stored_key: str) -> str:
        return stored_key[len(self.prefix) + 1 :] if self.prefix else stored_key

    def read_bytes(self, key: str) -> bytes:
        with _asking(self.label, "read", key):
            data: bytes = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        return data

    def local_copy(self, key: str) -> Path:
        target = self._cache / self._key(key)
        if target.is_file():
            return target
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        try:
            with _asking(self.label, "read", key):
                self.client.download_file(self.bucket, self._key(key), str(partial))
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
