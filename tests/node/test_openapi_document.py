"""What /openapi.json promises, checked against the OpenAPI 3.1 schema and against what clients rely on.

A generated client (``tests/e2e/test_openapi_client.py``) shows the promises hold on a real server; here,
fast, the parts a generator cannot show: every error body is one shared component, the passport and the
ticket are bearer schemes (so /docs offers to take a passport), htsget and /data declare what they take.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the document does not depend on it


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    return answer.json()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)


def test_every_error_is_one_shared_component_per_api_family(document: dict[str, Any]) -> None:
    family = {
        "/api": "BeaconErrorResponse",
        "/htsget": "HtsgetError",
        "/ga4gh/drs": "Error",
        "/data": "Error",
        "/mme/": "MatchmakerError",
        "/network/api": "BeaconErrorResponse",
        "/services": "ServiceRegistryError",
    }
    seen = set()
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if status[0] not in "45":
                continue
            (media,) = response["content"]
            # Matchmaker Exchange errors carry its versioned media type, as its answers do.
            wanted = "application/vnd.ga4gh.matchmaker.v1.1+json" if path.startswith("/mme/") else "application/json"
            assert media == wanted, (method, path, status)
            reference = response["content"][media]["schema"]["$ref"]
            name = reference.removeprefix("#/components/schemas/")
            assert name in document["components"]["schemas"], reference
            expected = next((component for prefix, component in family.items() if path.startswith(prefix)), "Error")
            assert name == expected, (method, path, status)
            seen.add(name)
    assert seen == set(family.values())


def test_passport_and_ticket_are_bearer_schemes_where_they_are_read(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["passport"]["type"] == schemes["ticket"]["type"] == "http"
    assert schemes["passport"]["scheme"] == schemes["ticket"]["scheme"] == "bearer"
    security = {(method, path): op.get("security") for path, method, op in operations(document)}
    optional = [{}, {"passport": []}]
    assert security["post", "/api/g_variants"] == security["get", "/api/individuals/{id}"] == optional
    assert security["get", "/htsget/variants/{id}"] == security["post", "/htsget/reads/{id}"] == optional
    assert security["get", "/ga4gh/drs/v1/objects/{object_id}"] == optional
    assert security["post", "/ga4gh/drs/v1/objects/{object_id}/access/{access_id}"] == optional
    assert security["post", "/governance/requests"] == [{"passport": []}]
    assert security["get", "/data/{object_id}"] == security["head", "/data/{object_id}"] == [{"ticket": []}]
    assert security["get", "/service-info"] is None


def test_swagger_ui_reads_the_document_that_declares_the_passport(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text and "/openapi.json" in page.text


def test_htsget_declares_its_parameters_body_and_ticket(document: dict[str, Any]) -> None:
    get = document["paths"]["/htsget/variants/{id}"]["get"]
    names = {parameter["name"] for parameter in get["parameters"]}
    assert {"format", "class", "referenceName", "start", "end", "fields", "tags", "notags"} <= names
    assert {"encryptionScheme", "Htsget-Context-Public-Key"} <= names
    body = document["paths"]["/htsget/reads/{id}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["regions"]["items"]["required"] == ["referenceName"]
    assert set(body["properties"]["format"]["enum"]) == {"BAM", "CRAM"}
    (media,) = get["responses"]["200"]["content"]
    assert media.startswith("application/vnd.ga4gh.htsget.v1.3.0+json")
    assert get["responses"]["200"]["content"][media]["schema"] == {"$ref": "#/components/schemas/HtsgetTicket"}


def test_data_is_binary_with_range_206_and_416(document: dict[str, Any]) -> None:
    get = document["paths"]["/data/{object_id}"]["get"]
    assert any(p["name"] == "Range" and p["in"] == "header" for p in get["parameters"])
    for status in ("200", "206"):
        content = get["responses"][status]["content"]
        assert "application/json" not in content and "application/octet-stream" in content
        assert all(media["schema"] == {"type": "string", "format": "binary"} for media in content.values())
    assert "Content-Range" in get["responses"]["206"]["headers"]
    assert "Content-Range" in get["responses"]["416"]["headers"]
    head = document["paths"]["/data/{object_id}"]["head"]
    assert "content" not in head["responses"]["200"] and "206" not in head["responses"]
