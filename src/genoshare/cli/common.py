"""What every command shares: the data-directory option, output consoles, one-line errors."""

from __future__ import annotations

import errno
import socket
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Column
from sqlalchemy.exc import OperationalError

from genoshare.errors import GenoshareError
from genoshare.node import Node
from genoshare.operations.checks import database_problem
from genoshare.settings import CONFIG_FILE, Settings, load_settings

console = Console()
errors = Console(stderr=True)

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", "-d", envvar="GENOSHARE_DATA_DIR", help="The node's data directory.", show_default=True),
]
#: Where a command builds Beacon variant indexes; unset: the ``ingest_engine`` setting.
IndexEngine = Annotated[
    Literal["embedded", "spark"] | None,
    typer.Option(help="Build the Beacon variant index here or on Spark (spark.master); default: ingest_engine."),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def reported() -> Iterator[None]:
    """Turn a genoshare error into the command's one-line message and exit code 1."""
    try:
        yield
    except GenoshareError as error:
        raise fail(error.message) from None


def ensure_port_free(host: str, port: int) -> None:
    """Say at once that the port is taken, before a demo spends a minute building its node for nothing."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                taken = f"port {port} on {host} is taken by another program"
                raise fail(f"{taken}: choose another (--port, or PORT=... for make demo)") from None
            raise fail(f"cannot listen on {host}:{port}: {error.strerror}") from None


def node_settings(data_dir: Path, **overrides: Any) -> Settings:
    """The node's settings; a bad value (in genoshare.toml, ``GENOSHARE_*`` or an option) as one line."""
    try:
        return load_settings(data_dir, **overrides)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(map(str, first["loc"])) or "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise fail(f"setting {where}: {message} (from an option, GENOSHARE_* or genoshare.toml)") from None
    except tomllib.TOMLDecodeError as error:
        raise fail(f"{data_dir / CONFIG_FILE} is not valid TOML: {error}") from None


def open_node(data_dir: Path) -> Node:
    settings = node_settings(data_dir)
    if not settings.keys_dir.is_dir():
        raise fail(f"{data_dir} is not a genoshare node: run `genoshare init --data-dir {data_dir}` first")
    # A node made by an older genoshare is refused, naming `genoshare db upgrade`: upgrades are explicit.
    try:
        with reported():
            return Node.open(settings)
    except OperationalError:
        problem = database_problem(settings.database_url)
        raise fail(problem.line() if problem else "cannot read the database's schema version") from None


def whole(header: str) -> Column:
    """A table column for identifiers: never wrapped nor cut with an ellipsis, so it can be copied whole."""
    return Column(header, no_wrap=True, overflow="ignore", min_width=len(header))
