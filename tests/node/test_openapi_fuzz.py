"""Property-based run of schemathesis over the node's own OpenAPI: no server error, no response that breaks
the schema it declares, whatever the input.

Schemathesis is used through its Python API (operations as Hypothesis strategies, ``Case.call_and_validate``),
not its pytest plugin: ``schemathesis.pytest.from_fixture`` renames the running test through pytest's private
``Function._nodeid``, which pytest 9.1 removed (``AttributeError: 'Function' object has no attribute
'_nodeid'``, schemathesis 4.32.5 and older).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig

from genoshare.api.app import create_app
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.ingest.pipeline import Ingestor
from genoshare.node import Node

from support import HTSGET_DATA

#: Answers to requests the document allows that are still right to give: no grant (401, 403), an id or
#: assembly not held (404), a bulk request over the server's limit (413).
ACCEPTED = ["2xx", "401", "403", "404", "413"]


@pytest.fixture
def api_schema(node: Node, tmp_path: Path) -> schemathesis.schemas.BaseSchema:
    service = DatasetService(node.database)
    service.create(
        NewDataset(
            id="open", title="Open", custodian="C", access_level="public", duo_codes=["NRES"], pseudonymise=False
        )
    )
    service.create(NewDataset(id="closed", title="Closed", custodian="C", access_level="controlled", duo_codes=["GRU"]))
    Ingestor(node).ingest("open", [HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"])
    Ingestor(node).ingest("closed", [HTSGET_DATA / "bcf" / "spec-v4.3.bcf"])
    config = SchemathesisConfig.from_dict(
        {
            "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
            "operations": [
                {
                    # htsget's rules across parameters (start <= end, class=header alone, ...) are beyond JSON
                    # Schema; the document states them and a request that breaks one is a 400, as the spec says.
                    "include-path-regex": "^/htsget/(reads|variants)/[{]id[}]$",
                    "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "400"]}},
                }
            ],
        }
    )
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(node), config=config)


def failure(operation: schemathesis.APIOperation) -> str | None:
    """Hypothesis over one operation, in every generation mode; the shrunk failure, if any."""
    cases = st.one_of([operation.as_strategy(generation_mode=mode) for mode in schemathesis.GenerationMode])

    @given(case=cases)
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate()

    try:
        check()
    except Exception as error:
        return f"{operation.label}: {error}"
    return None


def test_no_server_error_and_responses_match_the_schema(api_schema: schemathesis.BaseSchema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 90, "every operation of the document is fuzzed"
    failures = [found for operation in operations if (found := failure(operation)) is not None]
    assert not failures, "\n\n".join(failures)
