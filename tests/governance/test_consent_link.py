"""`genoshare consent link` prints a link a participant can open (and its QR code); one link, several datasets."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import segno
from sqlalchemy import select
from test_governance_cli import run

from genoshare.access.consent_tokens import token_hash
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor
from genoshare.store.models import Participant

from governance_support import Cohort

LINK = re.compile(r"consent link for \S+: (\S+/consent/([A-Za-z0-9_-]+))")


def png_modules(path: Path, scale: int, border: int) -> list[list[bool]]:
    """The dark modules of a 1-bit greyscale PNG QR code (filters None and Up, as segno writes them)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, width = 8, b"", 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (1, 0) and width == height
        elif kind == b"IDAT":
            idat += body
    stride = (width + 7) // 8
    raw, rows, previous = zlib.decompress(idat), [], bytes(stride)
    for y in range(width):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        assert line[0] in (0, 2), f"filter {line[0]}"
        row = (
            bytes(line[1:]) if line[0] == 0 else bytes((a + b) & 0xFF for a, b in zip(line[1:], previous, strict=True))
        )
        rows.append(row)
        previous = row
    size = width // scale - 2 * border

    def dark(x: int, y: int) -> bool:
        px, py = (border + x) * scale + scale // 2, (border + y) * scale + scale // 2
        return not (rows[py][px // 8] >> (7 - px % 8)) & 1

    return [[dark(x, y) for x in range(size)] for y in range(size)]


def test_the_link_opens_the_persons_records_in_every_dataset_named(cohort: Cohort, tmp_path: Path) -> None:
    node: Node = cohort.node
    DatasetService(node.database).create(
        NewDataset(
            id="biobank", title="Biobank", custodian="Example Hospital", access_level="controlled", duo_codes=["HMB"]
        )
    )
    copy = tmp_path / "biobank-single.vcf.gz"  # htsget ids are node-wide: the same file under another name
    copy.write_bytes((tmp_path / "single.vcf.gz").read_bytes())
    build_ingestor(node).ingest("biobank", [copy])
    with node.database.sessions() as session:
        other = session.scalar(select(Participant).where(Participant.dataset_id == "biobank"))
    assert other is not None
    pseudonym = cohort.pseudonyms["NA00002"]
    qr = tmp_path / "link.png"
    code, output = run(
        node, "consent", "link", "cohort", pseudonym, "--also", f"biobank:{other.pseudonym}", "--qr", str(qr)
    )
    assert code == 0, output
    found = LINK.search(output)
    assert found, output
    link, secret = found.groups()
    assert link.startswith(f"{node.settings.public_url}/consent/")
    expected = segno.make(link, error="m")
    assert png_modules(qr, 8, 4) == [[bool(v) for v in row] for row in expected.matrix], "the QR code is the link"

    people = node.consent_tokens.people(secret)
    assert {(p.dataset_id, p.pseudonym) for p in people} == {("cohort", pseudonym), ("biobank", other.pseudonym)}

    # A new link replaces the old one: the old secret opens nothing, not even through a session's stored hash.
    code, output = run(node, "consent", "link", "cohort", pseudonym)
    assert code == 0
    assert node.consent_tokens.people_of(token_hash(secret)) == []
    new_secret = LINK.search(output).group(2)  # type: ignore[union-attr]
    assert len(node.consent_tokens.people(new_secret)) == 2, "the person's records stay linked"


def test_a_malformed_also_is_a_one_line_error(cohort: Cohort) -> None:
    code, output = run(cohort.node, "consent", "link", "cohort", cohort.pseudonyms["NA00001"], "--also", "biobank")
    assert code == 1 and "DATASET:PSEUDONYM" in output and "Traceback" not in output
