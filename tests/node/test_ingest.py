"""Ingest validates, pseudonymises, encrypts and publishes atomically; bad files lose nothing."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import pysam
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from genoshare.cli.main import app
from genoshare.crypt.files import EncryptedFile
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.errors import Conflict, InvalidInput
from genoshare.ingest.errors import IngestError
from genoshare.node import Node, build_ingestor, build_lifecycle
from genoshare.store.models import ObjectParticipant, Participant

from support import HTSGET_DATA, pseudonyms_by_source

BAM = HTSGET_DATA / "bam" / "htsnexus_test_NA12878.bam"
CRAM = HTSGET_DATA / "cram" / "htsnexus_test_NA12878.cram"
VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"
BCF = HTSGET_DATA / "bcf" / "spec-v4.3.bcf"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_dataset(node: Node, dataset_id: str = "cohort1", pseudonymise: bool = True) -> None:
    DatasetService(node.database).create(
        NewDataset(
            id=dataset_id,
            title="T",
            custodian="C",
            access_level="controlled",
            duo_codes=["GRU"],
            pseudonymise=pseudonymise,
        )
    )


def decrypt(node: Node, blob_key: str) -> bytes:
    with EncryptedFile(node.objects.open(blob_key), node.keys.secret) as stored:
        return b"".join(stored.iter_plaintext())


@pytest.mark.parametrize("object_store", ["file", "s3"], indirect=True)
def test_reads_are_stored_encrypted_and_decrypt_to_the_original(node: Node) -> None:
    make_dataset(node, pseudonymise=False)
    result = build_ingestor(node).ingest("cohort1", [BAM, CRAM])
    rows = {row.format: row for row in result.published}
    assert set(rows) == {"BAM", "CRAM"}
    for fmt, original in (("BAM", BAM), ("CRAM", CRAM)):
        row = rows[fmt]
        assert row.sha256 == sha256(original)
        assert row.md5 == hashlib.md5(original.read_bytes()).hexdigest()
        assert row.size == original.stat().st_size
        stored = node.objects.read_bytes(row.blob_key)
        assert stored.startswith(b"crypt4gh")
        assert original.read_bytes()[:4096] not in stored
        assert decrypt(node, row.blob_key) == original.read_bytes()
        assert node.objects.read_bytes(row.index_key or "")
        assert row.htsget_id == "htsnexus_test_NA12878"


def test_vcf_samples_are_replaced_by_stable_pseudonyms(node: Node, tmp_path: Path) -> None:
    make_dataset(node)
    row = build_ingestor(node).ingest("cohort1", [VCF]).published[0]
    plain = tmp_path / "stored.vcf.gz"
    plain.write_bytes(decrypt(node, row.blob_key))
    with pysam.VariantFile(str(plain)) as stored, pysam.VariantFile(str(VCF)) as original:
        names = list(stored.header.samples)
        assert not {"NA00001", "NA00002", "NA00003"} & set(names)
        assert all(name.startswith("GS") for name in names)
        assert "NA0000" not in str(stored.header)
        assert [(r.chrom, r.pos, r.ref, r.alts) for r in stored] == [(r.chrom, r.pos, r.ref, r.alts) for r in original]
    mapping = pseudonyms_by_source(node, ["NA00001", "NA00002", "NA00003"])
    assert mapping == dict(zip(["NA00001", "NA00002", "NA00003"], names, strict=True))
    # Another dataset gives the same people other pseudonyms: they cannot be linked across datasets.
    make_dataset(node, "cohort2")
    row2 = build_ingestor(node).ingest("cohort2", [BCF]).published[0]
    plain2 = tmp_path / "stored.bcf"
    plain2.write_bytes(decrypt(node, row2.blob_key))
    with pysam.VariantFile(str(plain2)) as stored2:
        assert not set(stored2.header.samples) & set(names)


@pytest.mark.parametrize("original", [BAM, CRAM], ids=["bam", "cram"])
def test_read_group_samples_are_pseudonymised(node: Node, tmp_path: Path, original: Path) -> None:
    make_dataset(node)
    row = build_ingestor(node).ingest("cohort1", [original]).published[0]
    stored = tmp_path / original.name
    stored.write_bytes(decrypt(node, row.blob_key))
    with pysam.AlignmentFile(str(stored)) as kept, pysam.AlignmentFile(str(original)) as source:
        stored_name = kept.header.to_dict()["RG"][0]["SM"]
        assert stored_name.startswith("GS")
        assert "NA12878" not in str(kept.header)
        stored_reads = [(r.query_name, r.reference_start, r.flag) for r in kept.fetch(until_eof=True)]
        source_reads = [(r.query_name, r.reference_start, r.flag) for r in source.fetch(until_eof=True)]
    assert [read[1:] for read in stored_reads] == [read[1:] for read in source_reads]
    renamed = {old[0]: new[0] for old, new in zip(source_reads, stored_reads, strict=True)}
    assert not set(renamed) & set(renamed.values()), "read names (run accessions) must be replaced"
    assert len(set(renamed.values())) == len(renamed), "mates keep one name, other reads keep distinct ones"
    assert "NA12878" not in row.name + row.id + row.htsget_id, "the file name held the sample name"
    with node.database.sessions() as session:
        people = list(session.scalars(select(Participant)))
        links = list(session.scalars(select(ObjectParticipant)))
    assert [p.pseudonym for p in people] == [stored_name]
    assert pseudonyms_by_source(node, ["NA12878"]) == {"NA12878": stored_name}
    assert [(link.object_id, link.participant_id) for link in links] == [(row.id, people[0].id)]


def test_public_data_can_keep_sample_names(node: Node) -> None:
    make_dataset(node, pseudonymise=False)
    row = build_ingestor(node).ingest("cohort1", [VCF]).published[0]
    assert row.sha256 == sha256(VCF)


@pytest.mark.parametrize("object_store", ["file", "s3"], indirect=True)
def test_reingesting_the_same_file_is_a_no_op(node: Node) -> None:
    make_dataset(node, pseudonymise=False)
    build_ingestor(node).ingest("cohort1", [VCF, BAM])
    again = build_ingestor(node).ingest("cohort1", [VCF, BAM])
    assert again.published == []
    assert sorted(again.unchanged) == ["htsnexus_test_NA12878.bam", "spec-v4.3.vcf.gz"]
    assert len(DatasetService(node.database).objects("cohort1")) == 2


@pytest.mark.parametrize("object_store", ["file", "s3"], indirect=True)
def test_an_uncompressed_vcf_is_bgzipped_and_indexed(node: Node, tmp_path: Path) -> None:
    plain = tmp_path / "plain.vcf"
    plain.write_bytes(gzip.decompress(VCF.read_bytes()))
    make_dataset(node, pseudonymise=False)
    row = build_ingestor(node).ingest("cohort1", [plain]).published[0]
    assert row.name == "plain.vcf.gz" and row.index_format == "tbi"
    assert gzip.decompress(decrypt(node, row.blob_key)) == plain.read_bytes()


# -- bad input: one clear error, nothing published --------------------------------------------------------


def corrupt_bgzf(tmp_path: Path) -> Path:
    data = bytearray(VCF.read_bytes())
    for offset in range(200, 260):
        data[offset] ^= 0xFF
    bad = tmp_path / "corrupt.vcf.gz"
    bad.write_bytes(bytes(data))
    return bad


def truncated_bam(tmp_path: Path) -> Path:
    bad = tmp_path / "truncated.bam"
    bad.write_bytes(BAM.read_bytes()[: BAM.stat().st_size // 2])
    return bad


def unsorted_vcf(tmp_path: Path) -> Path:
    lines = gzip.decompress(VCF.read_bytes()).decode().splitlines(keepends=True)
    header = [line for line in lines if line.startswith("#")]
    records = [line for line in lines if not line.startswith("#")]
    text = tmp_path / "unsorted.vcf"
    text.write_text("".join(header + records[::-1]))
    bad = tmp_path / "unsorted.vcf.gz"
    pysam.tabix_compress(str(text), str(bad))
    return bad


def misnamed(tmp_path: Path) -> Path:
    bad = tmp_path / "notes.bam"
    bad.write_text("this is not a BAM file\n")
    return bad


def gzip_not_bgzf(tmp_path: Path) -> Path:
    bad = tmp_path / "plain-gzip.vcf.gz"
    bad.write_bytes(gzip.compress(gzip.decompress(VCF.read_bytes())))
    return bad


@pytest.mark.parametrize(
    ("make_bad", "message"),
    [
        (corrupt_bgzf, "corrupt.vcf.gz"),
        (truncated_bam, "truncated"),
        (unsorted_vcf, "not sorted"),
        (misnamed, "first bytes"),
        (gzip_not_bgzf, "BGZF"),
    ],
)
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_bad_file_publishes_nothing_of_the_batch(
    node: Node, tmp_path: Path, make_bad, message: str, jobs: int
) -> None:
    make_dataset(node)
    bad = make_bad(tmp_path)
    with pytest.raises(InvalidInput, match=message):
        build_ingestor(node).ingest("cohort1", [BAM, bad, VCF], jobs=jobs)
    assert DatasetService(node.database).objects("cohort1") == []
    staging = node.objects.staging_dir()
    assert list(staging.iterdir()) == []


def test_cli_ingest_says_what_is_wrong_in_one_line(node: Node, tmp_path: Path) -> None:
    make_dataset(node)
    bad = truncated_bam(tmp_path)
    result = CliRunner().invoke(
        app,
        ["ingest", "cohort1", str(bad), "--data-dir", str(node.settings.data_dir)],
        env={"GENOSHARE_DATABASE_URL": node.settings.database_url},
    )
    assert result.exit_code == 1
    assert "truncated.bam" in result.output and "truncated" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_cli_lists_objects_with_checksums(node: Node) -> None:
    make_dataset(node, pseudonymise=False)
    runner = CliRunner()
    env = {"GENOSHARE_DATABASE_URL": node.settings.database_url}
    data_dir = str(node.settings.data_dir)
    assert runner.invoke(app, ["ingest", "cohort1", str(BAM), "--data-dir", data_dir], env=env).exit_code == 0
    listed = runner.invoke(app, ["objects", "list", "cohort1", "--json", "--data-dir", data_dir], env=env)
    assert sha256(BAM) in listed.output
    assert '"id": "cohort1.htsnexus_test_NA12878.bam"' in listed.output


def test_ingest_into_an_unknown_dataset_is_refused(node: Node) -> None:
    with pytest.raises(IngestError, match="no such dataset"):
        build_ingestor(node).ingest("nope", [BAM])


def test_keep_bytes_of_a_copy_not_the_source(node: Node, tmp_path: Path) -> None:
    """The steward's file may change or vanish after ingest; the node keeps its own encrypted copy."""
    copy = tmp_path / "htsnexus_test_NA12878.bam"
    shutil.copy(BAM, copy)
    make_dataset(node, pseudonymise=False)
    row = build_ingestor(node).ingest("cohort1", [copy]).published[0]
    copy.unlink()
    assert decrypt(node, row.blob_key) == BAM.read_bytes()


def test_an_htsget_id_taken_by_another_dataset_is_a_clear_conflict(node: Node) -> None:
    make_dataset(node, "cohort1", pseudonymise=False)
    make_dataset(node, "cohort2", pseudonymise=False)
    build_ingestor(node).ingest("cohort1", [BAM])
    with pytest.raises(Conflict, match=r"htsget id 'htsnexus_test_NA12878' .* taken by dataset cohort1"):
        build_ingestor(node).ingest("cohort2", [BAM])
    assert DatasetService(node.database).objects("cohort2") == []


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("##contact=jane.doe@hospital.example.org", "e-mail"),
        ("##patient=123-45-6789", "social security"),
        ("##nhs=943 476 5919", "NHS"),
        ("##DOB=1970-01-01", "date of birth"),
    ],
)
def test_headers_with_direct_identifiers_are_refused(node: Node, tmp_path: Path, line: str, kind: str) -> None:
    lines = gzip.decompress(VCF.read_bytes()).decode().splitlines(keepends=True)
    text = tmp_path / "leaky.vcf"
    text.write_text(lines[0] + line + "\n" + "".join(lines[1:]))
    make_dataset(node)
    with pytest.raises(IngestError, match=kind) as refused:
        build_ingestor(node).ingest("cohort1", [text])
    assert line.split("=", 1)[1] not in refused.value.message, "the error must not repeat the identifier"
    assert DatasetService(node.database).objects("cohort1") == []


def test_sample_names_are_scrubbed_from_every_header_line(node: Node, tmp_path: Path) -> None:
    lines = gzip.decompress(VCF.read_bytes()).decode().splitlines(keepends=True)
    text = tmp_path / "NA00001.vcf"
    text.write_text(lines[0] + "##commandline=bcftools call NA00001.bam NA00002.bam\n" + "".join(lines[1:]))
    make_dataset(node)
    row = build_ingestor(node).ingest("cohort1", [text]).published[0]
    stored = gzip.decompress(decrypt(node, row.blob_key)).decode()
    assert "NA0000" not in stored
    assert "NA0000" not in row.name


def two_sample_bam(path: Path, read_groups: list[str | None]) -> Path:
    """Reads of two samples; ``read_groups`` is each read's RG tag (None: no tag)."""
    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": "chr1", "LN": 10_000}],
        "RG": [{"ID": "a", "SM": "S1"}, {"ID": "b", "SM": "S2"}],
    }
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for number, group in enumerate(read_groups):
            read = pysam.AlignedSegment(out.header)
            read.query_name, read.reference_id, read.reference_start = f"r{number}", 0, 100 * number
            read.cigarstring, read.query_sequence = "10M", "ACGTACGTAC"
            read.query_qualities = pysam.qualitystring_to_array("I" * 10)
            if group is not None:
                read.set_tag("RG", group)
            out.write(read)
    return path


@pytest.mark.parametrize(
    ("groups", "message"),
    [(["a", "b", "S1"], "does not declare"), (["a", None, "b"], "without an RG tag")],
    ids=["undeclared", "untagged"],
)
def test_reads_no_sample_can_own_are_refused(node: Node, tmp_path: Path, groups: list, message: str) -> None:
    """A withdrawal could not drop such reads by their read group: they are refused at ingest."""
    make_dataset(node)
    with pytest.raises(IngestError, match=rf"record \d\): .*{message}"):
        build_ingestor(node).ingest("cohort1", [two_sample_bam(tmp_path / "mixed.bam", groups)])
    assert DatasetService(node.database).objects("cohort1") == []


def test_what_a_failing_store_took_before_it_failed_is_left_to_the_sweep(node: Node) -> None:
    """The file's bytes are stored, then its index cannot be: nothing is published, and nothing stays unrecorded."""
    make_dataset(node, pseudonymise=False)
    obstacle = node.objects.staging_dir().parent / "indexes"
    obstacle.write_text("a file where the store keeps its index folders")
    with pytest.raises(OSError):
        build_ingestor(node).ingest("cohort1", [BAM])
    assert DatasetService(node.database).objects("cohort1") == []
    [stored] = node.objects.keys("blobs/")
    obstacle.unlink()  # the store works again
    swept = build_lifecycle(node).sweep("steward")
    assert stored in swept.done and swept.left == []
    assert node.objects.keys("blobs/") == []
