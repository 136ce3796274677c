"""Offline disease (MONDO) and phenotype (HPO) hierarchies behind one interface.

Consent matching needs MONDO subsumption (a purpose for type 2 diabetes fits a dataset consented for
diabetes), and Beacon filtering terms need descendant expansion for MONDO and HPO alike, so both are
served by ``get_ontology(prefix)``, loaded once per process on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from genoshare.ontology.graph import Ontology, UnknownTerm
from genoshare.ontology.loaders import load_hpo, load_mondo

__all__ = ["Ontology", "UnknownTerm", "get_ontology", "supported_prefixes"]

_LOADERS: dict[str, Callable[[], Ontology]] = {"MONDO": load_mondo, "HP": load_hpo}
_ALIASES = {"HPO": "HP"}


def supported_prefixes() -> tuple[str, ...]:
    return tuple(_LOADERS)


def get_ontology(prefix: str) -> Ontology:
    """Return the process-wide ontology for a CURIE prefix ("MONDO", "HP"; case-insensitive)."""
    key = prefix.upper().rstrip(":")
    key = _ALIASES.get(key, key)
    if key not in _LOADERS:
        raise ValueError(f"no ontology for prefix {prefix!r}; supported: {', '.join(_LOADERS)}")
    return _load(key)


@cache
def _load(prefix: str) -> Ontology:
    return _LOADERS[prefix]()
