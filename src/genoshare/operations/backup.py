"""``genoshare backup`` and ``genoshare restore``: a whole node in one archive, and proof that it came back.

The archive (a tar file, 0600: it holds the node's keys, so it is as secret as the node) contains the data
directory (configuration, keys, indexes), the objects, and a consistent copy of the metadata database: the
SQLite backup API's snapshot, or ``pg_dump --format=custom`` of PostgreSQL. ``manifest.json`` lists every
member's SHA-256 and the audit chain's head at the time of the backup.

``restore`` unpacks into a new data directory (and, for PostgreSQL, an empty database) and then verifies:
every file's checksum, the audit chain recomputed under the restored key, and its head at least the one the
manifest recorded. A node that passes serves the same stored bytes, since those are the files checked.

Objects in an S3 store stay there (``docs/scale.md``: the bucket's versioning or replication keeps them): the
archive records their URL, and the restored node reads the same bucket.  Staging and cached copies
(plaintext while a file is ingested) never go into an archive, nor do the lock files of the processes that
ran the node (the restored node's make their own).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import tomli_w
from sqlalchemy.engine import make_url

from genoshare import __version__
from genoshare.crypt.keys import WRITERS_LOCK
from genoshare.errors import InvalidInput
from genoshare.node import Node
from genoshare.operations.metrics_dir import METRICS_DIR
from genoshare.settings import CONFIG_FILE, DEFAULT_DATABASE_FILE, Settings
from genoshare.store.db import TURN_LOCK_SUFFIXES
from genoshare.store.objects import LOCK_FILES

MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/genoshare.db"
POSTGRES_MEMBER = "database/genoshare.pgdump"
#: Left out of the data directory's copy: the live database (copied consistently instead) and scratch space.
_SKIPPED = {DEFAULT_DATABASE_FILE, *(DEFAULT_DATABASE_FILE + suffix for suffix in ("-wal", "-shm", "-journal"))}
#: Lock files, wherever they are (the database's, the keys', the object store's): empty files that hold ``flock``
#: locks of the processes running on this machine. Each process that needs one creates it, a restored node too;
#: restored from an archive, one would only be a file the new machine's processes had not made.
_LOCKS = {*(DEFAULT_DATABASE_FILE + suffix for suffix in TURN_LOCK_SUFFIXES), WRITERS_LOCK, *LOCK_FILES}


@dataclass(frozen=True)
class Verified:
    files: int
    audit_entries: int
    audit_head: str


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def _objects_root(settings: Settings) -> Path | None:
    """The local folder of the objects, or None for an S3 store."""
    parsed = urlparse(settings.objects_url)
    return Path(parsed.path) if parsed.scheme == "file" else None


def _metrics(relative: Path) -> bool:
    """The running server's metrics files (``operations.metrics_dir``): counters of this run, not node data."""
    return relative.parts[:1] == (METRICS_DIR,)


def _scratch(path: Path) -> bool:
    """Staging and cached copies (plaintext while a file is ingested or re-derived), and lock files: never archived."""
    return ".staging" in path.parts or path.name in _LOCKS


def _postgres_url(settings: Settings) -> str:
    """The URL pg_dump and pg_restore take (libpq's, without SQLAlchemy's driver name)."""
    return make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def backup(node: Node, target: Path) -> dict[str, object]:
    """Write the node to ``target`` (a new file); returns the manifest."""
    settings = node.settings
    if target.exists():
        raise InvalidInput(f"{target} exists already: a backup never overwrites a file")
    report = node.audit.verify()
    if not report.ok:
        raise InvalidInput(f"the audit chain is broken at entry {report.first_bad_seq}: {report.problem}")
    objects = _objects_root(settings)
    if objects is None:
        node.objects.check()  # a backup of a node whose objects cannot be reached would restore nothing usable
    url = make_url(settings.database_url)
    with tempfile.TemporaryDirectory(prefix="genoshare-backup-") as scratch:
        members: list[tuple[str, Path]] = []
        if url.get_backend_name() == "sqlite":
            copy = Path(scratch) / "genoshare.db"
            source, destination = sqlite3.connect(str(url.database)), sqlite3.connect(copy)
            try:
                source.backup(destination)  # a consistent snapshot, even while the server writes
            finally:
                destination.close()
                source.close()
            members.append((SQLITE_MEMBER, copy))
        else:
            dump = Path(scratch) / "genoshare.pgdump"
            _run(["pg_dump", "--format=custom", "--no-owner", "--file", str(dump), _postgres_url(settings)])
            members.append((POSTGRES_MEMBER, dump))
        s3_scratch = settings.s3.scratch_dir or settings.data_dir / "scratch"
        for path in _files(settings.data_dir):
            relative = path.relative_to(settings.data_dir)
            if str(relative) in _SKIPPED or _scratch(path) or path.is_relative_to(s3_scratch) or _metrics(relative):
                continue
            if objects is not None and objects.is_relative_to(settings.data_dir) and path.is_relative_to(objects):
                continue
            members.append((f"data/{relative}", path))
        if objects is not None:
            members += [
                (f"objects/{path.relative_to(objects)}", path) for path in _files(objects) if not _scratch(path)
            ]
        manifest: dict[str, object] = {
            "genoshare": __version__,
            "made_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": url.get_backend_name(),
            "audit": {"entries": report.entries, "head": report.head},
            "files": {name: _sha256(path) for name, path in members},
            # Objects in an S3 store are not archived: where they are (the database names each one).
            **({} if objects is not None else {"objects_url": settings.objects_url}),
        }
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle, tarfile.open(fileobj=handle, mode="w") as archive:
            for name, path in members:
                archive.add(path, arcname=name, recursive=False)
            body = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode = len(body), 0o600
            archive.addfile(info, io.BytesIO(body))
    return manifest


def restore(archive_path: Path, data_dir: Path, database_url: str | None = None) -> dict[str, object]:
    """Unpack a backup into a new ``data_dir`` (and for PostgreSQL into the empty ``database_url``)."""
    data_dir = data_dir.resolve()
    if data_dir.exists() and any(data_dir.iterdir()):
        raise InvalidInput(f"{data_dir} is not empty: restore into a new directory")
    try:
        archive = tarfile.open(archive_path, mode="r")  # noqa: SIM115 - closed by the "with" below
    except OSError as error:
        raise InvalidInput(f"cannot read {archive_path}: {error.strerror}") from None
    except tarfile.TarError:
        raise InvalidInput(f"{archive_path} is not a genoshare backup (not a tar archive)") from None
    with archive:
        try:
            manifest = json.loads(archive.extractfile(MANIFEST).read())  # type: ignore[union-attr]
        except (KeyError, AttributeError, ValueError):
            raise InvalidInput(f"{archive_path} is not a genoshare backup (no {MANIFEST})") from None
        postgres = manifest.get("database") == "postgresql"
        if postgres and not database_url:
            raise InvalidInput("this backup is of a PostgreSQL node: give --database-url of an empty database")
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="genoshare-restore-", dir=data_dir.parent) as scratch:
            archive.extractall(scratch, filter="data")
            unpacked = Path(scratch)
            problems = [
                name
                for name, digest in manifest["files"].items()
                if not (unpacked / name).is_file() or _sha256(unpacked / name) != digest
            ]
            if problems:
                raise InvalidInput(f"the backup is damaged: {len(problems)} file(s) differ, e.g. {problems[0]}")
            data_dir.mkdir(mode=0o700, exist_ok=True)
            shutil.copytree(unpacked / "data", data_dir, dirs_exist_ok=True)
            if (unpacked / "objects").is_dir():
                shutil.copytree(unpacked / "objects", data_dir / "objects", dirs_exist_ok=True)
            _point_config_here(data_dir, database_url if postgres else None)
            if postgres:
                assert database_url is not None
                target = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
                _run(
                    ["pg_restore", "--no-owner", "--exit-on-error", "--dbname", target, str(unpacked / POSTGRES_MEMBER)]
                )
            else:
                shutil.copyfile(unpacked / SQLITE_MEMBER, data_dir / DEFAULT_DATABASE_FILE)
    return manifest


def _point_config_here(data_dir: Path, database_url: str | None) -> None:
    """The restored configuration names this directory's objects and database, not the old node's.

    Objects in an S3 store were not archived: the restored node reads them where they are.
    """
    config = data_dir / CONFIG_FILE
    values = tomllib.loads(config.read_text()) if config.is_file() else {}
    if urlparse(str(values.get("objects_url", ""))).scheme != "s3":
        values.pop("objects_url", None)
    values.pop("database_url", None)
    if database_url:
        values["database_url"] = database_url
    descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("# genoshare node configuration (restored from a backup).\n" + tomli_w.dumps(values))


def verify(node: Node, manifest: dict[str, object]) -> Verified:
    """The restored node's audit chain verifies under its key and is the one the backup recorded."""
    report = node.audit.verify()
    if not report.ok:
        raise InvalidInput(f"restored audit chain broken at entry {report.first_bad_seq}: {report.problem}")
    audit, files = manifest["audit"], manifest["files"]
    assert isinstance(audit, dict) and isinstance(files, dict)
    if (report.entries, report.head) != (int(audit["entries"]), audit["head"]):
        raise InvalidInput(
            f"the restored audit chain ({report.entries} entries) is not the one recorded at the backup "
            f"({audit['entries']} entries)"
        )
    return Verified(len(files), report.entries, report.head)


def _run(command: list[str]) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600)  # noqa: S603
    except FileNotFoundError:
        raise InvalidInput(f"{command[0]} is not installed: install the PostgreSQL client tools") from None
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["failed"])[0]
        raise InvalidInput(f"{command[0]}: {first}")
