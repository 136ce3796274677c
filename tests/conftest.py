"""Shared fixtures: real databases (SQLite and PostgreSQL), a real test passport issuer, real nodes.

PostgreSQL comes from ``GENOSHARE_TEST_POSTGRES_URL`` (an admin URL; ``make test`` starts the server and
sets it).  Each test gets its own throwaway database, so tests can run in parallel.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from genoshare.access.issuer import VisaIssuer
from genoshare.api.app import create_app
from genoshare.node import Node, init_node
from genoshare.settings import TrustedIssuer, load_settings
from objects_s3 import S3Server, s3_server

from parts import Parts, node_parts
from support import PUBLIC_URL, TEST_ISSUER, TEST_PASSPORT_POLICY, Passports

os.environ.setdefault("REF_PATH", ":")


def postgres_admin_url() -> str:
    url = os.environ.get("GENOSHARE_TEST_POSTGRES_URL")
    if not url:
        pytest.fail(
            "PostgreSQL tests need GENOSHARE_TEST_POSTGRES_URL; run the suite with `make test`, "
            "which starts PostgreSQL and sets it",
            pytrace=False,
        )
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    admin = make_url(postgres_admin_url())
    name = f"gs_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        _drop_database(engine, name)
        engine.dispose()


def _drop_database(engine: Engine, name: str) -> None:
    """Drop a test database, waiting out an autovacuum worker.

    ``WITH (FORCE)`` ends our own connections, but a worker autovacuum started in the fresh database belongs
    to the server and a non-superuser may not end it: the drop is then refused until the worker is done.
    """
    for attempt in range(40):
        try:
            with engine.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except DBAPIError:
            if attempt == 39:
                raise
            time.sleep(0.25)


@pytest.fixture(scope="session")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> VisaIssuer:
    """A stand-in for an external passport broker: its own key, real ES256 signatures."""
    keys = tmp_path_factory.mktemp("issuer")
    issuer = VisaIssuer.load_or_create(TEST_ISSUER, keys / "issuer.jwk.json")
    issuer.write_jwks(keys / "jwks.json")
    return issuer


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible server process (moto's; ``tests/objects_s3.py`` says why), one per session."""
    with s3_server(tmp_path_factory.mktemp("s3") / "moto.log") as server:
        yield server


@pytest.fixture
def object_store(request: pytest.FixtureRequest) -> str:
    """Where the ``node`` fixture keeps objects: ``file`` (default) or ``s3``.

    Suites that read or write objects run on both with
    ``@pytest.mark.parametrize("object_store", ["file", "s3"], indirect=True)``.
    """
    return str(getattr(request, "param", "file"))


@pytest.fixture
def objects_settings(object_store: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings that put a node's objects in ``object_store`` (a fresh bucket on the S3 server)."""
    if object_store == "file":
        return {}
    server: S3Server = request.getfixturevalue("s3")
    return {"objects_url": f"s3://{server.new_bucket()}/node", "s3": server.settings()}


@pytest.fixture
def node(tmp_path: Path, database_url: str, issuer: VisaIssuer, objects_settings: dict[str, Any]) -> Iterator[Node]:
    jwks = tmp_path / "trusted-jwks.json"
    issuer.write_jwks(jwks)
    settings = load_settings(
        tmp_path / "node",
        database_url=database_url,
        public_url=PUBLIC_URL,
        environment="test",
        trusted_issuers=[TrustedIssuer(issuer=TEST_ISSUER, jwks_file=jwks)],
        passports=TEST_PASSPORT_POLICY,
        **objects_settings,
    )
    node = init_node(settings)
    yield node
    node.close()


@pytest.fixture
def parts(tmp_path: Path, database_url: str) -> Iterator[Parts]:
    """A node's parts without a ``Node`` (``tests/parts.py``): what a service's unit test builds it from."""
    with node_parts(tmp_path, database_url) as made:
        yield made


@pytest.fixture
def client(node: Node) -> Iterator[TestClient]:
    with TestClient(create_app(node)) as test_client:
        yield test_client


@pytest.fixture
def passports(issuer: VisaIssuer) -> Passports:
    return Passports(issuer)
