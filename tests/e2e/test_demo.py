"""The README's first command: `genoshare demo` builds a node whose printed passports work as promised."""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from genoshare.api.app import create_app
from genoshare.demo.setup import COHORT_DATASET, PUBLIC_DATASET, demo_cohort, prepare_demo
from genoshare.node import Node

from processes import run_cli


def test_demo_node_serves_public_and_controlled_data(tmp_path: Path) -> None:
    demo = prepare_demo(tmp_path / "demo", "http://testserver")
    node = Node.open(demo.settings)
    researcher = {"Authorization": f"Bearer {demo.passport_file.read_text().strip()}"}
    with TestClient(create_app(node)) as client:
        public = client.get(f"/ga4gh/drs/v1/objects/{PUBLIC_DATASET}").json()
        assert sorted(item["name"] for item in public["contents"]) == [
            "htsnexus_test_NA12878.bam",
            "htsnexus_test_NA12878.cram",
            "spec-v4.3.bcf",
            "spec-v4.3.vcf.gz",
        ]
        cohort_file = f"/ga4gh/drs/v1/objects/{COHORT_DATASET}.cohort.vcf.gz"
        assert client.get(cohort_file).status_code == 401
        assert client.get(cohort_file, headers=researcher).status_code == 200
        ticket = client.get(
            "/htsget/reads/htsnexus_test_NA12878", params={"referenceName": "11", "start": 4999999, "end": 5010000}
        )
        assert ticket.status_code == 200 and ticket.json()["htsget"]["format"] == "BAM"
        counted = client.get("/api/individuals", params={"requestedGranularity": "count"}, headers=researcher).json()
        assert counted["responseSummary"]["numTotalResults"] >= 100
        # The printed consent link opens that participant's page (and leaves its address at once).
        assert demo.consent_link is not None and demo.consent_link in demo.instructions()
        page = client.get(demo.consent_link.removeprefix("http://testserver"))
        assert page.status_code == 200 and str(page.url) == "http://testserver/portal/consent"
        assert "Your consent" in page.text and "Synthetic cohort" in page.text
    # Running the demo again (another port, same directory) keeps the data and refreshes the passports.
    again = prepare_demo(tmp_path / "demo", "http://127.0.0.1:9999")
    assert again.settings.public_url == "http://127.0.0.1:9999"
    assert node.audit.verify().ok


def test_demo_on_a_taken_port_says_so_at_once(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli("demo", "--data-dir", str(tmp_path / "demo"), "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is taken by another program: choose another (--port, or PORT=... for make "
        "demo)"
    ]
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "demo").exists()  # refused before building anything


def test_the_shipped_demo_cohort_is_what_its_note_says(tmp_path: Path) -> None:
    """data/cohort/SOURCE.txt names the command that made the cohort; it still makes the same people."""
    shipped = demo_cohort()
    command = next(line.strip() for line in (shipped / "SOURCE.txt").read_text().splitlines() if "python -c" in line)
    code = command.removeprefix("python -c ").strip('"').replace("src/genoshare/demo/data/cohort", str(tmp_path))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    for name in ("cohort.vcf.gz", "individuals.tsv"):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(shipped / name, "rb") as ours, opener(tmp_path / name, "rb") as again:
            assert ours.read() == again.read(), f"{name} differs from what SOURCE.txt's command makes"
