"""The institution's own ids of its patients, attacked by reading the node's database.

Issue 18 (must-have 6): the hospital's id of a person (the sample name in its files) must not be in the
database in the clear, since a copy of the database (a backup, a replica, a stolen disk) is the likeliest leak:
after an ingest, and after `genoshare db upgrade` of a node made by a release that kept the names in a column
(the freed pages of the SQLite file included). `genoshare consent find DATASET SOURCE_ID` still goes from the
id to the pseudonym; a wrong id is one line and exit 1; no API serves the id or its hash.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from alembic import command
from pysam import bcftools
from sqlalchemy import MetaData, create_engine, select, text

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.ingest.deidentify import Pseudonymiser
from genoshare.node import PSEUDONYM_KEY_FILE, Node, build_ingestor, init_node
from genoshare.settings import load_settings
from genoshare.store.db import alembic_config

from processes import Server, run_cli
from support import HTSGET_DATA, PUBLIC_URL

pytestmark = pytest.mark.slow

VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"
#: Hospital ids, as a hospital writes them: none of them may be found in the database.
SOURCE_IDS = {"NA00001": "HOSP7731ZQ", "NA00002": "HOSP2210KX", "NA00003": "HOSP5582WV"}
#: The release that kept the sample names in ``participants.source_name``.
BEFORE = "0010"


def hospital_vcf(tmp_path: Path) -> Path:
    """The spec VCF with the hospital's ids as sample names, under a file name that names no one."""
    names = tmp_path / "names.txt"
    names.write_text("".join(f"{old} {new}\n" for old, new in SOURCE_IDS.items()))
    target = tmp_path / "cohort.vcf.gz"
    bcftools.reheader("-s", str(names), "-o", str(target), str(VCF), catch_stdout=False)
    return target


def database_text(url: str) -> str:
    """Every value of every table, as text: what a copy of the database holds."""
    engine = create_engine(url)
    try:
        tables = MetaData()
        tables.reflect(engine)
        with engine.connect() as connection:
            return json.dumps(
                {
                    name: [list(map(str, row)) for row in connection.execute(select(table))]
                    for name, table in tables.tables.items()
                }
            )
    finally:
        engine.dispose()


def sqlite_files(url: str) -> bytes:
    path = url.removeprefix("sqlite:///")
    return b"".join(
        Path(f"{path}{suffix}").read_bytes() for suffix in ("", "-wal", "-shm") if Path(f"{path}{suffix}").exists()
    )


def leaked(url: str) -> list[str]:
    """The source ids found in the database's rows, or (SQLite) anywhere in its files, freed pages included."""
    found = [name for name in SOURCE_IDS.values() if name in database_text(url)]
    if url.startswith("sqlite"):
        raw = sqlite_files(url)
        found += [name for name in SOURCE_IDS.values() if name.encode() in raw]
    return found


@pytest.fixture
def cohort_node(tmp_path: Path, database_url: str) -> Node:
    node = init_node(load_settings(tmp_path / "node", database_url=database_url, public_url=PUBLIC_URL))
    DatasetService(node.database).create(
        NewDataset(id="cohort", title="Cohort", custodian="Example Hospital", access_level="public", duo_codes=["NRES"])
    )
    build_ingestor(node).ingest("cohort", [hospital_vcf(tmp_path)])
    node.database.dispose()
    return node


def find(node: Node, source_id: str) -> tuple[int, str, str]:
    env = {"GENOSHARE_DATABASE_URL": node.settings.database_url}
    done = run_cli("consent", "find", "cohort", source_id, "--json", "-d", str(node.settings.data_dir), env=env)
    return done.returncode, done.stdout, done.stderr


def test_the_database_holds_no_source_id_and_consent_find_still_finds_each(
    cohort_node: Node, serve: type[Server]
) -> None:
    node = cohort_node
    assert leaked(node.settings.database_url) == []
    ids = Pseudonymiser((node.settings.keys_dir / PSEUDONYM_KEY_FILE).read_bytes())
    for source_id in SOURCE_IDS.values():
        code, out, err = find(node, source_id)
        assert code == 0, err
        assert json.loads(out)["pseudonym"] == ids.pseudonym("cohort", source_id)
    code, out, err = find(node, "HOSP0000AA")
    assert code == 1 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "no participant of cohort has that source id" in err, err

    # No API hands out an id, nor the hash the database keeps of it (which would let one test guesses).
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    hashes = [ids.source_key("cohort", source_id) for source_id in SOURCE_IDS.values()]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        answers = [client.get("/api/individuals"), client.get("/ga4gh/drs/v1/objects/cohort")]
        bundle = answers[1].json()
        for entry in bundle["contents"]:
            answers.append(client.get(f"/ga4gh/drs/v1/objects/{entry['id']}"))
            access = client.get(f"/ga4gh/drs/v1/objects/{entry['id']}/access/https").json()
            headers = dict(line.split(": ", 1) for line in access.get("headers", []))
            answers.append(client.get(access["url"].removeprefix(server.url), headers=headers))
    assert all(answer.status_code == 200 for answer in answers), [a.status_code for a in answers]
    served = b"".join(answer.content for answer in answers)
    for secret in [*SOURCE_IDS.values(), *hashes]:
        assert secret.encode() not in served
    server.stop()


def test_upgrading_an_old_node_removes_the_source_ids_from_the_database(cohort_node: Node) -> None:
    node = cohort_node
    url = node.settings.database_url
    ids = Pseudonymiser((node.settings.keys_dir / PSEUDONYM_KEY_FILE).read_bytes())
    # The node as the previous release left it: the names in participants.source_name, in the clear.
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.downgrade(config, BEFORE)
        with engine.begin() as connection:
            for source_id in SOURCE_IDS.values():
                connection.execute(
                    text("UPDATE participants SET source_name = :name WHERE pseudonym = :pseudonym"),
                    {"name": source_id, "pseudonym": ids.pseudonym("cohort", source_id)},
                )
    finally:
        engine.dispose()
    assert set(leaked(url)) == set(SOURCE_IDS.values()), "the old node holds the names: the test can fail"
    env = {"GENOSHARE_DATABASE_URL": url}
    code, _, err = find(node, SOURCE_IDS["NA00001"])
    assert code == 1 and "genoshare db upgrade" in err, "an old node is refused until it is upgraded"

    upgraded = run_cli("db", "upgrade", "-d", str(node.settings.data_dir), env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert leaked(url) == [], "the names are gone from the rows and from the database's files"
    for source_id in SOURCE_IDS.values():
        code, out, err = find(node, source_id)
        assert code == 0 and json.loads(out)["pseudonym"] == ids.pseudonym("cohort", source_id), err
