"""htsget 1.3 tickets for the node's stored files, without any web framework.

``parse_get``/``parse_post`` turn a request into an ``HtsgetQuery`` (validating every parameter the spec
defines, and raising the spec's errors); ``HtsgetService.ticket`` resolves the id to a stored object, asks
the access policy (the one decision point, audited), computes the blocks with the range engine and answers
with URLs on the node's own ``/data/{object_id}``: each carries a short-lived ticket in its ``headers``
(never in the URL, so never in an access log) and a ``Range``; small blocks go inline as ``data:`` URIs.

Crypt4GH (htsget-rs's experimental convention, samtools/hts-specs#808): ``encryptionScheme=C4GH`` plus the
client's public key, base64, in the ``Htsget-Context-Public-Key`` header.  The answer is then one Crypt4GH
stream for that key (see ``genoshare.htsget.c4gh``): an inline header with an edit list, then ranges of the
node's encrypted object, which ``/data`` serves re-keyed (the ticket carries the recipient key).

Field and tag filtering is accepted and validated but not applied: whole records are returned, which the
spec allows ("a server may include more fields than explicitly requested"); service-info says so with
``fieldsParameterEffective``/``tagsParametersEffective`` false.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import bindparam, select

from genoshare import __version__
from genoshare.access.granularity import Granularity
from genoshare.access.passports import Identity
from genoshare.access.policy import ANONYMOUS, AccessPolicy, Decision
from genoshare.access.served import ServedFiles
from genoshare.access.tickets import TicketSigner
from genoshare.audit import AuditLog, Entry
from genoshare.crypt.errors import CryptError
from genoshare.crypt.files import EncryptedFile, Positional, PositionalIO
from genoshare.crypt.keys import SecretKeys, parse_public_key, secrets_of
from genoshare.errors import GenoshareError, PermissionDenied, Unauthenticated
from genoshare.formats import FileFormat
from genoshare.htsget import bgzf, cram
from genoshare.htsget.c4gh import FreshCipher, Piece, lent_opener, plan_reencryption
from genoshare.htsget.errors import (
    InvalidAuthentication,
    InvalidInput,
    InvalidRange,
    NotFound,
    PayloadTooLarge,
    UnsupportedFormat,
)
from genoshare.htsget.errors import PermissionDenied as HtsgetPermissionDenied
from genoshare.htsget.layout import Opener
from genoshare.htsget.ranges import (
    Block,
    ByteRange,
    DataClass,
    IndexCache,
    InlineBlock,
    Region,
    header_blocks,
    regions_blocks,
)
from genoshare.settings import Settings
from genoshare.store.blobs import is_plaintext
from genoshare.store.db import Database
from genoshare.store.models import DataObject, Dataset
from genoshare.store.objects import ObjectStore

READS, VARIANTS = "reads", "variants"
ENDPOINT_FORMATS = {
    READS: (FileFormat.BAM, FileFormat.CRAM),
    VARIANTS: (FileFormat.VCF, FileFormat.BCF),
}
#: htsget-rs's header for the client's Crypt4GH public key (base64 of the key file, or of the raw key).
PUBLIC_KEY_HEADER = "Htsget-Context-Public-Key"
C4GH = "C4GH"
#: The BAM fields the spec lists for ``fields``.
READ_FIELDS = frozenset({"QNAME", "FLAG", "RNAME", "POS", "MAPQ", "CIGAR", "RNEXT", "PNEXT", "TLEN", "SEQ", "QUAL"})
MAX_REGIONS = 1000
#: Spec guideline: "data blocks should not exceed ~1GB"; smaller blocks also make retries cheaper.
MAX_BLOCK = 1 << 30
#: Object paths remembered per service; more than a node serves at once, small enough to never matter.
_PATH_CACHE_SIZE = 4096
#: Bytes a plaintext object is read ahead by while the engine looks at it (one ranged GET on an S3 store).
_READ_AHEAD = 256 * 1024
#: An id's stored formats with their datasets, in one round trip; built once (statement construction costs
#: more than SQLite's answer, and every ticket runs it).
_STORED_FORMATS = (
    select(DataObject, Dataset)
    .join(Dataset, Dataset.id == DataObject.dataset_id)
    .where(DataObject.htsget_id == bindparam("htsget_id"), DataObject.format.in_(bindparam("formats", expanding=True)))
)
_GET_PARAMETERS = {"format", "class", "referenceName", "start", "end", "fields", "tags", "notags", "encryptionScheme"}
_POST_FIELDS = {"format", "class", "fields", "tags", "notags", "regions", "encryptionScheme"}


@dataclass(frozen=True)
class HtsgetQuery:
    endpoint: str
    id: str
    format: FileFormat
    header_only: bool = False
    #: None: the whole file.
    regions: tuple[Region, ...] | None = None
    #: Raw 32-byte X25519 key of the client when it asked for Crypt4GH.
    recipient_key: bytes | None = None


def _format(endpoint: str, value: Any) -> FileFormat:
    allowed = ENDPOINT_FORMATS[endpoint]
    if value is None:
        return allowed[0]
    if not isinstance(value, str) or value.upper() not in {fmt.value for fmt in allowed}:
        names = " or ".join(fmt.value for fmt in allowed)
        raise UnsupportedFormat(f"format {value!r} is not served for {endpoint}; ask for {names}")
    return FileFormat(value.upper())


def _header_only(value: Any) -> bool:
    if value is None:
        return False
    if value != "header":
        raise InvalidInput(f"class must be 'header' when given, not {value!r}")
    return True


def _coordinate(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        if not value.isdigit():
            raise InvalidInput(f"{name} must be an unsigned integer, not {value!r}")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise InvalidInput(f"{name} must be a 32-bit unsigned integer, not {value!r}")
    return value


def _names(name: str, value: Any) -> frozenset[str] | None:
    """A GET comma list or a POST array of strings."""
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset(item for item in value.split(",") if item)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    raise InvalidInput(f"{name} must be a list of names")


def _check_filters(endpoint: str, fields: Any, tags: Any, notags: Any) -> None:
    wanted = _names("fields", fields)
    if wanted is not None and endpoint == READS and wanted - READ_FIELDS:
        raise InvalidInput(f"unknown fields {sorted(wanted - READ_FIELDS)}; the spec lists {sorted(READ_FIELDS)}")
    included, excluded = _names("tags", tags), _names("notags", notags)
    if included and excluded and included & excluded:
        raise InvalidInput(f"tags and notags intersect: {sorted(included & excluded)}")


def _recipient(scheme: Any, public_key: str | None) -> bytes | None:
    if scheme is None:
        return None
    if not isinstance(scheme, str) or scheme.upper() != C4GH:
        raise InvalidInput(f"encryptionScheme {scheme!r} is not supported; this server offers C4GH")
    if not public_key:
        raise InvalidInput(f"encryptionScheme=C4GH needs your Crypt4GH public key, base64, in {PUBLIC_KEY_HEADER}")
    try:
        return parse_public_key(public_key)
    except CryptError as error:
        raise InvalidInput(f"{PUBLIC_KEY_HEADER}: {error}") from error


def parse_get(endpoint: str, object_id: str, params: Mapping[str, str], public_key: str | None) -> HtsgetQuery:
    fmt = _format(endpoint, params.get("format"))
    header_only = _header_only(params.get("class"))
    others = sorted(set(params) & (_GET_PARAMETERS - {"format", "class", "encryptionScheme"}))
    if header_only and others:
        raise InvalidInput(f"class=header takes no other parameter than format (got {', '.join(others)})")
    _check_filters(endpoint, params.get("fields"), params.get("tags"), params.get("notags"))
    reference = params.get("referenceName")
    start, end = _coordinate("start", params.get("start")), _coordinate("end", params.get("end"))
    if (start is not None or end is not None) and reference in (None, "*"):
        raise InvalidInput("start and end need a referenceName other than '*'")
    if start is not None and end is not None and start > end:
        raise InvalidRange(f"start={start} is greater than end={end}")
    if reference == "*" and endpoint == VARIANTS:
        raise NotFound("referenceName '*' (unplaced unmapped reads) exists only for reads")
    regions = None if reference is None else (Region(reference, start, end),)
    recipient = _recipient(params.get("encryptionScheme"), public_key)
    return HtsgetQuery(endpoint, object_id, fmt, header_only, regions, recipient)


def parse_post(
    endpoint: str, object_id: str, body: Any, params: Mapping[str, str], public_key: str | None
) -> HtsgetQuery:
    """A POST body; the only query parameter allowed is the ``encryptionScheme`` extension."""
    if set(params) - {"encryptionScheme"}:
        raise InvalidInput("POST requests take their parameters in the JSON body, not in the query string")
    if not isinstance(body, dict):
        raise InvalidInput("the POST body must be a JSON object")
    unknown = set(body) - _POST_FIELDS
    if unknown:
        raise InvalidInput(f"unknown fields in the POST body: {sorted(unknown)}")
    fmt = _format(endpoint, body.get("format"))
    header_only = _header_only(body.get("class"))
    if header_only and set(body) - {"format", "class", "encryptionScheme"}:
        raise InvalidInput("class=header takes no other parameter than format")
    _check_filters(endpoint, body.get("fields"), body.get("tags"), body.get("notags"))
    regions = None if body.get("regions") is None else _regions(endpoint, body["regions"])
    scheme = body.get("encryptionScheme", params.get("encryptionScheme"))
    return HtsgetQuery(endpoint, object_id, fmt, header_only, regions, _recipient(scheme, public_key))


def _regions(endpoint: str, value: Any) -> tuple[Region, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidInput("regions must be a non-empty array")
    if len(value) > MAX_REGIONS:
        raise PayloadTooLarge(f"{len(value)} regions in one request; this server takes at most {MAX_REGIONS}")
    regions = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"referenceName", "start", "end"}:
            raise InvalidInput(f"a region is an object with referenceName, start, end; not {item!r}")
        reference = item.get("referenceName")
        if not isinstance(reference, str) or not reference:
            raise InvalidInput("every region needs a referenceName")
        start, end = _coordinate("start", item.get("start")), _coordinate("end", item.get("end"))
        if reference == "*" and (start is not None or end is not None):
            raise InvalidInput("start and end need a referenceName other than '*'")
        if start is not None and end is not None and start >= end:
            raise InvalidRange(f"start={start} must be less than end={end} in a POST region")
        if reference == "*" and endpoint == VARIANTS:
            raise NotFound("referenceName '*' (unplaced unmapped reads) exists only for reads")
        regions.append(Region(reference, start, end))
    return tuple(regions)


class HtsgetService:
    """Tickets and service-info; one per application (it keeps the parsed-index cache)."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        objects: ObjectStore,
        secret_key: SecretKeys,
        policy: AccessPolicy,
        tickets: TicketSigner,
        subsets: ServedFiles,
        audit: AuditLog,
        cache: IndexCache | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.objects = objects
        #: The node's Crypt4GH secret key: stored files are read (and re-keyed for a recipient) with it.
        self.secret_key = secret_key
        self.policy = policy
        self.tickets = tickets
        self.subsets = subsets
        self.audit = audit
        self.cache = cache or IndexCache()
        self._paths: dict[str, Path] = {}

    def service_info(self, endpoint: str) -> dict[str, Any]:
        return {
            "id": f"{self.settings.node_id}.htsget.{endpoint}",
            "name": f"{self.settings.node_name} htsget {endpoint}",
            "type": {"group": "org.ga4gh", "artifact": "htsget", "version": "1.3.0"},
            "description": f"htsget {endpoint} of a genoshare node; files are Crypt4GH-encrypted at rest (public "
            f"datasets may keep them unencrypted) and served decrypted or, with encryptionScheme=C4GH and "
            f"{PUBLIC_KEY_HEADER}, re-encrypted.",
            "organization": {"name": self.settings.organization, "url": self.settings.public_url},
            "version": __version__,
            "environment": self.settings.environment,
            "htsget": {
                "datatype": endpoint,
                "formats": [fmt.value for fmt in ENDPOINT_FORMATS[endpoint]],
                "fieldsParameterEffective": False,
                "tagsParametersEffective": False,
            },
        }

    def _local_path(self, key: str) -> Path:
        """The store's path for an index ``key`` (a cached copy on an S3 store), remembered per service.

        The store resolves a key with a ``stat`` of every directory on the way (about 0.2 ms, twice per ticket),
        while keys are content checksums whose path never changes.  A file that has gone is asked of the store
        again, which raises its ``NotFound``.
        """
        path = self._paths.get(key)
        if path is None or not path.is_file():
            if len(self._paths) >= _PATH_CACHE_SIZE:
                self._paths.clear()
            path = self._paths[key] = self.objects.local_copy(key)
        return path

    def _readable(self, query: HtsgetQuery, identity: Identity | None) -> tuple[DataObject, Dataset, Decision]:
        """The file asked for and the decision that lets the caller read it.

        An id that does not exist is refused exactly as one the caller may not read (401 without a passport,
        403 with one, the same message), and the formats an id is stored in are told only to callers who may
        read it: nobody without access learns which ids exist.
        """
        formats = [fmt.value for fmt in ENDPOINT_FORMATS[query.endpoint]]
        with self.database.sessions() as session:
            found = list(session.execute(_STORED_FORMATS, {"htsget_id": query.id, "formats": formats}).all())
        row, dataset = next(((r, d) for r, d in found if r.format == query.format.value), (None, None))
        if dataset is None and found:
            dataset = found[0][1]
        try:
            if dataset is None:
                raise NotFound(f"no {query.endpoint} with id {query.id!r}")
            decision = self.policy.require(
                identity,
                dataset,
                Granularity.RECORD,
                action=f"htsget.{query.endpoint}",
                resource=f"objects/{(row or found[0][0]).id}",
            )
        except (NotFound, Unauthenticated, PermissionDenied) as refused:
            hidden: GenoshareError
            if identity is None:
                hidden = InvalidAuthentication(
                    f"no public {query.endpoint} with id {query.id!r}: send a GA4GH passport that grants it"
                )
            else:
                hidden = HtsgetPermissionDenied(
                    f"your passport opens no {query.endpoint} with id {query.id!r} "
                    "(none exists, or it needs a grant you lack)"
                )
            hidden.audited = refused.audited
            raise hidden from None
        if row is None:
            stored = ", ".join(sorted(r.format for r, _ in found))
            raise UnsupportedFormat(f"{query.id} is available as {stored}, not {query.format.value}")
        return row, dataset, decision

    def ticket(self, query: HtsgetQuery, identity: Identity | None) -> dict[str, Any]:
        row, _, decision = self._readable(query, identity)
        # A shared file is served without the people whose consent excludes the caller's grants.
        excluded = self.policy.check_object(row, decision.grants)
        row = self.subsets.served(row, excluded)
        token = self.tickets.for_read(identity, row, decision.grants, query.recipient_key)
        if is_plaintext(row.blob_key):
            if query.recipient_key is not None:
                raise InvalidInput(
                    f"{query.id} is public data stored unencrypted: encryptionScheme=C4GH is not offered for it; "
                    "ask without encryptionScheme"
                )
            stored = self.objects.open(row.blob_key)
            try:
                data_path = Path(stored.name)
                blocks, whole = self._blocks(query, row, data_path, stored.size, _opener(stored))
            finally:
                stored.close()
        else:
            with EncryptedFile(self.objects.open(row.blob_key), self.secret_key) as file:
                data_path = file.path
                blocks, whole = self._blocks(query, row, data_path, file.plaintext_size, lent_opener(file))
                if query.recipient_key is not None:
                    urls = self._c4gh_urls(query, row, file, blocks, token)
                    c4gh = {"format": query.format.value, "urls": urls}
                    return self._issued(identity, row, decision.grants, excluded, c4gh)
        answer: dict[str, Any] = {"format": query.format.value, "urls": self._urls(query, row, blocks, token)}
        if whole:
            answer["md5"] = row.md5
        return self._issued(identity, row, decision.grants, excluded, answer)

    def _issued(
        self,
        identity: Identity | None,
        row: DataObject,
        grants: tuple[str, ...],
        excluded: frozenset[str],
        answer: dict[str, Any],
    ) -> dict[str, Any]:
        """Log what a ticket hands out: data inline in it leaves the node here, not through ``/data``.

        Usage reports add ``inline_bytes`` to the bytes served; ``data_bytes`` (what its URLs point at) are
        counted when ``/data`` serves them.  ``withheld``: people whose consent kept them out of the file.
        """
        inline = data_bytes = 0
        for url in answer["urls"]:
            if url["url"].startswith("data:"):
                encoded = url["url"].partition(",")[2]
                inline += len(encoded) * 3 // 4 - encoded[-2:].count("=")
            else:
                first, _, last = url["headers"]["Range"].removeprefix("bytes=").partition("-")
                data_bytes += int(last) - int(first) + 1
        self.audit.record(
            Entry(
                actor=identity.actor if identity else ANONYMOUS,
                action="htsget.ticket",
                resource=f"objects/{row.id}",
                decision="permit",
                reason="htsget ticket issued",
                details={
                    "dataset": row.dataset_id,
                    "grants": list(grants),
                    "format": answer["format"],
                    "inline_bytes": inline,
                    "data_bytes": data_bytes,
                    "withheld": sorted(excluded),
                    "sha256": row.sha256,
                },
            )
        )
        return {"htsget": answer}

    def _blocks(
        self, query: HtsgetQuery, row: DataObject, data_path: Path, size: int, read: Opener
    ) -> tuple[list[Block], bool]:
        """The engine's blocks; a whole-file request is the stored file as it is (what clients compare).

        ``read`` opens the stored file's plaintext (a decrypting reader over the ticket's open Crypt4GH file,
        or ``open`` for files stored unencrypted); ``size`` is the plaintext's length.
        """
        fmt = query.format
        if query.header_only:
            return header_blocks(fmt, data_path, self.cache, read), False
        if query.regions is None:
            layout = self.cache.layout(fmt, data_path, read)
            cut = layout.header_end if fmt is FileFormat.CRAM else bgzf.split(layout.header_end)[0]
            clean = fmt is FileFormat.CRAM or bgzf.split(layout.header_end)[1] == 0
            if not clean:
                # The header ends inside a BGZF block: no byte offset splits header from body, so the
                # ticket carries no classes (the spec: all URLs have one, or none has).
                return [ByteRange(0, size)], True
            return [ByteRange(0, cut, DataClass.HEADER), ByteRange(cut, size, DataClass.BODY)], True
        if row.index_key is None:
            raise NotFound(f"{row.id} has no index, so only the whole file or its header can be served")
        index_path = self._local_path(row.index_key)
        return regions_blocks(fmt, data_path, index_path, list(query.regions), self.cache, read), False

    def _data_url(self, row: DataObject) -> str:
        return f"{self.settings.public_url}/data/{row.id}"

    def _urls(self, query: HtsgetQuery, row: DataObject, blocks: list[Block], token: str) -> list[dict[str, Any]]:
        classed = query.header_only or not (
            len(blocks) == 1 and isinstance(blocks[0], ByteRange) and query.regions is None
        )
        urls = []
        for block in blocks:
            entries: list[dict[str, Any]]
            if isinstance(block, InlineBlock):
                entries = [{"url": _data_uri(query.format, block.data)}]
            else:
                entries = [
                    {"url": self._data_url(row), "headers": _range_headers(token, start, end)}
                    for start, end in _split(block.start, block.end)
                ]
            for entry in entries:
                if classed:
                    entry["class"] = block.data_class.value
                urls.append(entry)
        return urls

    def _c4gh_urls(
        self, query: HtsgetQuery, row: DataObject, file: EncryptedFile, blocks: list[Block], token: str
    ) -> list[dict[str, Any]]:
        assert query.recipient_key is not None
        pieces = _pieces(query.format, blocks, file)
        plan = plan_reencryption(file, query.recipient_key, secrets_of(self.secret_key)[0], pieces)
        # /data serves, for this ticket, the stored file with its header re-keyed to the recipient: its
        # segments sit at the stored offsets shifted by the difference of the two header lengths.
        shift = len(file.reencrypted(query.recipient_key, []).header) - file.header_size
        urls: list[dict[str, Any]] = [{"url": _data_uri(None, plan.header)}]
        for part in plan.parts:
            if isinstance(part, FreshCipher):
                urls.append({"url": _data_uri(None, part.data)})
                continue
            for start, end in _split(part.start + shift, part.end + shift):
                urls.append({"url": self._data_url(row), "headers": _range_headers(token, start, end)})
        if query.header_only:  # everything a class=header answer holds is header data, the spec's only class
            for entry in urls:
                entry["class"] = DataClass.HEADER.value
        return urls


def _opener(stored: Positional) -> Opener:
    """An ``Opener`` over a plaintext object the ticket has open: local or ranged reads, 256 KiB ahead."""

    def open_stored(path: Path) -> BinaryIO:
        if str(path) != str(Path(stored.name)):
            raise ValueError(f"this opener reads {stored.name}, not {path}")
        return io.BufferedReader(PositionalIO(stored), _READ_AHEAD)

    return open_stored


def _pieces(fmt: FileFormat, blocks: list[Block], file: EncryptedFile) -> list[Piece]:
    """Blocks as plaintext pieces; a trailing EOF marker is taken from the stored file's tail when it is there.

    Stored bytes cost no encryption and keep the stored file's short final segment where it must be: last.
    """
    eof = cram.EOF_CONTAINER if fmt is FileFormat.CRAM else bgzf.EOF_MARKER
    size = file.plaintext_size
    stored_eof = size >= len(eof) and b"".join(file.iter_plaintext(size - len(eof), size)) == eof
    pieces: list[Piece] = []
    for number, block in enumerate(blocks):
        if isinstance(block, ByteRange):
            pieces.append((block.start, block.end))
        elif stored_eof and number == len(blocks) - 1 and block.data.endswith(eof):
            pieces += [block.data[: -len(eof)], (size - len(eof), size)]
        else:
            pieces.append(block.data)
    return pieces


def _split(start: int, end: int) -> list[tuple[int, int]]:
    return [(at, min(at + MAX_BLOCK, end)) for at in range(start, end, MAX_BLOCK)]


def _range_headers(token: str, start: int, end: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Range": f"bytes={start}-{end - 1}"}


def _data_uri(fmt: FileFormat | None, data: bytes) -> str:
    media = fmt.mime_type if fmt else "application/octet-stream"
    return f"data:{media};base64,{base64.b64encode(data).decode('ascii')}"
