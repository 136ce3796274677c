"""The Beacon request as typed models: FastAPI validates against them and publishes them in the OpenAPI.

Written from the spec's ``beaconRequestBody`` (framework/json/requests) and the default model's g_variant
request parameters, narrowed to what this node understands: filters are CURIEs, ontology or custom terms,
or the ``sex`` and ``age`` alphanumeric fields. Validation and the published schema come from the same
models, so whatever the OpenAPI accepts gets an answer (``beacon.variants`` explains how partial variant
parameters combine) and whatever it rejects is a 400 with the Beacon error body: a generic client or a
fuzzer can trust the document.

GET lists are comma-separated strings (``start=100,200``, ``filters=HP:1,HP:2``), as Beacon clients send them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from genoshare.beacon.filters import OPERATORS, SEX_OPERATORS

_NUMBER = "[0-9]+(?:[.][0-9]+)?"
#: Years as a plain number, or an ISO 8601 duration with at least one of Y, M, W, D in that order.
AGE_PATTERN = (
    f"^(?:{_NUMBER}|P(?:{_NUMBER}Y(?:{_NUMBER}M)?(?:{_NUMBER}W)?(?:{_NUMBER}D)?"
    f"|{_NUMBER}M(?:{_NUMBER}W)?(?:{_NUMBER}D)?|{_NUMBER}W(?:{_NUMBER}D)?|{_NUMBER}D))$"
)
BASES_PATTERN = "^[ACGTUNRYSWKMBDHVacgtunryswkmbdhv.-]*$"

Text = Annotated[str, Field(min_length=1)]


def _whole(value: object) -> object:
    """JSON Schema's integer includes 5.0; strict pydantic would refuse it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Count = Annotated[int, Field(ge=0), BeforeValidator(_whole)]
Coordinates = Annotated[list[Count], Field(min_length=1, max_length=2)]
Bases = Annotated[str, Field(pattern=BASES_PATTERN, description="IUPAC bases; N matches any one base")]
Granularity = Literal["boolean", "count", "record"]
Include = Literal["ALL", "HIT", "MISS", "NONE"]
#: Body models take JSON as it is: no 0 for false or "5" for 5, which the published schema would not allow.
_STRICT = ConfigDict(extra="forbid", strict=True)
_OPEN = ConfigDict(populate_by_name=True, strict=True)


class VariantParameters(BaseModel):
    """g_variant request parameters (default model); every one narrows the answer."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    schema_: str | None = Field(None, alias="$schema")
    referenceName: Text | None = Field(None, description="Contig, e.g. 20 or chr20; absent: any contig")
    start: Coordinates | None = Field(None, description="0-based start; two values bound it (bracket)")
    end: Coordinates | None = Field(None, description="End (exclusive); two values bound it (bracket)")
    referenceBases: Bases | None = None
    alternateBases: Bases | None = None
    variantType: Text | None = Field(None, description="SNP, DEL, INS, INDEL, DUP, ... or an EFO id")
    variantMinLength: Count | None = None
    variantMaxLength: Count | None = None
    geneId: Text | None = Field(None, description="Gene symbol from the node's gene table")
    assemblyId: Text | None = Field(None, description="e.g. GRCh38; an assembly no dataset is on is a 404")


class OntologyFilter(BaseModel):
    """An ontology or custom term; ``similarity`` other than exact is answered with exact matches."""

    model_config = _STRICT

    id: Text
    includeDescendantTerms: bool = True
    similarity: Literal["exact", "high", "medium", "low"] = "exact"
    scope: str | None = None


class SexFilter(BaseModel):
    model_config = _STRICT

    id: Literal["sex"]
    operator: Literal[SEX_OPERATORS]  # type: ignore[valid-type]
    value: str = Field(description="female, male, unknown or an NCIT sex term")
    scope: str | None = None


class AgeFilter(BaseModel):
    model_config = _STRICT

    id: Literal["age"]
    operator: Literal[tuple(OPERATORS)]  # type: ignore[valid-type]
    value: str = Field(pattern=AGE_PATTERN, description="years (61) or an ISO 8601 duration (P61Y6M)")
    scope: str | None = None


class Pagination(BaseModel):
    model_config = _STRICT

    skip: Count = 0
    limit: Count = Field(10, description="0: as many as the node allows")


class BeaconQuery(BaseModel):
    model_config = _STRICT

    requestParameters: VariantParameters | None = None
    filters: list[Annotated[str, Field(min_length=1)] | OntologyFilter | SexFilter | AgeFilter] | None = None
    pagination: Pagination | None = None
    requestedGranularity: Granularity | None = None
    includeResultsetResponses: Include | None = None
    testMode: bool | None = None


class SchemaPerEntity(BaseModel):
    model_config = _OPEN

    entityType: str | None = None
    schema_: str | None = Field(None, alias="schema")


class RequestMeta(BaseModel):
    model_config = _OPEN

    apiVersion: str = Field(examples=["v2.0.0"])
    requestedSchemas: list[SchemaPerEntity] | None = None
    schema_: str | None = Field(None, alias="$schema")


class BeaconRequestBody(BaseModel):
    """``beaconRequestBody``: only ``meta.apiVersion`` is required, as in the spec."""

    model_config = _OPEN

    meta: RequestMeta
    query: BeaconQuery | None = None
    schema_: str | None = Field(None, alias="$schema")


class QueryParameters(BaseModel):
    """GET parameters of an entry route: the controls and the g_variant parameters in one query string.

    Lax, unlike the body: query values are strings, and ``skip=5`` must become 5.
    """

    model_config = ConfigDict(extra="forbid")

    skip: Count | None = None
    limit: Count | None = Field(None, description="0: as many as the node allows")
    requestedGranularity: Granularity | None = None
    includeResultsetResponses: Include | None = None
    testMode: Literal["true", "false"] | None = None
    filters: Annotated[str, Field(pattern="^[^,]+(?:,[^,]+)*$")] | None = Field(
        None, description="Comma-separated CURIEs, ANDed"
    )
    referenceName: Text | None = None
    start: Annotated[str, Field(pattern="^[0-9]+(?:,[0-9]+)?$")] | None = Field(
        None, description="0-based start, or two comma-separated bounds (bracket)"
    )
    end: Annotated[str, Field(pattern="^[0-9]+(?:,[0-9]+)?$")] | None = Field(
        None, description="End (exclusive), or two comma-separated bounds (bracket)"
    )
    referenceBases: Bases | None = None
    alternateBases: Bases | None = None
    variantType: Text | None = None
    variantMinLength: Count | None = None
    variantMaxLength: Count | None = None
    geneId: Text | None = None
    assemblyId: Text | None = None

    def document(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)

    @classmethod
    def openapi_parameters(cls) -> list[dict[str, Any]]:
        """The fields as OpenAPI query parameters, as FastAPI would document a ``Query()`` model."""
        parameters = []
        for name, schema in cls.model_json_schema()["properties"].items():
            parameter = {"name": name, "in": "query", "required": False, "schema": schema}
            if "description" in schema:
                parameter["description"] = schema["description"]
            parameters.append(parameter)
        return parameters


class Paging(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skip: Count | None = None
    limit: Count | None = None


#: The body of every Beacon error (beaconErrorResponse); ``genoshare.api.openapi`` makes it the one component
#: every ``/api`` error response refers to (``ERROR_RESPONSES`` give only the descriptions).
ERROR_SCHEMA: dict[str, Any] = {
    "title": "beaconErrorResponse",
    "type": "object",
    "required": ["meta", "error"],
    "properties": {
        "meta": {"type": "object"},
        "error": {
            "type": "object",
            "required": ["errorCode"],
            "properties": {"errorCode": {"type": "integer"}, "errorMessage": {"type": "string"}},
        },
    },
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": description}
    for status, description in (
        (400, "The request is not what this OpenAPI declares"),
        (401, "The bearer token could not be verified"),
        (403, "The credentials do not allow this"),
        (404, "A referenced assembly, gene or entry id is not known here"),
        (429, "Query limit of the dataset's privacy policy reached; see Retry-After"),
        (501, "A GA4GH VRS id this node cannot look up: no reference sequence for its variants (the message says)"),
    )
}
