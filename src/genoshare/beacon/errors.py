"""Beacon errors: subclasses of the node's tree, so the one error handler gives them the Beacon body.

A request whose shape the OpenAPI accepts is never answered 400: references the node cannot resolve (an
assembly no dataset is on, a gene missing from the gene table, an entry id nobody holds) are 404 with a
message saying what is missing, which also keeps them apart from an empty answer.
"""

from __future__ import annotations

from genoshare.errors import InvalidInput, NotFound


class BeaconBadRequest(InvalidInput):
    """A request outside what the OpenAPI declares (400)."""


class AssemblyMismatch(NotFound):
    """A variant query names an assembly a dataset is not on: an error, never an empty answer."""


class UnknownGene(NotFound):
    """A ``geneId`` that is not in the gene table for the dataset's assembly."""


class EntryNotFound(NotFound):
    """An id in a ``/{entry_type}/{id}`` path that no dataset visible to the caller holds."""
