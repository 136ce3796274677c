"""Nodes of a test network: each a real data directory with its own synthetic cohort, served by
``genoshare serve``; and the stand-ins of ``stand_ins.py`` (a logging, delaying proxy; a spec-example Beacon).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pysam

from genoshare.access.issuer import VisaIssuer
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import build_ingestor, init_node
from genoshare.settings import TrustedIssuer, load_settings

from processes import free_port
from support import TEST_ISSUER

#: One allele every cohort of the tests holds (with different carriers), GRCh38 coordinates on chr20.
SHARED = {"referenceName": "20", "start": "100000", "referenceBases": "A", "alternateBases": "G"}


def write_cohort(path: Path, samples: list[str], variants: list[tuple[int, str, str]], carriers: int) -> Path:
    """A bgzipped, indexed VCF: ``carriers`` of ``samples`` heterozygous for each of ``variants`` (1-based)."""
    header = [
        "##fileformat=VCFv4.3",
        "##reference=GRCh38",
        "##contig=<ID=20,length=64444167,assembly=GRCh38>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#" + "\t".join(["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]),
    ]
    rows = []
    for position, ref, alt in sorted(variants):
        genotypes = ["0/1" if index < carriers else "0/0" for index in range(len(samples))]
        rows.append("\t".join(["20", str(position), ".", ref, alt, ".", "PASS", ".", "GT", *genotypes]))
    path.write_text("\n".join(header + rows) + "\n")
    return Path(pysam.tabix_index(str(path), preset="vcf", force=True))


def build_node(
    root: Path,
    name: str,
    *,
    access: str,
    samples: int,
    carriers: int,
    committee: str | None = None,
    auto_approve: bool = False,
    **settings: Any,
) -> Path:
    """A node trusting the test issuer, with one dataset ``<name>`` of ``samples`` people at ``access``.

    With a ``committee`` (``subject@issuer``), also a controlled dataset ``<name>-controlled`` of the same
    file, decided by it (at once with ``auto_approve``, for GRU purposes).
    """
    root.mkdir(parents=True, exist_ok=True)
    jwks = root / "issuer-jwks.json"
    VisaIssuer.load_or_create(TEST_ISSUER, root.parent / "issuer.jwk.json").write_jwks(jwks)
    node = init_node(
        load_settings(
            root / "node",
            environment="test",
            node_name=name,
            node_id=f"org.test.{name}",
            trusted_issuers=[TrustedIssuer(issuer=TEST_ISSUER, jwks_file=jwks)],
            **settings,
        )
    )
    people = [f"{name}-{index}" for index in range(samples)]
    # The shared allele (1-based 100001 = Beacon's 0-based start 100000) and one of the cohort's own.
    variants = [(100001, "A", "G"), (200001 + 10 * len(name), "C", "T")]
    vcf = write_cohort(root / f"{name}.vcf", people, variants, carriers)
    DatasetService(node.database).create(
        NewDataset(id=name, title=name, custodian=name, access_level=access, duo_codes=["GRU"], pseudonymise=False)
    )
    build_ingestor(node).ingest(name, [vcf])
    if committee is not None:
        controlled = f"{name}-controlled"
        datasets = DatasetService(node.database)
        datasets.create(
            NewDataset(id=controlled, title=controlled, custodian=name, access_level="controlled", duo_codes=["GRU"])
        )
        datasets.set_committee(controlled, [committee], auto_approve=auto_approve)
        copy = root / f"{controlled}.vcf.gz"  # htsget ids are node-wide: one file name per dataset
        copy.write_bytes(vcf.read_bytes())
        build_ingestor(node).ingest(controlled, [copy])
    node.close()
    return root / "node"


class StandIn:
    """``stand_ins.py`` in its own process; ``log`` is what it printed so far (the proxy's access log)."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, str(Path(__file__).with_name("stand_ins.py")), *args, "--port", str(self.port)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._lines: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("stand-in exited") from None
                time.sleep(0.05)
        raise RuntimeError("stand-in did not start")

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self._lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
