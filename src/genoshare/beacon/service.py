"""Answers Beacon entry queries: select per dataset, ask ``genoshare.access`` how much to show, shape it.

Per dataset: the individuals in scope (active, matching the filters, the path's parent entry and the
variant parameters) are a bitmap; the target entries follow from it; the dataset's answer is the true
count passed through ``AccessPolicy.granularity`` and ``access.disclosure``. Records leave only for
datasets where the decision reaches record level, and each such answer is written to the audit log.

Every answer that depends on alleles (g_variants, or any entry narrowed by variant parameters) first
passes ``access.privacy.PrivacyGuard`` with the carriers in scope: it may withhold the dataset (anonymous
callers on non-public data), say "no" (minimum allele count, exhausted budgets), or randomise the answer,
in which case only yes/no leaves. Counts stay bitmap operations on the variant index: withdrawal is a
difference, filters an intersection, and the union of carriers is formed only for such answers.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from pyroaring import BitMap
from sqlalchemy import select

from genoshare.access.disclosure import Disclosure, DisclosureRule, ceiling, disclose, more_access
from genoshare.access.granularity import LOOKUP_NEEDS_RECORDS, Granularity, needed_to_look_up
from genoshare.access.passports import Identity
from genoshare.access.policy import AccessPolicy, Decision
from genoshare.access.privacy import EXACT_COUNTS_SPENT, Answer, Caller, PrivacyGuard
from genoshare.audit import AuditLog, Entry
from genoshare.audit.people import encode_people
from genoshare.beacon import framework, records
from genoshare.beacon.catalog import Catalog, ServedIndex
from genoshare.beacon.errors import AssemblyMismatch, EntryNotFound, UnknownGene
from genoshare.beacon.filters import matching
from genoshare.beacon.framework import EntryType
from genoshare.beacon.people import REVALIDATE_AFTER, People, PeopleCache
from genoshare.beacon.request import API_VERSION, BeaconRequest
from genoshare.beacon.variants import VariantQuery, build_query, canonical_assembly, parse_internal_id
from genoshare.beacon.vrs import NOTHING, AlleleIds, VrsLookup, is_vrs_id
from genoshare.index.serving import UNBOUNDED, QueryResult, VariantRow
from genoshare.settings import Settings
from genoshare.store.beacon_tables import BeaconGene
from genoshare.store.db import Database
from genoshare.store.models import Dataset
from genoshare.store.objects import ObjectStore

ANONYMOUS = "anonymous"
#: Told to every caller whose answer the privacy policy randomised, so that nobody takes a "yes" on a rare
#: allele as proof: the datasets are named, never whether the coin changed this answer.
RANDOMISED_NOTICE = (
    "To protect the people in these datasets from re-identification, their answers on rare alleles are "
    "randomised (randomised response): a 'yes' may be false and a 'no' may hide carriers. Asking again "
    "gives the same answer. Ask the data access committee for access to get exact answers."
)

#: Told in a dataset's note once the caller has had every exact count the dataset's cap allows (``exact_count_cap``).
EXACT_COUNTS_SPENT_NOTICE = (
    "You have had exact counts for as many distinct common alleles as this dataset allows one person; further "
    "answers come as its other defences give them (yes/no where answers are randomised). Counts already "
    "given are given again."
)

#: Told whenever a dataset in scope gave no answer, so that an "exists: false" is never read as its "no".
NOT_CONSULTED_NOTICE = (
    "These datasets were not asked, so this answer says nothing about them (see info.datasets for why and "
    "what access would include them). The list depends only on who asks, never on the data."
)


@dataclass(frozen=True)
class Parent:
    """The ``/{entry}/{id}`` part of a path: the entry a query is scoped to."""

    path: str
    id: str


@dataclass
class Outcome:
    """One dataset's answer before shaping: its disclosure and, at record level, its page of records.

    ``disclosure`` is None for a dataset that was not consulted; ``withheld`` says why.
    """

    dataset: Dataset
    decision: Decision
    disclosure: Disclosure | None
    records: list[dict[str, Any]] = field(default_factory=list)
    #: The privacy policy randomised this dataset's answer (randomised response), whichever way it fell.
    randomised: bool = False
    #: The caller's exact counts on this dataset are spent (``EXACT_COUNTS_SPENT_NOTICE``).
    exact_counts_spent: bool = False
    withheld: str | None = None
    #: At count or record level: sample numbers of the people the answer is about (for the audit log).
    about: BitMap = field(default_factory=BitMap)


@dataclass(frozen=True)
class Matches:
    """A variant query's hits in one dataset that someone in ``scope`` carries, per served index."""

    parts: tuple[tuple[QueryResult, ServedIndex], ...]
    scope: BitMap
    #: A non-filtered query: its answer is about every indexed person, whose union is not worth reading.
    everything: bool

    @property
    def total(self) -> int:
        return sum(result.total for result, _ in self.parts)

    @cached_property
    def carriers(self) -> BitMap:
        """Who the answer is about: carriers in scope (every indexed person in scope for a non-filtered query)."""
        if self.everything:
            indexed = [result.index.samples for result, _ in self.parts]  # from footers: no row group read
            return (BitMap.union(*indexed) if indexed else BitMap()) & self.scope
        union = [result.carriers(self.scope) for result, _ in self.parts]
        return BitMap.union(*union) if union else BitMap()

    def allele_count(self, carriers: BitMap) -> int:
        """Copies among the carriers in scope (see ``QueryResult.allele_count``).

        A non-filtered answer counts one per person: enough for the guard, which only needs to know the
        answer is not about a rare allele.
        """
        if self.everything:
            return len(carriers)
        return sum(result.allele_count(self.scope) for result, _ in self.parts)

    def page(self, skip: int, limit: int, withdrawn: BitMap) -> list[tuple[VariantRow, ServedIndex]]:
        """Hits ``skip`` to ``skip + limit`` across the indexes; a frequency touching a withdrawn person is hidden."""
        found: list[tuple[VariantRow, ServedIndex]] = []
        for result, served in self.parts:
            if skip >= result.total:
                skip -= result.total
                continue
            take = limit - len(found)
            rows, bitmaps = result.rows(skip, take), result.bitmaps(skip, take)
            for row, carriers in zip(rows, bitmaps, strict=True):
                an = 0 if carriers.intersection_cardinality(withdrawn) else row.an
                found.append((replace(row, an=an, carriers=carriers & self.scope), served))
            skip = 0
            if len(found) >= limit:
                break
        return found


@dataclass(frozen=True)
class Selection:
    """One dataset's matching entries: a page builder (record level only) and the true count.

    ``matches`` are the variant hits behind them when the answer depends on alleles.
    """

    entries: Callable[[int, int], list[dict[str, Any]]]
    total: int
    matches: Matches | None = None
    #: Sample numbers of the people the count is about; None for g_variants, whose are the ``matches`` carriers.
    scope: BitMap | None = None

    def about(self) -> BitMap:
        """Whose data the answer reflects, for the audit log ("who used my data" reports Beacon answers too)."""
        if self.scope is not None:
            return self.scope
        return self.matches.carriers if self.matches is not None else BitMap()


class BeaconService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        policy: AccessPolicy,
        guard: PrivacyGuard,
        audit: AuditLog,
        max_age: float = REVALIDATE_AFTER,
        objects: ObjectStore | None = None,
        vrs: AlleleIds | None = None,
    ) -> None:
        self.settings = settings
        #: ``g_variants/ga4gh:VA.…``: VRS ids of the variants, over the configured reference (if any).
        self.vrs = VrsLookup(vrs)
        self.database = database
        self.policy = policy
        self.audit = audit
        self.people = PeopleCache(database, max_age)
        cache_bytes = settings.beacon_index_cache_mb * 1024 * 1024
        self.catalog = Catalog(database, settings.data_dir, max_age, objects, cache_bytes)
        self.guard = guard
        self.max_age = max_age
        self._callers: dict[tuple[str, ...], tuple[float, Caller]] = {}

    def invalidate(self, dataset_id: str | None = None) -> None:
        """Hook for governance code: make a consent or policy change visible now rather than within ``max_age``."""
        self.people.invalidate(dataset_id)
        self.catalog.invalidate()
        self._callers.clear()

    # --- framework --------------------------------------------------------------------------------

    def filtering_terms(self, skip: int, limit: int, dataset_id: str | None = None) -> dict[str, Any]:
        present: set[str] = set()
        for dataset in self._datasets(dataset_id):
            people = self.people.get(dataset.id)
            present.update(term for term, bits in people.terms.items() if bits.intersection_cardinality(people.active))
        return framework.filtering_terms(self.settings, present, skip, limit)

    # --- entries ----------------------------------------------------------------------------------

    def query(
        self, entry: EntryType, request: BeaconRequest, identity: Identity | None, parent: Parent | None = None
    ) -> dict[str, Any]:
        datasets = self._datasets(parent.id if parent and parent.path in ("datasets", "cohorts") else None)
        if entry.collection:
            return self._collections(entry, request, identity, datasets, parent)
        vrs_id = parent.id if parent is not None and parent.path == "g_variants" and is_vrs_id(parent.id) else None
        if vrs_id is not None:
            self.vrs.check(vrs_id)  # before any dataset is read: the same error whoever asks
        variant_query = NOTHING if vrs_id is not None else self._variant_query(entry, request, parent)
        if variant_query is not None and variant_query.assembly_id:
            datasets = self._on_assembly(datasets, variant_query.assembly_id)
        caller = self._caller(identity) if variant_query is not None else None
        outcomes = []
        for dataset in datasets:
            decision = self.policy.granularity(identity, dataset)
            if parent is not None and decision.granularity < needed_to_look_up(parent.path):
                outcomes.append(Outcome(dataset, decision, None, withheld=LOOKUP_NEEDS_RECORDS))
                continue
            # Decided before the data is read, so that "not consulted" is the same whatever the dataset holds.
            withheld = None if caller is None else self.guard.withholds(caller, decision, dataset)
            if withheld is not None:
                outcomes.append(Outcome(dataset, decision, None, withheld=withheld))
                continue
            rule = DisclosureRule.from_policy(dataset.beacon_policy)
            wanted = min(request.granularity, ceiling(decision, rule))
            hidden = self._hidden(dataset, decision)
            if vrs_id is not None:  # read only for a caller who may look this dataset's variants up
                variant_query = self.vrs.query(vrs_id, dataset.id, self.catalog.indexes(dataset.id))
            selection = self._select(entry, request, dataset, variant_query, parent, wanted, hidden)
            requested, total, randomised, spent = request.granularity, selection.total, False, False
            # An empty scope (a parent entry not in this dataset, a withdrawn person, filters nobody matches)
            # makes the answer an exact "no" that says nothing about anyone's genotypes: nothing to guard, and
            # randomising it would only invent variants for someone who is not there.
            if selection.matches is not None and caller is not None and selection.matches.scope:
                key = _answer_key(entry, request, variant_query, parent, hidden)
                carriers = selection.matches.carriers
                answer = self.guard.filter_answer(
                    caller,
                    decision,
                    dataset,
                    key,
                    carriers,
                    selection.matches.allele_count(carriers),
                    _position(variant_query),
                )
                if answer.withheld:
                    outcomes.append(Outcome(dataset, decision, None, withheld=answer.reason))
                    continue
                randomised = answer.randomised
                spent = answer.reason.endswith(EXACT_COUNTS_SPENT)
                total, exact = _guarded_total(answer, carriers, total)
                if not exact:
                    requested = Granularity.BOOLEAN
            disclosure = disclose(decision, rule, requested, total)
            outcome = Outcome(dataset, decision, disclosure, randomised=randomised, exact_counts_spent=spent)
            if disclosure.granularity == Granularity.RECORD:
                outcome.records = selection.entries(request.skip, request.limit)
            if disclosure.granularity >= Granularity.COUNT:
                outcome.about = selection.about()
            outcomes.append(outcome)
        self._audit(entry, identity, outcomes)
        return self._envelope(entry, request, outcomes, identity is None)

    def _hidden(self, dataset: Dataset, decision: Decision) -> BitMap:
        """Sample numbers of the people whose narrowed consent excludes the grants this caller relies on."""
        names = self.policy.hidden_people(dataset.id, decision)
        if not names:
            return BitMap()
        people = self.people.get(dataset.id)
        return BitMap(people.by_id[name].sample_number for name in names if name in people.by_id)

    def _caller(self, identity: Identity | None) -> Caller:
        """Whose budget an answer spends; an account link a steward records is seen within ``max_age``.

        Resolving links is a database read, a third of a guarded answer's cost if done on every request.
        """
        if identity is None:
            return self.guard.caller(None)
        # The accounts a passport links are part of the key: the same account with a new link is asked again.
        accounts = self.guard.accounts_of(identity)
        now = time.monotonic()
        known = self._callers.get(accounts)
        if known is not None and now - known[0] < self.max_age:
            return known[1]
        caller = self.guard.caller(identity)
        if len(self._callers) > 10_000 or caller.linked:
            self._callers.clear()  # a link may have moved callers known here to another principal
        # Kept unlinked: the link is made, and judged (``PrivacyGuard.answer``), by this request alone.
        self._callers[accounts] = (now, replace(caller, linked=False))
        return caller

    def _datasets(self, only: str | None) -> list[Dataset]:
        datasets = self.catalog.datasets()
        return [d for d in datasets if d.id == only] if only is not None else datasets

    def _on_assembly(self, datasets: list[Dataset], assembly: str) -> list[Dataset]:
        wanted = canonical_assembly(assembly)
        with_data = [d for d in datasets if self.catalog.indexes(d.id)]
        matching_sets = [
            d
            for d in with_data
            if any(canonical_assembly(s.row.assembly_id) == wanted for s in self.catalog.indexes(d.id))
        ]
        if with_data and not matching_sets:
            have = sorted({s.row.assembly_id for d in with_data for s in self.catalog.indexes(d.id)})
            raise AssemblyMismatch(
                f"no dataset here is on assembly {assembly}; the variant data is on {', '.join(have)}"
            )
        return matching_sets

    def _variant_query(self, entry: EntryType, request: BeaconRequest, parent: Parent | None) -> VariantQuery | None:
        """The variant conditions of the request; None when nothing depends on alleles.

        A g_variants query with no parameter is a non-filtered query (every variant); other entries
        are narrowed by variants only when variant parameters are given.
        """
        query = build_query(request.parameters)
        if parent is not None and parent.path == "g_variants":
            allele = parse_internal_id(parent.id)
            if allele is None:
                raise EntryNotFound(f"{parent.id!r} is not a variant id of this Beacon (contig:start:ref:alt)")
            contig, start, ref, alt = allele
            return VariantQuery(
                contig=contig, start_min=start, start_max=start, reference_bases=ref, alternate_bases=alt
            )
        if query.is_empty and entry.path != "g_variants":
            return None
        return query

    # --- selection --------------------------------------------------------------------------------

    def _select(
        self,
        entry: EntryType,
        request: BeaconRequest,
        dataset: Dataset,
        variant_query: VariantQuery | None,
        parent: Parent | None,
        wanted: Granularity,
        hidden: BitMap,
    ) -> Selection:
        """``hidden``: people left out of this caller's answer (on top of those who withdrew)."""
        people = self.people.get(dataset.id)
        scope = matching(people, request.filters) if request.filters else people.active
        scope = self._parent_scope(people, scope, parent) - hidden
        matches = None if variant_query is None else self._variants(dataset, variant_query, scope)
        if entry.path == "g_variants" and matches is not None:
            grant = people if wanted == Granularity.RECORD else None
            return Selection(
                lambda skip, limit: [
                    records.variant(hit, served.row, grant, dataset.id)
                    for hit, served in matches.page(skip, limit, people.withdrawn | hidden)
                ],
                matches.total,
                matches,
            )
        if matches is not None:
            scope = matches.carriers
        if entry.path == "individuals":
            # A count needs no Person objects: only a record-level answer builds its page of them.
            return Selection(
                lambda skip, limit: [records.individual(p) for p in people.persons(scope)[skip : skip + limit]],
                scope.intersection_cardinality(people.everyone),
                matches,
                scope,
            )
        samples = [
            (biosample_id, document, person)
            for person in people.persons(scope)
            for biosample_id, document in people.biosamples.get(person.sample_number, ())
            if not (parent and parent.path == "biosamples") or biosample_id == parent.id
        ]
        if entry.path == "biosamples":
            return Selection(
                lambda skip, limit: [records.biosample(b, p, d) for b, d, p in samples[skip : skip + limit]],
                len(samples),
                matches,
                scope,
            )
        derived = [
            records.Derived(
                f"{biosample_id}.{served.row.object_id.rsplit('/', 1)[-1]}", biosample_id, person, served.row
            )
            for biosample_id, _, person in samples
            for served in self.catalog.indexes(dataset.id)
        ]
        if parent is not None and parent.path in ("runs", "analyses"):
            derived = [d for d in derived if parent.id in (d.id, f"{d.id}.run")]
        if entry.path == "runs":
            return Selection(
                lambda skip, limit: [records.run(d) for d in derived[skip : skip + limit]], len(derived), matches, scope
            )
        return Selection(
            lambda skip, limit: [records.analysis(d) for d in derived[skip : skip + limit]],
            len(derived),
            matches,
            scope,
        )

    @staticmethod
    def _parent_scope(people: People, scope: BitMap, parent: Parent | None) -> BitMap:
        if parent is None or parent.path in ("datasets", "cohorts", "g_variants"):
            return scope
        if parent.path == "individuals":
            person = people.by_id.get(parent.id)
            return scope & BitMap([person.sample_number]) if person else BitMap()
        owners = BitMap()
        for number, samples in people.biosamples.items():
            for biosample_id, _ in samples:
                if parent.id == biosample_id or parent.id.startswith(biosample_id + "."):
                    owners.add(number)
        return scope & owners

    def _variants(self, dataset: Dataset, query: VariantQuery, scope: BitMap) -> Matches:
        """Matching alleles carried by someone in scope (which already excludes withdrawn people)."""
        parts = []
        for served in self.catalog.indexes(dataset.id):
            resolved = self._resolve(query, served)
            result = served.source.search(
                resolved.contig,
                start=_bounds(resolved.start_min, resolved.start_max),
                end=_bounds(resolved.end_min, resolved.end_max),
                overlap=resolved.overlap,
                variant_type=resolved.variant_types,
                alternate_bases=resolved.alternate_bases,
                reference_bases=resolved.reference_bases,
                min_length=resolved.min_length,
                max_length=resolved.max_length,
            )
            parts.append((result.carried_within(scope), served))
        return Matches(tuple(parts), scope, query.is_empty)

    def _resolve(self, query: VariantQuery, served: ServedIndex) -> VariantQuery:
        """Gene symbol to coordinates on this index's assembly."""
        if query.gene_id is None:
            return query
        gene: Sequence[BeaconGene] = []
        if "\x00" not in query.gene_id:  # no symbol has one, and PostgreSQL refuses it in a text parameter
            with self.database.sessions() as session:
                gene = session.scalars(select(BeaconGene).where(BeaconGene.symbol == query.gene_id)).all()
        on_assembly = [
            g for g in gene if canonical_assembly(g.assembly_id) == canonical_assembly(served.row.assembly_id)
        ]
        if not on_assembly:
            raise UnknownGene(
                f"gene {query.gene_id!r} is not in the gene table for {served.row.assembly_id} "
                "(load a GTF with `genoshare beacon-genes`)"
            )
        return query.with_gene(on_assembly[0].contig, on_assembly[0].start, on_assembly[0].end)

    # --- collections ------------------------------------------------------------------------------

    def _collections(
        self,
        entry: EntryType,
        request: BeaconRequest,
        identity: Identity | None,
        datasets: list[Dataset],
        parent: Parent | None,
    ) -> dict[str, Any]:
        """Datasets and cohorts are the node's catalogue: everyone sees them; cohort sizes need counts."""
        shown = []
        for dataset in datasets:
            people = self.people.get(dataset.id)
            if request.filters and not matching(people, request.filters):
                continue
            if entry.path == "datasets":
                shown.append(records.dataset(dataset))
                continue
            decision = self.policy.granularity(identity, dataset)
            size = len(people.active - self._hidden(dataset, decision))
            disclosure = disclose(decision, DisclosureRule.from_policy(dataset.beacon_policy), Granularity.COUNT, size)
            shown.append(records.cohort(dataset, disclosure.count))
        page = shown[request.skip : request.skip + request.limit]
        return {
            "meta": self._meta(entry, request, Granularity.RECORD),
            "responseSummary": {"exists": bool(shown), "numTotalResults": len(shown)},
            "response": {"collections": page},
        }

    # --- shaping ----------------------------------------------------------------------------------

    def _meta(self, entry: EntryType, request: BeaconRequest, returned: Granularity) -> dict[str, Any]:
        return {
            "beaconId": self.settings.node_id,
            "apiVersion": API_VERSION,
            "returnedSchemas": [entry.schema_ref()],
            "returnedGranularity": returned.beacon,
            "receivedRequestSummary": request.summary(),
            "testMode": request.test_mode,
        }

    def _envelope(
        self, entry: EntryType, request: BeaconRequest, outcomes: list[Outcome], anonymous: bool
    ) -> dict[str, Any]:
        """The response document; ``docs/beacon.md`` describes each part (keep the two together).

        ``returnedGranularity`` is the level actually given: record when some dataset returned records,
        count when every consulted dataset gave a count (``numTotalResults`` is then their sum, and is
        given only then: a sum leaving out a dataset that answered yes/no would read as "none" next to its
        "yes"), otherwise boolean. Each dataset's own level, access and what would give more are in
        ``info.datasets`` and in its result set's ``info``; datasets not consulted are in ``info.notConsulted``.
        """
        consulted = [(o, o.disclosure) for o in outcomes if o.disclosure is not None]
        levels = {disclosure.granularity for _, disclosure in consulted}
        every_count = bool(levels) and min(levels) >= Granularity.COUNT
        returned = (
            Granularity.RECORD
            if Granularity.RECORD in levels
            else Granularity.COUNT
            if every_count
            else Granularity.BOOLEAN
        )
        summary: dict[str, Any] = {"exists": any(disclosure.exists for _, disclosure in consulted)}
        if every_count:
            summary["numTotalResults"] = sum(disclosure.count or 0 for _, disclosure in consulted)
        notes = {o.dataset.id: _note(o, anonymous) for o in outcomes}
        info: dict[str, Any] = {"datasets": list(notes.values())}
        skipped = [o.dataset.id for o in outcomes if o.disclosure is None]
        if skipped:
            info["notConsulted"] = {"datasets": skipped, "message": NOT_CONSULTED_NOTICE}
        randomised = [o.dataset.id for o in outcomes if o.randomised]
        if randomised:
            info["randomisedResponse"] = {"datasets": randomised, "message": RANDOMISED_NOTICE}
        response: dict[str, Any] = {
            "meta": self._meta(entry, request, returned),
            "responseSummary": summary,
            "info": info,
        }
        counted = [(o, d) for o, d in consulted if d.granularity >= Granularity.COUNT]
        if not counted:
            return response
        keep = {
            "ALL": lambda d: True,
            "HIT": lambda d: d.exists,
            "MISS": lambda d: not d.exists,
            "NONE": lambda d: False,
        }[request.include]
        response["response"] = {
            "resultSets": [
                {
                    "id": o.dataset.id,
                    "setType": "dataset",
                    "exists": disclosure.exists,
                    "resultsCount": disclosure.count or 0,
                    "results": o.records,
                    "info": notes[o.dataset.id],
                }
                for o, disclosure in counted
                if keep(disclosure)
            ]
        }
        return response

    def _audit(self, entry: EntryType, identity: Identity | None, outcomes: list[Outcome]) -> None:
        """Every answer above yes/no is logged: per dataset the granularity, count, records and whose data it was.

        The people are the sample numbers the count covers, as a serialised roaring bitmap (a few bytes for
        thousands of people in runs), so that "who used my data" can report Beacon answers to each of them.
        A yes/no is not logged (anonymous callers may ask without end, and it is the least that is shown).
        """
        shown = {
            o.dataset.id: {
                "granularity": o.disclosure.granularity.name.lower(),
                "count": o.disclosure.count or 0,
                "records": len(o.records),
                "grants": list(o.decision.grants),
                "people": encode_people(o.about),
            }
            for o in outcomes
            if o.disclosure is not None and o.disclosure.granularity >= Granularity.COUNT
        }
        if not shown:
            return
        self.audit.record(
            Entry(
                actor=identity.actor if identity else ANONYMOUS,
                action="beacon.query",
                resource=f"beacon/{entry.path}",
                decision="permit",
                reason="record-level Beacon answer"
                if any(answer["records"] for answer in shown.values())
                else "count-level Beacon answer",
                details={"datasets": shown},
            )
        )


def _note(outcome: Outcome, anonymous: bool) -> dict[str, Any]:
    """One dataset's part of the answer: whether it was consulted, at what level, why, and how to get more.

    Everything here follows from the caller and the dataset's access level, except ``exists`` and the level
    a consulted dataset's answer fell to (as its result set shows anyway).
    """
    dataset, disclosure = outcome.dataset, outcome.disclosure
    note: dict[str, Any] = {"id": dataset.id, "accessLevel": dataset.access_level, "consulted": disclosure is not None}
    if disclosure is None:
        note["reason"] = outcome.withheld
    else:
        note["returnedGranularity"] = disclosure.granularity.beacon
        note["exists"] = disclosure.exists
        if outcome.exact_counts_spent:
            note["exactCounts"] = EXACT_COUNTS_SPENT_NOTICE
    note["access"] = outcome.decision.reason
    more = more_access(dataset.access_level, dataset.id, outcome.decision, anonymous)
    if more is not None:
        note["toGetMore"] = more
    return note


def _bounds(low: int | None, high: int | None) -> tuple[int, int]:
    return (UNBOUNDED[0] if low is None else low, UNBOUNDED[1] if high is None else high)


def _position(query: VariantQuery | None) -> tuple[str, int] | None:
    """Where the asked allele lies, for the attack watch: its contig and the first base the query names."""
    if query is None or query.contig is None:
        return None
    start = query.start_min if query.start_min is not None else query.overlap[0] if query.overlap else None
    return None if start is None else (query.contig, start)


def _answer_key(
    entry: EntryType, request: BeaconRequest, query: VariantQuery | None, parent: Parent | None, hidden: BitMap
) -> str:
    """What the guard caches an answer under: the carrier set asked about (entry, scope, alleles, filters).

    People hidden from the caller by their consent change that set: a narrowing or widening is a new key.
    """
    where = f"{parent.path}/{parent.id}" if parent else ""
    key = f"{entry.path}|{where}|{query!r}|{request.filters!r}"
    return f"{key}|hidden:{hashlib.sha256(hidden.serialize()).hexdigest()[:16]}" if hidden else key


def _guarded_total(answer: Answer, carriers: BitMap, total: int) -> tuple[int, bool]:
    """The count to disclose after the guard, and whether it is exact.

    A "no" is a count of 0. A randomised answer has no count (it would give the coin away), and when the
    budget left members out the true count over the others is not known here: both answer yes/no only.
    """
    if not answer.exists:
        return 0, True
    if answer.allele_count is None or answer.carrier_count != len(carriers):
        return max(total, 1), False
    return total, True
