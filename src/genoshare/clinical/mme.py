"""Rare-disease matchmaking as the Matchmaker Exchange (MME) API 1.1 defines it (``spec/mme/search-api.md``).

A trusted peer sends a patient (HPO features, disorders, candidate genes); this node answers with the
individuals most like them, scored in [0, 1] and best first. The phenotype part is simGIC over HPO,
lifted when both look like the same known disease (``genoshare.ontology.similarity``); the gene part is
whether the individual carries a rare allele (allele frequency in their dataset at or below
``mme.rare_allele_frequency``) in a candidate gene. With both, the score is their mean, so a shared gene
lifts a phenotype match and never stands in for one.

Only people whose consent allows matchmaking are candidates (``genoshare.access.matchmaking``, read at
every request). An answer names each match by its dataset and pseudonym, never a source name, and gives
the dataset custodian's contact; it shows the person's observed HPO features, diseases and sex, and of their
genes only the candidate genes the query named that they carry. Every answer is one audit entry naming the
people it showed, which the participant's "who used my data" report lists.

This node also asks its configured peers (``MatchmakerClient``), each within its own deadline, and says
for each whether it answered, refused, failed or timed out.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pyroaring import BitMap
from sqlalchemy import func, select

from genoshare.access.matchmaking import matchmaking_consent
from genoshare.audit import AuditLog, Entry
from genoshare.audit.people import encode_people
from genoshare.errors import GenoshareError, InvalidInput
from genoshare.ontology import Ontology, get_ontology
from genoshare.ontology.similarity import (
    DiseaseModel,
    InformationContent,
    PhenotypeIndex,
    hpo_disease_model,
    hpo_information_content,
)
from genoshare.ontology.xrefs import DiseaseXrefs, mondo_xrefs
from genoshare.settings import MatchmakerPeer, Settings
from genoshare.store.db import Database
from genoshare.store.models import Dataset, Participant

API_VERSION = "1.1"
SUPPORTED_VERSIONS = ("1.0", "1.1")
MEDIA_TYPE = f"application/vnd.ga4gh.matchmaker.v{API_VERSION}+json"
_MEDIA = re.compile(r"application/vnd\.ga4gh\.matchmaker(?:\.v(\d+)\.(\d+))?\+json")
HUMAN = "NCBITaxon:9606"
_SEX = {"NCIT:C16576": "FEMALE", "NCIT:C20197": "MALE", "NCIT:C45908": "OTHER"}


class UnsupportedMediaType(GenoshareError):
    status_code = 415
    code = "UnsupportedMediaType"


class NotAcceptable(GenoshareError):
    """An API version this node does not speak; the answer lists those it does."""

    status_code = 406
    code = "NotAcceptable"


class UnprocessableBody(GenoshareError):
    status_code = 422
    code = "InvalidInput"


def negotiate(content_type: str | None, accept: str | None) -> str:
    """The MME version of a request (``Content-Type``, else ``Accept`` beside plain JSON), or why not.

    The search API wants the version in ``Content-Type``; the join protocol's own example sends
    ``application/json`` with an unversioned matchmaker ``Accept``, so that is taken as the current version.
    """
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    found = _MEDIA.fullmatch(declared)
    if found is None:
        if declared != "application/json":
            raise UnsupportedMediaType(f"send the match request as {MEDIA_TYPE} (Content-Type), not {declared!r}")
        found = next((m for m in map(_MEDIA.fullmatch, _media_types(accept)) if m), None)
        if found is None:
            raise UnsupportedMediaType(f"the Content-Type must name the MME API version, e.g. {MEDIA_TYPE}")
    if found.group(1) is None:
        return API_VERSION
    version = f"{found.group(1)}.{found.group(2)}"
    if found.group(1) != API_VERSION.split(".", 1)[0]:
        raise NotAcceptable(f"unsupported API version {version}")
    return version


def _media_types(header: str | None) -> list[str]:
    return [part.split(";", 1)[0].strip().lower() for part in (header or "").split(",") if part.strip()]


# --- the request, as search-api.md defines it --------------------------------------------------------------

_HPO = r"^HP:\d{7}$"
MAX_ITEMS = 1000
MAX_GENES = 100
#: A peer's answer: at most a few hundred results of a few KiB each; nothing longer is read into memory.
MAX_ANSWER_BYTES = 8 * 1024 * 1024


class _Open(BaseModel):
    """MME allows non-standard fields with a leading underscore; they are kept and ignored."""

    model_config = ConfigDict(extra="allow")


class Contact(_Open):
    name: str = Field(min_length=1, max_length=255)
    institution: str | None = Field(default=None, max_length=255)
    href: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
    email: str | None = None
    roles: list[Literal["clinician", "researcher", "patient"]] | None = None


class Disorder(_Open):
    id: str = Field(min_length=1, max_length=255)
    label: str | None = None


class Feature(_Open):
    id: str = Field(pattern=_HPO)
    label: str | None = None
    observed: Literal["yes", "no"] = "yes"
    ageOfOnset: str | None = None


class Gene(_Open):
    id: str = Field(min_length=1, max_length=255)


class Variant(_Open):
    assembly: str = Field(min_length=1)
    referenceName: str = Field(min_length=1)
    start: int = Field(ge=0)
    end: int | None = Field(default=None, ge=0)
    referenceBases: str | None = Field(default=None, pattern=r"^[ACGTN]+$")
    alternateBases: str | None = Field(default=None, pattern=r"^[ACGTN]+$")


class OntologyTerm(_Open):
    id: str = Field(min_length=1)
    label: str | None = None


class GenomicFeature(_Open):
    gene: Gene
    variant: Variant | None = None
    zygosity: Literal[1, 2] | None = None
    type: OntologyTerm | None = None


class Patient(_Open):
    id: str = Field(min_length=1, max_length=255)
    label: str | None = Field(default=None, max_length=255)
    contact: Contact
    species: str = Field(default=HUMAN, pattern=r"^NCBITaxon:\d+$")
    sex: Literal["FEMALE", "MALE", "OTHER", "MIXED_SAMPLE", "NOT_APPLICABLE"] | None = None
    ageOfOnset: str | None = Field(default=None, pattern=_HPO)
    inheritanceMode: str | None = Field(default=None, pattern=_HPO)
    # Bounded: each candidate gene is a look-up in every dataset's variant index, and a trusted peer's
    # request must not hold a worker for minutes (a patient has tens of features and a few genes).
    disorders: list[Disorder] = Field(default_factory=list, max_length=MAX_ITEMS)
    features: list[Feature] = Field(default_factory=list, max_length=MAX_ITEMS)
    genomicFeatures: list[GenomicFeature] = Field(default_factory=list, max_length=MAX_GENES)
    test: bool = False

    @model_validator(mode="after")
    def _something_to_match(self) -> Patient:
        if not self.features and not self.genomicFeatures:
            raise ValueError("a patient needs features or genomicFeatures (at least one of the two)")
        return self


class MatchRequest(_Open):
    disclaimer: str | None = None
    terms: str | None = None
    patient: Patient


def parse_request(body: object) -> MatchRequest:
    """The request body checked against the MME 1.1 request (422 naming the first problem)."""
    if not isinstance(body, Mapping):
        raise UnprocessableBody("the request body must be a JSON object with a patient")
    try:
        return MatchRequest.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise UnprocessableBody(f"invalid match request at {where}: {first['msg']}") from None


# --- who can be matched ----------------------------------------------------------------------------------


class Individual(Protocol):
    """A described person as the Beacon's metadata holds them (``genoshare.beacon.people.Person``)."""

    @property
    def pseudonym(self) -> str: ...
    @property
    def sample_number(self) -> int: ...
    @property
    def sex(self) -> str: ...
    @property
    def phenotypic_features(self) -> tuple[dict[str, object], ...]: ...
    @property
    def diseases(self) -> tuple[dict[str, object], ...]: ...


class Cohort(Protocol):
    """Individuals and rare-allele carriers per dataset (``genoshare.beacon.cohort.BeaconCohort``)."""

    def individuals(self, dataset_id: str) -> tuple[object, Mapping[int, Individual]]: ...
    def rare_carriers(self, dataset_id: str, gene: str, max_allele_frequency: float) -> Iterable[int]: ...


@dataclass(frozen=True)
class Candidate:
    dataset_id: str
    person: Individual

    def observed(self) -> list[dict[str, Any]]:
        return [
            item["featureType"]  # type: ignore[misc]
            for item in self.person.phenotypic_features
            if not item.get("excluded") and isinstance(item.get("featureType"), dict)
        ]


@dataclass
class _Candidates:
    """Everyone described, indexed once per version of the people; who may be shown is ``allowed``."""

    key: object
    people: list[Candidate]
    index: PhenotypeIndex
    #: Dataset -> sample number -> position in ``people``.
    positions: dict[str, dict[int, int]]
    #: Disease id (MONDO, OMIM, ORPHA; each disease's MONDO ancestors too) -> the positions of the people with
    #: it and, for each, how much having it says (``_disease_index``).
    diseases: dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class _Consent:
    """Who matchmaking may show, by position in the candidates; and each dataset's custodian."""

    key: object
    allowed: np.ndarray
    custodians: dict[str, str]


@dataclass(frozen=True)
class Match:
    candidate: Candidate
    custodian: str
    score: float
    phenotype: float
    genes: tuple[str, ...]
    #: The disorder part, when the query named a disorder known here.
    disorder: float | None = None


#: Tells the data custodian of matches (subject, text, addresses, JSON payload): the node's notifier.
NotifyMatch = Callable[[str, str, tuple[str, ...], dict[str, Any]], None]


class MatchmakerService:
    """Answers ``/mme/match`` for the trusted peers; built once by the composition root."""

    def __init__(
        self,
        database: Database,
        audit: AuditLog,
        settings: Settings,
        cohort: Cohort,
        information_content: Callable[[], InformationContent] = hpo_information_content,
        notify: NotifyMatch | None = None,
        disease_model: Callable[[], DiseaseModel] = hpo_disease_model,
        xrefs: Callable[[], DiseaseXrefs] = mondo_xrefs,
    ) -> None:
        self.database = database
        self.audit = audit
        self.settings = settings
        self.cohort = cohort
        self.notify = notify
        self._information_content = information_content
        self._disease_model = disease_model
        self._xrefs = xrefs
        self._candidates: _Candidates | None = None
        self._consent: _Consent | None = None
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Load HPO, the disease model and the candidates' index now (seconds), not on the first request."""
        self._information_content()
        self._disease_model()
        self._xrefs()
        self._current()

    # --- answering ------------------------------------------------------------------------------------

    def match(self, peer: str, request: MatchRequest) -> dict[str, Any]:
        """The MME search response for one request from ``peer``; written to the audit log before it leaves."""
        mme = self.settings.mme
        patient = request.patient
        terms = [feature.id for feature in patient.features if feature.observed == "yes"]
        genes = list(dict.fromkeys(g.gene.id.strip() for g in patient.genomicFeatures if g.gene.id.strip()))
        found = self._score(terms, genes, [disorder.id for disorder in patient.disorders])
        results = [self._result(match) for match in found]
        self._audit(peer, patient, terms, genes, found)
        if found and not patient.test and self.notify is not None:  # MME: test queries notify nobody
            self._tell_custodian(peer, patient, found)
        response: dict[str, Any] = {"results": results}
        if mme.disclaimer:
            response["disclaimer"] = mme.disclaimer
        return response

    def _tell_custodian(self, peer: str, patient: Patient, found: list[Match]) -> None:
        """What the join protocol lets a node do: tell its data owners that another clinician's patient matched.

        The notice names the asking clinician's contact (so that the custodian can follow up too) and the
        matches by dataset and pseudonym; it goes to ``mme.contact_email`` and the node's webhook, if any.
        """
        assert self.notify is not None
        contact = patient.contact
        asker = ", ".join(part for part in (contact.name, contact.institution, contact.email, contact.href) if part)
        lines = [
            f"{peer}'s matchmaker asked about a patient of {asker}.",
            f"{len(found)} of the individuals here matched (score in [0, 1], best first):",
            *(
                f"  {m.candidate.dataset_id}/{m.candidate.person.pseudonym}: {m.score:.2f}"
                + (f" (rare allele in {', '.join(m.genes)})" if m.genes else "")
                for m in found
            ),
        ]
        payload = {
            "peer": peer,
            "contact": contact.model_dump(mode="json", exclude_none=True),
            "matches": [
                {"dataset": m.candidate.dataset_id, "participant": m.candidate.person.pseudonym, "score": m.score}
                for m in found
            ],
        }
        to = (self.settings.mme.contact_email,) if self.settings.mme.contact_email else ()
        self.notify(f"Matchmaker Exchange: {len(found)} matches for {peer}", "\n".join(lines), to, payload)

    def _score(self, terms: Sequence[str], genes: Sequence[str], disorders: Sequence[str] = ()) -> list[Match]:
        mme = self.settings.mme
        candidates, consent = self._current()
        if not candidates.people:
            return []
        phenotype = candidates.index.score(terms) if terms else np.zeros(len(candidates.people))
        carried: dict[int, list[str]] = {}
        for dataset_id, positions in candidates.positions.items():
            for gene in genes:
                for number in self.cohort.rare_carriers(dataset_id, gene, mme.rare_allele_frequency):
                    position = positions.get(number)
                    if position is not None:
                        carried.setdefault(position, []).append(gene)
        genotype = np.zeros(len(candidates.people))
        if carried:
            genotype[list(carried)] = 1.0
        disorder = self._disorders(candidates, disorders)
        # The mean of the parts asked: a shared gene lifts a phenotype match and never stands in for one.
        parts = [part for part, asked in ((phenotype, terms), (genotype, genes)) if asked]
        if disorder is not None:
            parts.append(disorder)
        score = np.mean(parts, axis=0) if parts else np.zeros(len(candidates.people))
        eligible = np.flatnonzero(consent.allowed & (score >= mme.min_score) & (score > 0))
        if len(eligible) > mme.max_results:
            top = np.argpartition(-score[eligible], mme.max_results - 1)[: mme.max_results]
            eligible = eligible[top]
        ranked = sorted(eligible.tolist(), key=lambda i: (-score[i], candidates.people[i].person.pseudonym))
        return [
            Match(
                candidates.people[i],
                consent.custodians.get(candidates.people[i].dataset_id, ""),
                float(score[i]),
                float(phenotype[i]),
                tuple(carried.get(i, ())),
                None if disorder is None else float(disorder[i]),
            )
            for i in ranked
        ]

    def _disorders(self, candidates: _Candidates, disorders: Sequence[str]) -> np.ndarray | None:
        """Per person, how well they fit the query's disorders; None when no disorder is known here.

        For a person with one of the disorders (the same disease under any of its MONDO, OMIM or Orphanet
        ids, or a MONDO subtype of it), its information content against theirs (``_disease_index``): 1 for the
        same disease, near 0 for MONDO's root, which every diagnosed person "has". Otherwise the chance, from
        their phenotypes, that they have it (for disorders that OMIM's HPO annotations describe). A disorder
        in another scheme, or one neither a person here nor the annotations know, is left out rather than
        scored 0 for everyone.
        """
        xrefs = self._xrefs()
        asked = set().union(*(xrefs.equivalents(disorder) for disorder in disorders)) if disorders else set()
        direct = [candidates.diseases[name] for name in asked if name in candidates.diseases]
        model = candidates.index.diseases
        numbers = sorted(model.position[name] for name in asked if model is not None and name in model.position)
        if not direct and not numbers:
            return None
        fit = np.zeros(len(candidates.people))
        if numbers:
            chances = candidates.index.disease_chances(np.asarray(numbers), np.ones(len(numbers)))
            fit = np.minimum(chances, 1.0)
        for positions, weights in direct:
            fit[positions] = np.maximum(fit[positions], weights)
        return fit

    def _result(self, match: Match) -> dict[str, Any]:
        candidate, mme = match.candidate, self.settings.mme
        person = candidate.person
        contact: dict[str, Any] = {
            "name": match.custodian,
            "institution": self.settings.organization,
            "href": mme.contact_href or self.settings.public_url,
        }
        if mme.contact_email:
            contact["email"] = mme.contact_email
        patient: dict[str, Any] = {
            "id": f"{candidate.dataset_id}/{person.pseudonym}",
            "contact": contact,
            "species": HUMAN,
            "features": [_feature(term) for term in candidate.observed()],
            "disorders": [_disorder(item) for item in person.diseases if isinstance(item.get("diseaseCode"), dict)],
            "genomicFeatures": [{"gene": {"id": gene}} for gene in match.genes],
        }
        if person.sex in _SEX:
            patient["sex"] = _SEX[person.sex]
        score = {"patient": round(match.score, 4), "_phenotype": round(match.phenotype, 4)}
        score["_genotype"] = 1.0 if match.genes else 0.0
        if match.disorder is not None:
            score["_disorder"] = round(match.disorder, 4)
        return {"score": score, "patient": patient}

    def _audit(self, peer: str, patient: Patient, terms: list[str], genes: list[str], found: list[Match]) -> None:
        """One entry per answer: what was asked (not who), and per dataset the people shown, with their scores."""
        datasets: dict[str, dict[str, Any]] = {}
        for match in found:
            shown = datasets.setdefault(match.candidate.dataset_id, {"numbers": [], "matches": []})
            shown["numbers"].append(match.candidate.person.sample_number)
            shown["matches"].append({"participant": match.candidate.person.pseudonym, "score": round(match.score, 4)})
        details: dict[str, Any] = {
            "peer": peer,
            "query": hashlib.sha256(f"{peer}\n{patient.id}".encode()).hexdigest()[:16],
            "features": len(terms),
            "disorders": len(patient.disorders),
            "genes": genes,
            "test": patient.test,
            "datasets": {
                dataset_id: {
                    "records": len(shown["matches"]),
                    "people": encode_people(BitMap(shown["numbers"])),
                    "matches": shown["matches"],
                }
                for dataset_id, shown in datasets.items()
            },
        }
        self.audit.record(Entry(f"mme:{peer}", "mme.match", "mme/match", "permit", f"{len(found)} matches", details))

    # --- the candidates ------------------------------------------------------------------------------------

    def _current(self) -> tuple[_Candidates, _Consent]:
        """Everyone described, and whom consent lets matchmaking show now, read again on every request.

        The phenotype index is rebuilt only when people change (new phenotypes, a new dataset); a consent
        change (a choice, a withdrawal, a dataset's codes) recomputes who is allowed, a pass over a dict.
        """
        with self.database.sessions() as session:
            datasets = list(session.execute(select(Dataset.id, Dataset.custodian, Dataset.duo_codes)).all())
            consent_version = session.execute(
                select(func.count(), func.max(Participant.consent_updated_at), func.max(Participant.id))
            ).one()
            dataset_version = session.execute(select(func.max(Dataset.updated_at))).scalar()
        versioned = {dataset_id: self.cohort.individuals(dataset_id) for dataset_id, _, _ in datasets}
        people_key = tuple((dataset_id, version) for dataset_id, (version, _) in versioned.items())
        with self._lock:
            candidates = self._candidates
            if candidates is None or candidates.key != people_key:
                people = {dataset_id: described for dataset_id, (_, described) in versioned.items()}
                candidates = self._candidates = self._index(people_key, people)
            consent_key = (people_key, tuple(consent_version), dataset_version)
            consent = self._consent
            if consent is None or consent.key != consent_key:
                consent = self._consent = self._allowed(consent_key, candidates, datasets)
            return candidates, consent

    def _index(self, key: object, people: Mapping[str, Mapping[int, Individual]]) -> _Candidates:
        everyone: list[Candidate] = []
        positions: dict[str, dict[int, int]] = {}
        for dataset_id, described in people.items():
            for number, person in described.items():
                positions.setdefault(dataset_id, {})[number] = len(everyone)
                everyone.append(Candidate(dataset_id, person))
        profiles = [[str(term.get("id")) for term in c.observed()] for c in everyone]
        index = PhenotypeIndex(self._information_content(), profiles, self._disease_model())
        return _Candidates(key, everyone, index, positions, self._disease_index(everyone))

    def _disease_index(self, everyone: Sequence[Candidate]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Disease id -> the people with it (under every id MONDO gives it, and its MONDO ancestors), weighted.

        A shared diagnosis counts as much as it is informative, as shared HPO terms do: a person with disease
        ``D`` "has" each MONDO ancestor ``A`` of it, with weight Lin's similarity ``2 ic(A) / (ic(A) + ic(D))``
        over MONDO's intrinsic information content (``_mondo_information``). The same disease is 1, a subtype
        of the asked disease a little less, and MONDO's root ("disease"), which every diagnosed person has,
        about 0: a query naming it must not lift everyone diagnosed. An id MONDO does not know matches itself
        only, with weight 1.
        """
        xrefs, mondo = self._xrefs(), get_ontology("MONDO")
        information = _MondoInformation(mondo)
        people: dict[str, dict[int, float]] = {}
        for position, candidate in enumerate(everyone):
            weights: dict[str, float] = {}
            for item in candidate.person.diseases:
                code = item.get("diseaseCode")
                if not (isinstance(code, dict) and code.get("id")):
                    continue
                names = xrefs.equivalents(str(code["id"]))
                own = [name for name in names if name.startswith("MONDO:") and name in mondo]
                for name in names:
                    weights[name] = 1.0
                for disease in own:
                    specific = information(disease)
                    for broader in mondo.ancestors(disease):
                        general = information(broader)
                        lin = 2 * general / (general + specific) if general + specific > 0 else 0.0
                        for name in xrefs.equivalents(broader):
                            weights[name] = max(weights.get(name, 0.0), lin)
            for name, weight in weights.items():
                people.setdefault(name, {})[position] = weight
        return {
            name: (np.fromiter(found, dtype=np.int64), np.fromiter(found.values(), dtype=np.float64))
            for name, found in people.items()
        }

    def _allowed(self, key: object, candidates: _Candidates, datasets: Sequence[Any]) -> _Consent:
        with self.database.sessions() as session:
            consent = {
                (dataset_id, pseudonym): (status, choice)
                for dataset_id, pseudonym, status, choice in session.execute(
                    select(
                        Participant.dataset_id,
                        Participant.pseudonym,
                        Participant.consent_status,
                        Participant.matchmaking,
                    )
                )
            }
        codes = {dataset_id: tuple(duo or ()) for dataset_id, _, duo in datasets}
        allowed = np.zeros(len(candidates.people), dtype=bool)
        for position, candidate in enumerate(candidates.people):
            # No consent record (phenotypes without genotypes): the dataset's codes decide.
            status, choice = consent.get((candidate.dataset_id, candidate.person.pseudonym), ("active", None))
            allowed[position] = matchmaking_consent(status, choice, codes.get(candidate.dataset_id, ())).allowed
        return _Consent(key, allowed, {dataset_id: custodian for dataset_id, custodian, _ in datasets})


class _MondoInformation:
    """A MONDO term's intrinsic information content in [0, 1]: ``ln(N / (1 + descendants)) / ln N``.

    MONDO has no corpus of annotations to count, so specificity is read from the hierarchy itself (Seco et
    al. 2004): a leaf disease is 1, the root 0. Counts are kept per index build, not the descendant sets.
    """

    def __init__(self, mondo: Ontology) -> None:
        self.mondo = mondo
        self.scale = math.log(len(mondo))
        self._known: dict[str, float] = {}

    def __call__(self, term: str) -> float:
        if term not in self._known:
            below = 1 + len(self.mondo.descendants(term))
            self._known[term] = max(0.0, math.log(len(self.mondo) / below) / self.scale)
        return self._known[term]


def _feature(term: Mapping[str, Any]) -> dict[str, Any]:
    feature = {"id": str(term.get("id")), "observed": "yes"}
    if term.get("label"):
        feature["label"] = str(term["label"])
    return feature


def _disorder(item: Mapping[str, Any]) -> dict[str, Any]:
    code = item["diseaseCode"]
    disorder = {"id": str(code.get("id"))}
    if code.get("label"):
        disorder["label"] = str(code["label"])
    return disorder


# --- asking the peers -----------------------------------------------------------------------------------

PeerStatus = Literal["answered", "refused", "failed", "timed out", "unreachable"]


@dataclass(frozen=True)
class PeerAnswer:
    """One peer's part of a search: its results, or why there are none."""

    peer: str
    status: PeerStatus
    seconds: float
    results: list[dict[str, Any]] = field(default_factory=list)
    http_status: int | None = None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "httpStatus": self.http_status,
            "message": self.message,
            "results": self.results,
        }


class _Score(_Open):
    patient: float = Field(ge=0, le=1)


class _Result(_Open):
    score: _Score
    patient: Patient


class _Answer(_Open):
    results: list[_Result]


class MatchmakerClient:
    """Sends one patient to every configured peer at once; each answer is awaited until the peer's deadline."""

    def __init__(self, settings: Settings, audit: AuditLog) -> None:
        self.settings = settings
        self.audit = audit

    def peers(self) -> list[MatchmakerPeer]:
        return [peer for peer in self.settings.mme.peers if peer.base_url and peer.token_file]

    def search(self, request: MatchRequest, actor: str) -> list[PeerAnswer]:
        peers = self.peers()
        if not peers:
            raise InvalidInput("no matchmaking peers to ask: configure mme.peers with base_url and token_file")
        body = request.model_dump(mode="json", exclude_none=True)
        pool = ThreadPoolExecutor(max_workers=len(peers), thread_name_prefix="mme-peer")
        try:
            started = time.monotonic()
            futures = [(peer, pool.submit(self._ask, peer, body)) for peer in peers]
            answers = []
            for peer, future in futures:
                left = peer.deadline_seconds - (time.monotonic() - started)
                try:
                    answers.append(future.result(timeout=max(left, 0)))
                except FutureTimeout:
                    answers.append(
                        PeerAnswer(peer.name, "timed out", time.monotonic() - started, message="no answer in time")
                    )
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        self.audit.record(
            Entry(
                actor,
                "mme.search",
                "mme/peers",
                "permit",
                ", ".join(f"{a.peer}: {a.status}" for a in answers),
                {
                    "query": hashlib.sha256(request.patient.id.encode()).hexdigest()[:16],
                    "peers": {a.peer: {"status": a.status, "results": len(a.results)} for a in answers},
                },
            )
        )
        return answers

    def _ask(self, peer: MatchmakerPeer, body: dict[str, Any]) -> PeerAnswer:
        assert peer.base_url is not None and peer.token_file is not None
        started = time.monotonic()
        try:
            token = peer.token_file.read_text().strip()
        except OSError as error:
            return PeerAnswer(peer.name, "failed", 0.0, message=f"cannot read its token file: {error.strerror}")
        headers = {"Content-Type": MEDIA_TYPE, "Accept": MEDIA_TYPE, "X-Auth-Token": token}
        url = peer.base_url.rstrip("/") + "/match"
        try:
            with (
                httpx.Client(timeout=peer.deadline_seconds, follow_redirects=False) as http,
                http.stream("POST", url, json=body, headers=headers) as streamed,
            ):
                raw = _read_limited(streamed, started + peer.deadline_seconds)
                response = httpx.Response(streamed.status_code, content=raw)
        except httpx.TimeoutException:
            return PeerAnswer(peer.name, "timed out", time.monotonic() - started, message="no answer in time")
        except httpx.HTTPError as error:
            return PeerAnswer(
                peer.name, "unreachable", time.monotonic() - started, message=str(error) or type(error).__name__
            )
        except AnswerTooLarge as error:
            return PeerAnswer(peer.name, "failed", time.monotonic() - started, message=str(error))
        seconds = time.monotonic() - started
        if response.status_code in (401, 403):
            return PeerAnswer(
                peer.name, "refused", seconds, http_status=response.status_code, message=_message(response)
            )
        if response.status_code != 200:
            return PeerAnswer(
                peer.name, "failed", seconds, http_status=response.status_code, message=_message(response)
            )
        try:
            answer = _Answer.model_validate_json(response.content)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            return PeerAnswer(
                peer.name, "failed", seconds, http_status=200, message=f"not an MME answer at {where}: {first['msg']}"
            )
        results = [result.model_dump(mode="json", exclude_none=True) for result in answer.results]
        return PeerAnswer(peer.name, "answered", seconds, results, 200)


class AnswerTooLarge(ValueError):
    """A peer's answer longer than ``MAX_ANSWER_BYTES``: not read on, whatever the peer keeps sending."""


def _read_limited(response: httpx.Response, deadline: float) -> bytes:
    """The answer's body, up to ``MAX_ANSWER_BYTES`` and until ``deadline`` (``time.monotonic``) at most.

    httpx's timeout bounds each read, not the whole: a peer sending a byte now and then would hold this
    thread (and its connection) long after the search stopped waiting for it.
    """
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise AnswerTooLarge(f"answer larger than {MAX_ANSWER_BYTES} bytes")
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the answer did not end in time")
        chunks.append(chunk)
    return b"".join(chunks)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (ValueError, RecursionError):  # RecursionError: JSON nested past the parser's limit
        return response.text[:200]
    return str(body.get("message", body))[:200] if isinstance(body, dict) else str(body)[:200]
