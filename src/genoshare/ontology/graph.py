"""An in-memory is_a hierarchy that answers the questions consent matching and Beacon filters ask.

Only direct parents are stored; children and transitive closures are derived on first use and cached
on the instance, so loading stays cheap for processes that only need ``label``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping


class UnknownTerm(LookupError):
    """Raised for an id the loaded release does not contain (new, obsolete or mistyped)."""

    def __init__(self, term_id: str, ontology: str, version: str) -> None:
        super().__init__(f"unknown {ontology} term {term_id!r}: not in {ontology} release {version}")
        self.term_id = term_id

    def __str__(self) -> str:
        # LookupError would repr() the message like KeyError; keep it readable.
        return str(self.args[0])


class Ontology:
    """A directed acyclic is_a graph with labels.

    ``ancestors`` and ``descendants`` exclude the term itself; ``is_a`` is reflexive because a dataset
    consented for a disease must match a purpose naming that very disease.
    """

    def __init__(
        self, name: str, version: str, labels: Mapping[str, str], parents: Mapping[str, tuple[str, ...]]
    ) -> None:
        self.name = name
        self.version = version
        self._labels = labels
        self._parents = parents
        self._children: dict[str, list[str]] | None = None
        self._ancestors: dict[str, frozenset[str]] = {}
        self._descendants: dict[str, frozenset[str]] = {}

    def __contains__(self, term_id: object) -> bool:
        return term_id in self._labels

    def __len__(self) -> int:
        return len(self._labels)

    def __repr__(self) -> str:
        return f"<Ontology {self.name} {self.version}: {len(self)} terms>"

    def _check(self, term_id: str) -> None:
        if term_id not in self._labels:
            raise UnknownTerm(term_id, self.name, self.version)

    def label(self, term_id: str) -> str:
        self._check(term_id)
        return self._labels[term_id]

    def parents(self, term_id: str) -> frozenset[str]:
        self._check(term_id)
        return frozenset(self._parents.get(term_id, ()))

    def children(self, term_id: str) -> frozenset[str]:
        self._check(term_id)
        return frozenset(self._child_index().get(term_id, ()))

    def ancestors(self, term_id: str) -> frozenset[str]:
        self._check(term_id)
        cached = self._ancestors.get(term_id)
        if cached is None:
            cached = self._ancestors[term_id] = _closure(term_id, lambda t: self._parents.get(t, ()))
        return cached

    def descendants(self, term_id: str) -> frozenset[str]:
        self._check(term_id)
        cached = self._descendants.get(term_id)
        if cached is None:
            index = self._child_index()
            cached = self._descendants[term_id] = _closure(term_id, lambda t: index.get(t, ()))
        return cached

    def is_a(self, child: str, ancestor: str) -> bool:
        self._check(ancestor)
        return child == ancestor or ancestor in self.ancestors(child)

    def _child_index(self) -> dict[str, list[str]]:
        if self._children is None:
            index: dict[str, list[str]] = {}
            for child, parents in self._parents.items():
                for parent in parents:
                    index.setdefault(parent, []).append(child)
            self._children = index
        return self._children


def _closure(start: str, step: Callable[[str], Iterable[str]]) -> frozenset[str]:
    seen: set[str] = set()
    stack = list(step(start))
    while stack:
        term = stack.pop()
        if term not in seen:
            seen.add(term)
            stack.extend(step(term))
    return frozenset(seen)
