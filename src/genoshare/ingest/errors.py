"""Ingest errors carry the file and the place in it, so the steward gets one line that says both."""

from __future__ import annotations

from pathlib import Path

from genoshare.errors import InvalidInput


class IngestError(InvalidInput):
    def __init__(self, path: Path, problem: str, where: str | None = None) -> None:
        location = f" ({where})" if where else ""
        super().__init__(f"{path.name}{location}: {problem}")
        self.path = path
        self.problem, self.where = problem, where

    def __reduce__(self) -> tuple[type[IngestError], tuple[Path, str, str | None]]:
        """Rebuilt from its parts when a worker process sends it to the ingesting one."""
        return type(self), (self.path, self.problem, self.where)
