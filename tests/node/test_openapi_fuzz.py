"""Property-based run of schemathesis over the node's own OpenAPI: no server error, no response that breaks
the schema it declares, whatever the input.

Schemathesis runs as its users run it, ``schemathesis run`` against a ``genoshare serve`` process, with the
phases its pytest plugin ran (explicit examples, coverage of boundaries and unsupported methods, fuzzing in
positive and negative modes). Not the plugin itself: ``schemathesis.pytest.from_fixture`` renames the running
test through pytest's private ``Function._nodeid``, which pytest 9.2 no longer has (``AttributeError:
'Function' object has no attribute '_nodeid'``, up to schemathesis 4.32.5 at least).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor

from processes import serve
from support import HTSGET_DATA

__all__ = ["serve"]

#: Answers to requests the document allows that are still right to give: no grant (401, 403), an id or
#: assembly not held (404), a bulk request over the server's limit (413).
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "413"]

# htsget's rules across parameters (start <= end, class=header alone, ...) are beyond JSON Schema; the
# document states them, and a request that breaks one is a 400, as the htsget spec says.
[[operations]]
include-path-regex = "^/htsget/(reads|variants)/[{]id[}]$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "413"]

# A clinical variant is any text: the forms the node reads (VCF coordinates, HGVS substitutions) are in the
# description, and one it cannot read is a 400 that says why.
[[operations]]
include-path-regex = "^/clinical/variants$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "413"]
"""


def test_no_server_error_and_responses_match_the_schema(node: Node, serve, tmp_path: Path) -> None:
    service = DatasetService(node.database)
    service.create(
        NewDataset(
            id="open", title="Open", custodian="C", access_level="public", duo_codes=["NRES"], pseudonymise=False
        )
    )
    service.create(NewDataset(id="closed", title="Closed", custodian="C", access_level="controlled", duo_codes=["GRU"]))
    build_ingestor(node).ingest("open", [HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"])
    build_ingestor(node).ingest("closed", [HTSGET_DATA / "bcf" / "spec-v4.3.bcf"])
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color", "run"]
    options = [f"{server.url}/openapi.json", "--phases", "examples,coverage,fuzzing", "--max-examples", "25"]
    # One worker: with two, Hypothesis' ast.parse in two threads hit CPython 3.11's AST recursion-depth race
    # (SystemError: AST constructor recursion depth mismatch, python/cpython#106905).
    options += ["--workers", "1"]
    # A loaded CI machine may answer slowly; a timeout here would be a false failure.
    quiet = ["--suppress-health-check", "all", "--generation-database", "none", "--request-timeout", "60"]
    done = subprocess.run(
        [*command, *options, *quiet], cwd=tmp_path, capture_output=True, text=True, timeout=1200, check=False
    )
    assert done.returncode == 0, done.stdout[-30_000:] + done.stderr[-5_000:]
