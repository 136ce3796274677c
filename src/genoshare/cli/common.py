"""What every command shares: the data-directory option, output consoles, one-line errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from genoshare.errors import GenoshareError
from genoshare.node import Node
from genoshare.settings import load_settings
from genoshare.store.db import migrate

console = Console()
errors = Console(stderr=True)

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", "-d", envvar="GENOSHARE_DATA_DIR", help="The node's data directory.", show_default=True),
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


def open_node(data_dir: Path) -> Node:
    settings = load_settings(data_dir)
    if not settings.keys_dir.is_dir():
        raise fail(f"{data_dir} is not a genoshare node: run `genoshare init --data-dir {data_dir}` first")
    node = Node.open(settings)
    # A node made by an older genoshare gets the newer migrations before any command touches its tables
    # (~10 ms when there is nothing to do), so upgrading the package is all an operator has to do.
    migrate(node.database.engine)
    return node
