"""What this Beacon is and serves: info, service-info, configuration, map, entry types, filtering terms.

One table of entry types drives ``/configuration``, ``/entry_types`` and ``/map``, and the router builds
its paths from the same table, so the advertised map and the real routes cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genoshare import __version__
from genoshare.beacon.filters import SEX_LABELS
from genoshare.beacon.request import API_VERSION
from genoshare.ontology import get_ontology
from genoshare.settings import Settings

SPEC = "Beacon v2.0"
MODEL = "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/models/json/beacon-v2-default-model"


@dataclass(frozen=True)
class EntryType:
    id: str
    name: str
    #: Path segment under /api, as the default model's endpoints.json names it.
    path: str
    model_dir: str
    ontology_id: str
    ontology_label: str
    description: str
    #: Cross-entity paths ``/{path}/{id}/{target}``, by the target's path segment.
    related: tuple[str, ...] = ()
    collection: bool = False

    @property
    def schema_url(self) -> str:
        return f"{MODEL}/{self.model_dir}/defaultSchema.json"

    def schema_ref(self) -> dict[str, str]:
        """``meta.returnedSchemas`` item."""
        return {"entityType": self.id, "schema": f"beacon-{self.id}-v2.0.0"}


ENTRY_TYPES: tuple[EntryType, ...] = (
    EntryType(
        "genomicVariation",
        "Genomic Variants",
        "g_variants",
        "genomicVariations",
        "ENSGLOSSARY:0000092",
        "Variant",
        "Allelic variants found in the datasets' VCF/BCF files.",
        ("biosamples", "individuals"),
    ),
    EntryType(
        "individual",
        "Individuals",
        "individuals",
        "individuals",
        "NCIT:C25190",
        "Person",
        "People in the datasets, by pseudonym, with sex, age, phenotypic features and diseases.",
        ("biosamples", "g_variants"),
    ),
    EntryType(
        "biosample",
        "Biosamples",
        "biosamples",
        "biosamples",
        "NCIT:C70699",
        "Biospecimen",
        "Samples taken from the individuals.",
        ("analyses", "g_variants", "runs"),
    ),
    EntryType(
        "run",
        "Sequencing runs",
        "runs",
        "runs",
        "NCIT:C148088",
        "Sequencing run",
        "One run per biosample and published variant file (the node keeps no richer run metadata).",
        ("analyses", "g_variants"),
    ),
    EntryType(
        "analysis",
        "Bioinformatics analyses",
        "analyses",
        "analyses",
        "edam:operation_2945",
        "Analysis",
        "The variant calling that produced each published VCF/BCF, per biosample.",
        ("g_variants",),
    ),
    EntryType(
        "cohort",
        "Cohorts",
        "cohorts",
        "cohorts",
        "NCIT:C61512",
        "Cohort",
        "One study-defined cohort per dataset.",
        ("individuals", "filtering_terms"),
        collection=True,
    ),
    EntryType(
        "dataset",
        "Datasets",
        "datasets",
        "datasets",
        "NCIT:C47824",
        "Data set",
        "Datasets of this node, with their data use conditions (DUO).",
        ("biosamples", "g_variants", "individuals", "filtering_terms"),
        collection=True,
    ),
)
BY_PATH = {entry.path: entry for entry in ENTRY_TYPES}


def informational_meta(settings: Settings, entry: EntryType | None = None) -> dict[str, Any]:
    return {
        "beaconId": settings.node_id,
        "apiVersion": API_VERSION,
        "returnedSchemas": [entry.schema_ref()] if entry else [],
    }


def _organization(settings: Settings) -> dict[str, Any]:
    return {"id": settings.organization, "name": settings.organization, "welcomeUrl": settings.public_url}


def info(settings: Settings) -> dict[str, Any]:
    return {
        "meta": informational_meta(settings),
        "response": {
            "id": settings.node_id,
            "name": settings.node_name,
            "apiVersion": API_VERSION,
            "environment": settings.environment,
            "organization": _organization(settings),
            "description": "genoshare Beacon v2: variants, individuals and biosamples, answered per access level",
            "version": f"v{__version__}",
            "welcomeUrl": settings.public_url,
        },
    }


def service_info(settings: Settings) -> dict[str, Any]:
    return {
        "id": settings.node_id,
        "name": settings.node_name,
        "type": {"group": "org.ga4gh", "artifact": "beacon", "version": API_VERSION},
        "description": "genoshare Beacon v2",
        "organization": {"name": settings.organization, "url": settings.public_url},
        "version": __version__,
        "environment": settings.environment,
    }


def _definition(entry: EntryType) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "id": entry.id,
        "name": entry.name,
        "ontologyTermForThisType": {"id": entry.ontology_id, "label": entry.ontology_label},
        "partOfSpecification": SPEC,
        "description": entry.description,
        "defaultSchema": {
            "id": f"ga4gh-beacon-{entry.id}-v2.0.0",
            "name": f"Default schema for {entry.name.lower()}",
            "referenceToSchemaDefinition": entry.schema_url,
            "schemaVersion": API_VERSION,
        },
        "additionallySupportedSchemas": [],
        "nonFilteredQueriesAllowed": True,  # g_variants too: every variant, paginated, through the guard
    }
    if entry.collection:
        definition["aCollectionOf"] = [{"id": "individual", "name": "Individuals"}]
    return definition


def entry_types(settings: Settings) -> dict[str, Any]:
    return {
        "meta": informational_meta(settings),
        "response": {"entryTypes": {entry.id: _definition(entry) for entry in ENTRY_TYPES}},
    }


def configuration(settings: Settings) -> dict[str, Any]:
    status = {"dev": "DEV", "test": "TEST", "prod": "PROD"}[settings.environment]
    return {
        "meta": informational_meta(settings),
        "response": {
            "$schema": "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/framework/json/"
            "configuration/beaconConfigurationSchema.json",
            "maturityAttributes": {"productionStatus": status},
            "securityAttributes": {
                "defaultGranularity": "record",
                "securityLevels": ["PUBLIC", "REGISTERED", "CONTROLLED"],
            },
            "entryTypes": {entry.id: _definition(entry) for entry in ENTRY_TYPES},
        },
    }


def beacon_map(settings: Settings) -> dict[str, Any]:
    base = f"{settings.public_url}/api"
    sets: dict[str, Any] = {}
    for entry in ENTRY_TYPES:
        endpoints = {
            f"{target}": {
                "returnedEntryType": BY_PATH[target].id if target in BY_PATH else "filteringTerm",
                "url": f"{base}/{entry.path}/{{id}}/{target}",
            }
            for target in entry.related
        }
        sets[entry.id] = {
            "entryType": entry.id,
            "rootUrl": f"{base}/{entry.path}",
            "singleEntryUrl": f"{base}/{entry.path}/{{id}}",
            "openAPIEndpointsDefinition": f"{MODEL}/{entry.model_dir}/endpoints.json",
            "endpoints": endpoints,
        }
    return {
        "meta": informational_meta(settings),
        "response": {
            "$schema": "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/framework/json/"
            "configuration/beaconMapSchema.json",
            "endpointSets": sets,
        },
    }


def filtering_terms(settings: Settings, present: set[str], skip: int = 0, limit: int = 0) -> dict[str, Any]:
    """The ontology terms found in the data (with labels) plus the alphanumeric fields."""
    labels = {term: label for label, term in SEX_LABELS.items()}
    terms: list[dict[str, Any]] = []
    for term in sorted(present):
        prefix = term.split(":", 1)[0]
        label = labels.get(term)
        if prefix in ("HP", "MONDO"):
            ontology = get_ontology(prefix)
            label = ontology.label(term) if term in ontology else None
        item: dict[str, Any] = {"type": "ontologyTerm", "id": term, "scopes": ["individual"]}
        if label:
            item["label"] = label
        terms.append(item)
    terms.append(
        {"type": "alphanumeric", "id": "sex", "label": "sex (NCIT term or female/male)", "scopes": ["individual"]}
    )
    terms.append(
        {"type": "alphanumeric", "id": "age", "label": "age in years or ISO 8601 duration", "scopes": ["individual"]}
    )
    page = terms[skip : skip + limit] if limit else terms[skip:]
    resources = [
        {
            "id": "hp",
            "name": "Human Phenotype Ontology",
            "nameSpacePrefix": "HP",
            "iriPrefix": "http://purl.obolibrary.org/obo/HP_",
            "url": "http://purl.obolibrary.org/obo/hp.obo",
        },
        {
            "id": "mondo",
            "name": "Mondo Disease Ontology",
            "nameSpacePrefix": "MONDO",
            "iriPrefix": "http://purl.obolibrary.org/obo/MONDO_",
            "url": "http://purl.obolibrary.org/obo/mondo.obo",
        },
        {
            "id": "ncit",
            "name": "NCI Thesaurus",
            "nameSpacePrefix": "NCIT",
            "iriPrefix": "http://purl.obolibrary.org/obo/NCIT_",
            "url": "http://purl.obolibrary.org/obo/ncit.owl",
        },
    ]
    return {"meta": informational_meta(settings), "response": {"filteringTerms": page, "resources": resources}}


def error_body(settings: Settings, status: int, message: str) -> dict[str, Any]:
    """A ``beaconErrorResponse``: the spec wants the full response meta even when nothing was answered."""
    return {
        "meta": {
            "beaconId": settings.node_id,
            "apiVersion": API_VERSION,
            "returnedSchemas": [],
            "returnedGranularity": "boolean",
            "receivedRequestSummary": {
                "apiVersion": API_VERSION,
                "requestedSchemas": [],
                "pagination": {"skip": 0, "limit": 0},
                "requestedGranularity": "boolean",
            },
        },
        "error": {"errorCode": status, "errorMessage": message},
    }
