"""Property-based run of schemathesis over the node's own OpenAPI: no server error, no response that breaks
the schema it declares, whatever the input."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from genoshare.api.app import create_app
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.ingest.pipeline import Ingestor
from genoshare.node import Node

from support import HTSGET_DATA


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
    # 413 is the documented answer to a bulk request over the server's limit, not a rejected valid request.
    config = SchemathesisConfig.from_dict(
        {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "413"]}}}
    )
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(node), config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_responses_match_the_schema(case: schemathesis.Case) -> None:
    case.call_and_validate()
