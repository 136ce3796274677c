"""The SAM-defined tags a de-identified BAM/CRAM keeps hold only what the specification lets them hold.

Red-team finding: the record rewrite kept every tag the SAM specification names, whatever it held, so
``MI:Z:john.doe@example.org``, ``BC:Z:JOHN DOE 555-123-4567`` and ``QT:Z:MRN 12345678`` were published
unchanged, as were locally defined integer tags (``xn:i:555123456``) and the ``@RG`` fields ``CN``, ``PM``
and ``DT``.  Now ``MI`` is hashed like read names, local tags of any type go, ``@RG`` keeps only fields
that cannot name anyone, and a defined tag that breaks its alphabet is refused at ingest.

Attacked through a real ``genoshare serve``: the served bytes are decoded with pysam and searched.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pysam
import pytest
from sqlalchemy import func, select
from test_read_deidentification import download, public_dataset, sam_text

from genoshare.ingest.errors import IngestError
from genoshare.node import Node, build_ingestor
from genoshare.store.models import DataObject

REFERENCE = "ACGTTGCA" * 50
GROUP = {"ID": "rg1", "SM": "jdoe", "PL": "ILLUMINA", "CN": "St Elsewhere Genomics", "PM": "ward nine MiSeq"}
SECRETS = ("john.doe@example.org", "example.org", "555123456", "Elsewhere", "ward nine", "2016-05-10")
BARCODE, BARCODE_QUALITY, UMI = "ACGTACGT", "IIIIHHHH", "ACGT-TTGA"


def write_bam(path: Path, group: dict[str, str] = GROUP, **tags: tuple[str, str]) -> None:
    """Ten pairs tagged as a UMI-aware pipeline would, plus the finding's values; ``tags`` override one."""
    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": "chr1", "LN": len(REFERENCE)}],
        "RG": [group | {"DT": "2016-05-10", "DS": "ward nine cohort"}],
    }
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for number in range(20):
            read = pysam.AlignedSegment(out.header)
            pair, mate = divmod(number, 2)
            read.query_name = f"jdoe:{pair}"
            read.flag = 99 if mate == 0 else 147
            read.reference_id = read.next_reference_id = 0
            read.reference_start = read.next_reference_start = 10 * pair
            read.mapping_quality, read.cigarstring = 60, "50M"
            read.query_sequence = REFERENCE[10 * pair : 10 * pair + 50]
            read.query_qualities = pysam.qualitystring_to_array("I" * 50)
            values = {
                "RG": ("rg1", "Z"),
                "MI": (f"john.doe@example.org/{pair}/{'AB'[mate]}", "Z"),
                "BC": (BARCODE, "Z"),
                "QT": (BARCODE_QUALITY, "Z"),
                "RX": (UMI, "Z"),
                "xn": (555123456, "i"),
                "XP": (555123456, "i"),
                "NM": (0, "i"),
            } | tags
            read.set_tags([(tag, value, kind) for tag, (value, kind) in values.items()])
            out.write(read)


def test_free_form_and_local_tags_never_reach_the_served_file(node: Node, serve, tmp_path: Path) -> None:
    source = tmp_path / "jdoe.bam"
    write_bam(source)
    public_dataset(node)
    row = build_ingestor(node).ingest("reads", [source]).published[0]
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    served = tmp_path / "served.bam"
    with httpx.Client(timeout=30) as http:
        assert download(http, server.url, row.id, served).status_code == 200

    text, records = sam_text(served)
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"reached the served file: {leaked}"
    with pysam.AlignmentFile(str(served), require_index=False) as reads:
        (group,) = reads.header.to_dict()["RG"]
    assert set(group) == {"ID", "SM", "PL"}, "CN, PM, DT and DS can name a place, a person or a day"
    assert len(records) == 20
    for read in records:
        kept = {tag for tag, _ in read.get_tags()}
        assert kept == {"RG", "MI", "BC", "QT", "RX", "NM"}, "local tags (xn, XP) go, whatever their type"
        # Barcodes and their qualities hold only bases and quality characters: kept as they were.
        assert (read.get_tag("BC"), read.get_tag("QT"), read.get_tag("RX")) == (BARCODE, BARCODE_QUALITY, UMI)
    # MI is opaque now, yet still groups the reads of one molecule, and duplex strands keep /A and /B.
    molecules = Counter(str(read.get_tag("MI")).rsplit("/", 1)[0] for read in records)
    assert len(molecules) == 10 and set(molecules.values()) == {2}
    assert {str(read.get_tag("MI"))[-2:] for read in records} == {"/A", "/B"}


@pytest.mark.parametrize(
    ("tag", "value", "kind"),
    [
        ("BC", "JOHN DOE 555-123-4567", "Z"),
        ("QT", "MRN 12345678", "Z"),
        ("CB", "ACGT-johndoe", "Z"),
        ("NM", "John Doe", "Z"),
        ("SA", "John Doe,1,+,50M,60,0;", "Z"),
    ],
    ids=lambda value: str(value)[:12],
)
def test_a_defined_tag_outside_its_alphabet_is_refused(
    node: Node, tmp_path: Path, tag: str, value: str, kind: str
) -> None:
    source = tmp_path / "jdoe.bam"
    write_bam(source, **{tag: (value, kind)})
    public_dataset(node)
    with pytest.raises(IngestError) as refused:
        build_ingestor(node).ingest("reads", [source])
    message = str(refused.value)
    # One line saying what (the tag), where (file and record) and how to fix it, without the value itself.
    assert "\n" not in message and f"tag {tag}" in message and "jdoe.bam (record 1)" in message
    assert f"--remove-tag {tag}" in message and value not in message
    with node.database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(DataObject)) == 0, "nothing of it is published"


def test_a_read_group_platform_outside_the_specification_is_refused(node: Node, tmp_path: Path) -> None:
    source = tmp_path / "jdoe.bam"
    write_bam(source, GROUP | {"PL": "ward nine MiSeq"})
    public_dataset(node)
    with pytest.raises(IngestError, match=r"^jdoe\.bam \(@RG line 1\): field PL does not hold one of") as refused:
        build_ingestor(node).ingest("reads", [source])
    assert "ward nine" not in str(refused.value)
