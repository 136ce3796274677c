"""``genoshare check`` and the server's start-up: every problem of a node's settings and files, one line each.

A problem says what is wrong and how to fix it; none is a traceback. ``unsafe`` problems (placeholders, test
keys, files other users can read, short secrets) are warnings on a development node and refuse the start of
one whose ``environment`` is ``prod``: a production node that announces "Example Institute", or decrypts with
a key published on GitHub, is worse than one that does not start.
"""

from __future__ import annotations

import base64
import os
import stat
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import ValidationError
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from genoshare.crypt.errors import InvalidKey
from genoshare.crypt.keys import load_keypair
from genoshare.node import AUDIT_KEY_FILE, NODE_KEY_NAME, PSEUDONYM_KEY_FILE
from genoshare.settings import CONFIG_FILE, Settings, load_settings
from genoshare.store.db import schema_problem
from genoshare.store.models import PendingRemoval

#: The public halves of the htsget-rs test keys shipped with the demo data (``demo/data/htsget/c4gh/keys``):
#: their secret halves are public, so a node using one of them protects nothing.
TEST_PUBLIC_KEYS = frozenset(
    base64.b64decode(key)
    for key in ("ToQrpj4UfuLgxZRe1wSGIZtXC19fOEHUHe3RQy63qwM=", "TyKEXZPnfon6dj1kRXl6HumfZDzo/h60RIc8Wd0Ig2s=")
)
#: The defaults a production node must replace with its own.
PLACEHOLDERS = {"organization": "Example Institute", "node_id": "org.example.genoshare"}
#: Secrets an operator supplies (webhook, client secrets, tokens) must be at least this long.
MIN_SECRET_BYTES = 16
#: The node's own secrets (ticket and pseudonym keys) are made 32 bytes long.
NODE_SECRET_BYTES = 32


@dataclass(frozen=True)
class Problem:
    where: str
    what: str
    fix: str
    #: ``error``: the node cannot work; ``unsafe``: it works, but must not run in production like this;
    #: ``advice``: probably a mistake, never refused (a proxy may well reach the node on a loopback URL).
    kind: Literal["error", "unsafe", "advice"] = "error"

    def line(self) -> str:
        return f"{self.where}: {self.what} (fix: {self.fix})"


def load_checked(data_dir: Path, **overrides: Any) -> tuple[Settings | None, list[Problem]]:
    """The settings, or every problem that keeps them from loading (not only the first)."""
    config = Path(data_dir) / CONFIG_FILE
    try:
        return load_settings(data_dir, **overrides), []
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            key = ".".join(str(part) for part in detail["loc"]) or "settings"
            variable = "GENOSHARE_" + "__".join(str(part).upper() for part in detail["loc"][:1])
            message = detail["msg"].removeprefix("Value error, ")
            problems.append(Problem(f"setting {key}", message, f"correct it in {config} or {variable}"))
        return None, problems
    except tomllib.TOMLDecodeError as error:
        return None, [Problem(str(config), f"not valid TOML: {error}", "correct the file's syntax")]
    except OSError as error:
        return None, [Problem(str(config), f"cannot be read: {error.strerror}", "make it readable by this user")]


def database_problem(url: str, *, schema: bool = False) -> Problem | None:
    """Connect once and say why that failed, in the words an operator can act on.

    With ``schema``, a schema that is not this genoshare's (older: ``genoshare db upgrade``; newer) is one too.

    A SQLite file is only looked for: connecting would create an empty one (``check_database`` says why not).
    """
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    where = f"database_url {shown}"
    local = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    if local and not Path(str(parsed.database)).is_file():
        return Problem(
            where,
            "the SQLite file does not exist (the node was probably initialised on another database)",
            "set database_url in genoshare.toml or GENOSHARE_DATABASE_URL, or restore the file from backup",
        )
    try:
        engine = create_engine(url)
    except (SQLAlchemyError, ImportError) as error:
        return Problem(where, f"cannot be used: {_first_line(error)}", "write postgresql+psycopg://user@host/db")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        found = schema_problem(engine) if schema else None
    except SQLAlchemyError as error:
        reason = _first_line(getattr(error, "orig", None) or error)
        return Problem(where, f"cannot connect: {reason}", _database_fix(reason, url))
    finally:
        engine.dispose()
    return None if found is None else Problem(where, *found)


def leftover_problems(url: str) -> Iterator[Problem]:
    """Stored bytes that removals committed to deleting and could not (``PendingRemoval``): nothing serves them."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            count, first = connection.execute(select(func.count(), func.min(PendingRemoval.key))).one()
    except SQLAlchemyError as error:
        yield Problem("pending removals", f"cannot be read: {_first_line(error)}", "genoshare db upgrade")
        return
    finally:
        engine.dispose()
    if count:
        yield Problem(
            "object store",
            f"{count} stored file(s) of removed files or datasets are still there (nothing serves them; e.g. {first})",
            "genoshare objects sweep, once the object store works",
            "advice",
        )


def _database_fix(reason: str, url: str) -> str:
    lowered = reason.lower()
    user = make_url(url).username or "the user"
    if "role" in lowered and "does not exist" in lowered:
        return f"create the role (CREATE ROLE {user} LOGIN) or name an existing one in database_url"
    if "password" in lowered:
        return f"give {user}'s password in database_url or ~/.pgpass, or grant it access in pg_hba.conf"
    if "database" in lowered and "does not exist" in lowered:
        return f"create the database (createdb -O {user} NAME) or name an existing one in database_url"
    if "unable to open" in lowered or "no such file" in lowered:
        return "create the SQLite file's directory, or correct database_url"
    return "start the database server, or correct the host and port in database_url"


def _first_line(error: object) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    first = lines[0] if lines else type(error).__name__
    # psycopg prefixes the server's words with the address tried: keep the server's words.
    return first.split(" failed: ", 1)[-1]


def file_problems(settings: Settings) -> Iterator[Problem]:
    """The node's own key files and the files its settings name: present, readable, and secrets long enough."""
    keys = settings.keys_dir
    if not keys.is_dir():
        yield Problem(
            str(settings.data_dir), "is not a genoshare node", f"genoshare init --data-dir {settings.data_dir}"
        )
        return
    try:
        pair = load_keypair(keys, NODE_KEY_NAME)
    except (InvalidKey, OSError) as error:
        yield Problem(
            f"node key {keys / NODE_KEY_NAME}.sec",
            "is missing" if isinstance(error, FileNotFoundError) else str(getattr(error, "message", error)),
            "restore keys/ from the node's backup (docs/operations.md, lost keys)",
        )
    else:
        if pair.public in TEST_PUBLIC_KEYS:
            yield Problem(
                f"node key {keys / NODE_KEY_NAME}.pub",
                "is a published test key (htsget-rs demo data): anyone can decrypt what it protects",
                "genoshare init a new node and ingest the data again",
                "unsafe",
            )
    for name, fix in (
        (AUDIT_KEY_FILE, "restore it from the node's backup"),
        ("ticket.secret", "delete it and restart (outstanding download links stop working)"),
        ("issuer.jwk.json", "restore it from backup; a new one invalidates the grants this node signed"),
    ):
        yield from _secret_file(keys / name, NODE_SECRET_BYTES if name.endswith(".secret") else 1, fix, text=False)
    if (keys / PSEUDONYM_KEY_FILE).exists():
        yield from _secret_file(keys / PSEUDONYM_KEY_FILE, NODE_SECRET_BYTES, "restore it from backup", text=False)
    if (keys / "demo-issuer.jwk.json").exists() or any(
        (urlparse(issuer.issuer).hostname or "").endswith(".invalid") for issuer in settings.trusted_issuers
    ):
        yield Problem(
            "trusted_issuers",
            "trusts the demo passport issuer, whose key any demo user holds",
            "remove the demo issuer from trusted_issuers and keys/demo-issuer.*",
            "unsafe",
        )
    for where, path in _operator_files(settings):
        yield from _secret_file(
            path, MIN_SECRET_BYTES, f"write the secret to {path}, or correct {where}", where=where, text=True
        )


def _operator_files(settings: Settings) -> Iterator[tuple[str, Path]]:
    for index, issuer in enumerate(settings.trusted_issuers):
        if issuer.client_secret_file is not None:
            yield f"trusted_issuers[{index}].client_secret_file", issuer.client_secret_file
    if settings.portal.oidc_client_secret_file is not None:
        yield "portal.oidc_client_secret_file", settings.portal.oidc_client_secret_file
    if settings.notify.smtp is not None and settings.notify.smtp.password_file is not None:
        yield "notify.smtp.password_file", settings.notify.smtp.password_file
    if settings.notify.webhook is not None:
        yield "notify.webhook.secret_file", settings.notify.webhook.secret_file
    for index, peer in enumerate(settings.mme.peers):
        if peer.token_file is not None:
            yield f"mme.peers[{index}].token_file", peer.token_file


def _secret_file(path: Path, minimum: int, fix: str, *, text: bool, where: str = "") -> Iterator[Problem]:
    """Problems with one secret file.

    ``text``: an operator's file, read as its readers do (without surrounding whitespace); otherwise random
    bytes the node wrote, where a leading or trailing whitespace byte is part of the secret.
    """
    label = f"{where} {path}" if where else str(path)
    try:
        content = path.read_bytes()
        size = len(content.strip() if text else content)
        mode = path.stat().st_mode
    except FileNotFoundError:
        yield Problem(label, "is missing", fix)
        return
    except OSError as error:
        yield Problem(label, f"cannot be read: {error.strerror}", "make it readable by the node's user only")
        return
    if size < minimum:
        yield Problem(label, f"holds a secret of {size} bytes, shorter than {minimum}", fix, "unsafe")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        yield Problem(label, "can be read by other users", f"chmod 600 {path}", "unsafe")


def object_store_problem(settings: Settings) -> Problem | None:
    parsed = urlparse(settings.objects_url)
    if parsed.scheme == "s3" and parsed.netloc:
        return None  # reached over the network: /ready asks it (ObjectStore.check), a read it fails is a 503
    if parsed.scheme != "file":
        fix = "write file:///path or s3://bucket/prefix"
        return Problem(f"objects_url {settings.objects_url}", "is neither a file:// nor an s3:// store", fix)
    root = Path(parsed.path)
    if not root.is_dir():
        return Problem(f"objects_url {settings.objects_url}", "is not a directory", f"mkdir -m 700 {root}")
    if not os.access(root, os.W_OK | os.X_OK):
        return Problem(f"objects_url {settings.objects_url}", "is not writable", f"chown it to the node's user: {root}")
    return None


def permission_problems(settings: Settings) -> Iterator[Problem]:
    """A data directory or database file other users of the machine can read holds everything, readable."""
    targets = [("data directory", settings.data_dir)]
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        targets.append(("database file", Path(url.database)))
    for label, path in targets:
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if mode & stat.S_IRWXO:
            yield Problem(
                f"{label} {path}", "can be read by every user of the machine", f"chmod o-rwx {path}", "unsafe"
            )


def placeholder_problems(settings: Settings) -> Iterator[Problem]:
    for key, placeholder in PLACEHOLDERS.items():
        if getattr(settings, key) == placeholder:
            yield Problem(
                f"setting {key}",
                f"is the placeholder {placeholder!r}, which service-info and Beacon would announce",
                f"set {key} in {settings.data_dir / CONFIG_FILE} or GENOSHARE_{key.upper()}",
                "unsafe",
            )
    host = urlparse(settings.public_url).hostname or ""
    if host in ("127.0.0.1", "localhost", "::1"):
        yield Problem(
            "setting public_url",
            f"{settings.public_url} is this machine only: links the node hands out will not work elsewhere",
            "set public_url to the address clients use (with the proxy's path prefix, if any)",
            "advice",
        )


def check_node(settings: Settings) -> list[Problem]:
    """Every problem of an existing node: database, files, keys, object store, and what is unsafe."""
    if not settings.keys_dir.is_dir():
        return list(file_problems(settings))  # not a node: nothing else is worth saying
    problems: list[Problem] = []
    database = database_problem(settings.database_url, schema=True)
    if database is not None:
        problems.append(database)
    else:
        problems.extend(leftover_problems(settings.database_url))
    problems.extend(file_problems(settings))
    store = object_store_problem(settings)
    if store is not None:
        problems.append(store)
    problems.extend(permission_problems(settings))
    problems.extend(placeholder_problems(settings))
    return problems


def refusals(settings: Settings, problems: list[Problem]) -> list[Problem]:
    """The problems that stop this node from starting: errors, and in production the unsafe ones too."""
    return [
        problem for problem in problems if problem.kind == "error" or (problem.kind == "unsafe" and settings.production)
    ]
