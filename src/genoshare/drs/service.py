"""DRS 1.5 objects and bundles over the node's datasets.

A file is a DRS blob (id ``<dataset>.<file name>``); a dataset is a DRS bundle whose ``contents`` are its
files.  Every read asks ``AccessPolicy`` for record-level access to the owning dataset; access URLs point
at the node's own ``/data`` endpoint with a short-lived ticket in the ``Authorization`` header, so the
ticket never appears in a URL (and so never in an access log).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select

from genoshare import __version__
from genoshare.access.granularity import AccessLevel, Granularity
from genoshare.access.passports import Identity
from genoshare.access.policy import AccessPolicy, Decision
from genoshare.access.served import ServedFiles
from genoshare.access.tickets import TicketSigner
from genoshare.datasets.service import DatasetService
from genoshare.drs.indexes import IndexFiles, index_id, index_parent
from genoshare.errors import GenoshareError, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from genoshare.ids import is_wellformed_id
from genoshare.settings import Settings
from genoshare.store.db import Database
from genoshare.store.models import DataObject, Dataset

ACCESS_ID = "https"
_OBJECTS = DataObject.__table__
_DATASETS = Dataset.__table__
_OBJECT_KEYS = tuple(column.key for column in _OBJECTS.c)
_DATASET_KEYS = tuple(column.key for column in _DATASETS.c)
# Every DRS request resolves its id: precompiled Core statements on a pooled connection, where an ORM
# session's lookups cost several times the queries. The rows become detached ORM objects.
_OBJECT_WITH_DATASET = (
    select(_OBJECTS, _DATASETS)
    .join(_DATASETS, _DATASETS.c.id == _OBJECTS.c.dataset_id)
    .where(_OBJECTS.c.id == bindparam("id"))
)
_DATASET = select(_DATASETS).where(_DATASETS.c.id == bindparam("id"))
_FILES_OF = select(_OBJECTS).where(_OBJECTS.c.dataset_id == bindparam("dataset_id")).order_by(_OBJECTS.c.name)


def _object(row: Sequence[Any]) -> DataObject:
    """The ``objects`` columns that lead ``row`` as a detached ``DataObject``."""
    return DataObject(**dict(zip(_OBJECT_KEYS, row[: len(_OBJECT_KEYS)], strict=True)))


def _time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class DrsService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        datasets: DatasetService,
        policy: AccessPolicy,
        tickets: TicketSigner,
        subsets: ServedFiles,
        indexes: IndexFiles,
    ) -> None:
        self.settings = settings
        self.database = database
        self.datasets = datasets
        self.policy = policy
        self.tickets = tickets
        self.subsets = subsets
        #: Each data file's index, a DRS object of its own (``genoshare.drs.indexes``).
        self.indexes = indexes

    # -- lookup ----------------------------------------------------------------------------------

    def _resolve(self, drs_id: str) -> tuple[Dataset, DataObject | None, list[DataObject]]:
        """(dataset, the blob or None for a bundle, the bundle's files); for an index, its data file's blob."""
        if not is_wellformed_id(drs_id):
            raise NotFound(f"no DRS object {drs_id!r}")
        parent = index_parent(drs_id)
        with self.policy.read_connection() as connection:
            found = connection.execute(_OBJECT_WITH_DATASET, {"id": drs_id}).first()
            if found is None and parent is not None:
                found = connection.execute(_OBJECT_WITH_DATASET, {"id": parent}).first()
                if found is not None and index_id(_object(found)) != drs_id:
                    found = None
            if found is not None:
                return Dataset(**dict(zip(_DATASET_KEYS, found[len(_OBJECT_KEYS) :], strict=True))), _object(found), []
            dataset = connection.execute(_DATASET, {"id": drs_id}).first()
            if dataset is None:
                raise NotFound(f"no DRS object {drs_id!r}")
            files = [_object(row) for row in connection.execute(_FILES_OF, {"dataset_id": drs_id}).all()]
            return Dataset(**dict(zip(_DATASET_KEYS, dataset, strict=True))), None, files

    def _readable(
        self, drs_id: str, identity: Identity | None, action: str
    ) -> tuple[Dataset, DataObject | None, list[DataObject], Decision]:
        """The object and the decision that lets the caller read it.

        An id that does not exist is refused exactly as one the caller may not read (401 without a passport,
        403 with one, the same message), so that nobody without access learns which ids exist.
        """
        try:
            dataset, blob, files = self._resolve(drs_id)
            decision = self.policy.require(
                identity, dataset, Granularity.RECORD, action=action, resource=f"objects/{drs_id}"
            )
        except (NotFound, Unauthenticated, PermissionDenied) as refused:
            hidden: GenoshareError
            if identity is None:
                hidden = Unauthenticated(f"no public DRS object {drs_id!r}: send a GA4GH passport that grants it")
            else:
                hidden = PermissionDenied(
                    f"your passport opens no DRS object {drs_id!r} (none exists, or it needs a grant you lack)"
                )
            hidden.audited, hidden.audit_as = refused.audited, refused.audit_as
            raise hidden from None
        return dataset, blob, files, decision

    # -- documents -------------------------------------------------------------------------------

    def _blob(self, blob: DataObject, public: bool, index_of: DataObject | None = None) -> dict[str, Any]:
        """A file's DRS object, or (``index_of`` its data file) an index's; each names the other in ``aliases``."""
        host = self.settings.public_host
        if index_of is not None:
            aliases = [f"index-of:drs://{host}/{index_of.id}"]
            description = f"{blob.name.rsplit('.', 1)[-1]} index of {index_of.id}, for reading it by region"
        else:
            kind = "variants" if blob.format in ("VCF", "BCF") else "reads"
            index = index_id(blob)
            aliases = [f"htsget:{kind}/{blob.htsget_id}", *([f"index:drs://{host}/{index}"] if index else [])]
            description = f"{blob.format} file of dataset {blob.dataset_id}"
        return {
            "id": blob.id,
            "name": blob.name,
            "self_uri": f"drs://{self.settings.public_host}/{blob.id}",
            "size": blob.size,
            "created_time": _time(blob.created_at),
            "updated_time": _time(blob.created_at),
            "version": blob.sha256[:16],
            "mime_type": blob.mime_type,
            "checksums": [{"checksum": blob.sha256, "type": "sha-256"}, {"checksum": blob.md5, "type": "md5"}],
            "access_methods": [
                {
                    "type": "https",
                    "access_id": ACCESS_ID,
                    "available": True,
                    "authorizations": self._authorizations(blob.id, public),
                }
            ],
            "description": description,
            "aliases": aliases,
        }

    def _bundle(self, dataset: Dataset, files: Sequence[DataObject], expand: bool) -> dict[str, Any]:
        md5s = sorted(item.md5 for item in files)
        contents = []
        for item in files:
            entry: dict[str, Any] = {
                "name": item.name,
                "id": item.id,
                "drs_uri": [f"drs://{self.settings.public_host}/{item.id}"],
            }
            if expand:
                entry["contents"] = []
            contents.append(entry)
        return {
            "id": dataset.id,
            "name": dataset.id,
            "self_uri": f"drs://{self.settings.public_host}/{dataset.id}",
            "size": sum(item.size for item in files),
            "created_time": _time(dataset.created_at),
            "updated_time": _time(
                max(
                    [dataset.updated_at, *(item.created_at for item in files)],
                    key=lambda t: t.replace(tzinfo=t.tzinfo or UTC),
                )
            ),
            "version": hashlib.md5("".join(md5s).encode(), usedforsecurity=False).hexdigest()[:16],
            "mime_type": "application/json",
            # DRS: a bundle's checksum is the checksum of its sorted, concatenated member checksums.
            "checksums": [
                {"checksum": hashlib.md5("".join(md5s).encode(), usedforsecurity=False).hexdigest(), "type": "md5"}
            ],
            "contents": contents,
            "description": dataset.title,
        }

    def _authorizations(self, drs_id: str, public: bool) -> dict[str, Any]:
        """Public objects need no credentials ("None"); all others a passport, in the body or as bearer."""
        if public:
            return {"drs_object_id": drs_id, "supported_types": ["None"]}
        issuers = [issuer.issuer for issuer in self.settings.trusted_issuers]
        return {
            "drs_object_id": drs_id,
            "supported_types": ["PassportAuth", "BearerAuth"],
            "passport_auth_issuers": issuers,
            "bearer_auth_issuers": issuers,
        }

    # -- operations ------------------------------------------------------------------------------

    def service_info(self) -> dict[str, Any]:
        count, total = self.datasets.totals()
        return {
            "id": f"{self.settings.node_id}.drs",
            "name": f"{self.settings.node_name} DRS",
            "type": {"group": "org.ga4gh", "artifact": "drs", "version": "1.5.0"},
            "description": "Data Repository Service of a genoshare node; files are Crypt4GH-encrypted at rest "
            "(public datasets may keep them unencrypted).",
            "organization": {"name": self.settings.organization, "url": self.settings.public_url},
            "version": __version__,
            "environment": self.settings.environment,
            "maxBulkRequestLength": self.settings.max_bulk_request_length,
            "drs": {
                "maxBulkRequestLength": self.settings.max_bulk_request_length,
                "objectCount": count,
                "totalObjectSize": total,
            },
        }

    def get_object(self, drs_id: str, identity: Identity | None, expand: bool = False) -> dict[str, Any]:
        dataset, blob, files, decision = self._readable(drs_id, identity, "drs.get")
        if blob is None:
            return self._bundle(dataset, files, expand)
        served = self.subsets.served(blob, self.policy.check_object(blob, decision.grants))
        public = dataset.access_level == AccessLevel.PUBLIC
        if blob.id != drs_id:
            return self._blob(self.indexes.of(served), public, index_of=served)
        return self._blob(served, public)

    def by_checksum(self, checksum: str, identity: Identity | None) -> dict[str, Any]:
        """The DRS objects the caller may read whose checksums (as served to them) include ``checksum``.

        DRS 1.5 has no lookup by checksum; this follows the ``GET /objects/checksum/{checksum}`` proposed for
        DRS (ga4gh/data-repository-service-schemas#419) and answered in the bulk shape. An object the caller may
        not read is left out, so the answer is the same 404 whether none exists or none is theirs to see.
        """
        digest = checksum.strip().lower().rpartition(":")[2]
        found = []
        for row in self.datasets.objects_by_checksum(checksum):
            try:
                drs_object = self.get_object(row.id, identity)
            except (Unauthenticated, PermissionDenied, NotFound):
                continue
            if any(item["checksum"] == digest for item in drs_object["checksums"]):
                found.append(drs_object)
        if not found:
            raise NotFound(
                f"no DRS object you may read has the checksum {checksum!r} (none exists, or it needs access you lack)"
            )
        return _bulk_answer(len(found), "resolved_drs_object", found, {})

    def authorizations(self, drs_id: str) -> dict[str, Any]:
        """How to authorise for an object: for an id that does not exist, what a controlled object says."""
        try:
            dataset, _, _ = self._resolve(drs_id)
        except NotFound:
            return self._authorizations(drs_id, public=False)
        return self._authorizations(drs_id, public=dataset.access_level == AccessLevel.PUBLIC)

    def access_url(self, drs_id: str, access_id: str, identity: Identity | None) -> dict[str, Any]:
        _, blob, _, decision = self._readable(drs_id, identity, "drs.access")
        if blob is None:
            raise InvalidInput(f"{drs_id} is a bundle: fetch its contents one by one")
        if access_id != ACCESS_ID:
            raise NotFound(f"object {drs_id} has no access method {access_id!r} (it has {ACCESS_ID!r})")
        served = self.subsets.served(blob, self.policy.check_object(blob, decision.grants))
        if blob.id != drs_id:
            served = self.indexes.of(served)
        ticket = self.tickets.for_read(identity, served, decision.grants)
        return {"url": f"{self.settings.public_url}/data/{served.id}", "headers": [f"Authorization: Bearer {ticket}"]}

    # -- bulk ------------------------------------------------------------------------------------

    def _check_bulk(self, count: int) -> None:
        if count > self.settings.max_bulk_request_length:
            raise RequestTooLarge(
                f"{count} ids in one request; this server takes at most {self.settings.max_bulk_request_length}"
            )
        if count == 0:
            raise InvalidInput("no object ids given")

    def bulk_objects(self, drs_ids: Sequence[str], identity: Identity | None, expand: bool) -> dict[str, Any]:
        self._check_bulk(len(drs_ids))
        resolved: list[dict[str, Any]] = []
        failures: dict[int, list[str]] = {}
        for drs_id in drs_ids:
            try:
                resolved.append(self.get_object(drs_id, identity, expand))
            except GenoshareError as error:
                failures.setdefault(error.status_code, []).append(drs_id)
        return {
            "summary": {
                "requested": len(drs_ids),
                "resolved": len(resolved),
                "unresolved": len(drs_ids) - len(resolved),
            },
            "resolved_drs_object": resolved,
            "unresolved_drs_objects": [{"error_code": code, "object_ids": ids} for code, ids in failures.items()],
        }

    def bulk_access(self, requests: Sequence[tuple[str, Sequence[str]]], identity: Identity | None) -> dict[str, Any]:
        self._check_bulk(sum(len(ids) for _, ids in requests))
        resolved: list[dict[str, Any]] = []
        failures: dict[int, list[str]] = {}
        for drs_id, access_ids in requests:
            for access_id in access_ids:
                try:
                    url = self.access_url(drs_id, access_id, identity)
                except GenoshareError as error:
                    failures.setdefault(error.status_code, []).append(drs_id)
                    continue
                resolved.append({"drs_object_id": drs_id, "drs_access_id": access_id, **url})
        requested = sum(len(ids) for _, ids in requests)
        return _bulk_answer(requested, "resolved_drs_object_access_urls", resolved, failures)

    def bulk_authorizations(self, drs_ids: Sequence[str]) -> dict[str, Any]:
        if drs_ids:
            self._check_bulk(len(drs_ids))
        resolved: list[dict[str, Any]] = []
        failures: dict[int, list[str]] = {}
        for drs_id in drs_ids:
            try:
                resolved.append(self.authorizations(drs_id))
            except GenoshareError as error:
                failures.setdefault(error.status_code, []).append(drs_id)
        return _bulk_answer(len(drs_ids), "resolved_drs_object", resolved, failures)


def _bulk_answer(
    requested: int, key: str, resolved: list[dict[str, Any]], failures: dict[int, list[str]]
) -> dict[str, Any]:
    return {
        "summary": {"requested": requested, "resolved": len(resolved), "unresolved": requested - len(resolved)},
        key: resolved,
        "unresolved_drs_objects": [{"error_code": code, "object_ids": ids} for code, ids in failures.items()],
    }


class RequestTooLarge(InvalidInput):
    status_code = 413
    code = "RequestTooLarge"
