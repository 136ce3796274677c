"""Beacon errors: subclasses of the node's tree, so the one error handler gives them the Beacon body."""

from __future__ import annotations

from genoshare.errors import InvalidInput, NotFound


class BeaconBadRequest(InvalidInput):
    """A request the spec allows in shape but this query cannot answer as asked (400)."""


class AssemblyMismatch(InvalidInput):
    """A variant query names an assembly a dataset is not on: an error, never an empty answer."""


class EntryNotFound(NotFound):
    """An id in a ``/{entry_type}/{id}`` path that no dataset visible to the caller holds."""
