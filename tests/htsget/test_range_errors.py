"""Bad requests and bad files end in the spec's errors, never in a crash or a wrong answer."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from htsget_oracle import DEMO_DATASETS, Dataset

from genoshare.formats import FileFormat
from genoshare.htsget.errors import (
    CorruptFile,
    HtsgetError,
    InvalidAuthentication,
    InvalidInput,
    InvalidRange,
    NotFound,
    PermissionDenied,
    UnsupportedFormat,
)
from genoshare.htsget.ranges import IndexCache, region_blocks

BY_NAME = {ds.name: ds for ds in DEMO_DATASETS}
BAM = BY_NAME["demo-bam"]
CRAM = BY_NAME["demo-cram"]
VCF = BY_NAME["demo-vcf-spec"]
BCF = BY_NAME["demo-bcf-spec"]


def test_error_table_matches_the_spec() -> None:
    table = {
        InvalidAuthentication: (401, "InvalidAuthentication"),
        PermissionDenied: (403, "PermissionDenied"),
        NotFound: (404, "NotFound"),
        UnsupportedFormat: (400, "UnsupportedFormat"),
        InvalidInput: (400, "InvalidInput"),
        InvalidRange: (400, "InvalidRange"),
    }
    for cls, (status, name) in table.items():
        error = cls("boom")
        assert isinstance(error, HtsgetError)
        assert (error.http_status, error.htsget_error, error.message) == (status, name, "boom")
    assert issubclass(CorruptFile, InvalidInput)


@pytest.mark.parametrize(
    ("ds", "reference", "start", "end", "error"),
    [
        (BAM, "11", 200, 100, InvalidRange),
        (VCF, "20", 20_000, 10_000, InvalidRange),
        (BAM, None, 100, None, InvalidInput),
        (BAM, None, None, 100, InvalidInput),
        (BAM, "*", 0, 100, InvalidInput),
        (CRAM, "*", None, 5, InvalidInput),
        (BAM, "11", -1, 100, InvalidInput),
        (BAM, "11", 0, 2**32, InvalidInput),
        (BAM, "chr11", None, None, NotFound),
        (CRAM, "nope", 0, 10, NotFound),
        (VCF, "21", None, None, NotFound),
        (BCF, "*", None, None, NotFound),
    ],
)
def test_bad_requests(ds: Dataset, reference: str | None, start: int | None, end: int | None, error: type) -> None:
    with pytest.raises(error):
        region_blocks(ds.fmt, ds.data, ds.index, reference, start, end, cache=IndexCache())


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="SAM"):
        region_blocks("SAM", BAM.data, BAM.index)  # type: ignore[arg-type]


def test_missing_files_are_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        region_blocks(BAM.fmt, tmp_path / "absent.bam", BAM.index, "11")
    with pytest.raises(NotFound):
        region_blocks(BAM.fmt, BAM.data, tmp_path / "absent.bai", "11")


def _damaged(tmp_path: Path, source: Path, content: bytes) -> Path:
    target = tmp_path / source.name
    target.write_bytes(content)
    return target


def _index_damages(index: bytes) -> dict[str, bytes]:
    return {
        "empty": b"",
        "garbage": b"\x00\x01not an index at all" * 10,
        "first-half": index[: len(index) // 2],
        "all-but-last-byte": index[:-1],
        "wrong-magic": b"XXX\1" + index[4:],
    }


@pytest.mark.parametrize("ds", [BAM, VCF, BCF, CRAM], ids=lambda ds: ds.name)
@pytest.mark.parametrize("damage", list(_index_damages(b"0123456789")))
def test_corrupt_index_is_invalid_input(ds: Dataset, damage: str, tmp_path: Path) -> None:
    raw = ds.index.read_bytes()
    binary_inside = ds.fmt is not FileFormat.CRAM  # a cut CRAI text line can still be valid text
    if raw[:2] == b"\x1f\x8b" and binary_inside and damage in ("first-half", "all-but-last-byte", "wrong-magic"):
        # Damage the inflated content too, so the test is not only about a broken gzip member.
        inflated = gzip.decompress(raw)
        damaged = _index_damages(inflated)[damage]
        content = gzip.compress(damaged) if damage != "first-half" else raw[: len(raw) // 2]
    else:
        content = _index_damages(raw)[damage]
    index = _damaged(tmp_path, ds.index, content)
    contig = "11" if ds.fmt.is_reads else "20"
    with pytest.raises(InvalidInput):
        region_blocks(ds.fmt, ds.data, index, contig, 0, 100_000_000, cache=IndexCache())


def test_index_of_the_wrong_kind_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        region_blocks(FileFormat.BAM, BAM.data, VCF.index, "11", cache=IndexCache())
    with pytest.raises(InvalidInput):
        region_blocks(FileFormat.BCF, BCF.data, VCF.index, "20", cache=IndexCache())


@pytest.mark.parametrize("ds", [BAM, VCF, BCF, CRAM], ids=lambda ds: ds.name)
def test_corrupt_data_file_is_invalid_input(ds: Dataset, tmp_path: Path) -> None:
    raw = ds.data.read_bytes()
    for content in (b"", b"definitely not genomics" * 50, raw[:30]):
        data = _damaged(tmp_path, ds.data, content)
        with pytest.raises(InvalidInput):
            region_blocks(ds.fmt, data, ds.index, None, cache=IndexCache())


def test_data_in_another_format_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        region_blocks(FileFormat.BAM, VCF.data, BAM.index, "11", cache=IndexCache())
    with pytest.raises(InvalidInput):
        region_blocks(FileFormat.VCF, BAM.data, VCF.index, "20", cache=IndexCache())


def test_crai_pointing_outside_the_body_is_invalid_input(tmp_path: Path) -> None:
    lines = gzip.decompress(CRAM.index.read_bytes()).decode().splitlines()
    fields = lines[0].split("\t")
    fields[3] = str(CRAM.data.stat().st_size + 10)
    index = _damaged(tmp_path, CRAM.index, gzip.compress(("\t".join(fields) + "\n").encode()))
    with pytest.raises(InvalidInput):
        region_blocks(CRAM.fmt, CRAM.data, index, "11", cache=IndexCache())


def test_cache_notices_a_replaced_index(tmp_path: Path) -> None:
    """A file replaced in place must not be answered from the stale parsed index."""
    data = tmp_path / BAM.data.name
    index = tmp_path / BAM.index.name
    shutil.copy(BAM.data, data)
    shutil.copy(BAM.index, index)
    cache = IndexCache(maxsize=4)
    assert len(region_blocks(BAM.fmt, data, index, "11", cache=cache)) > 2
    index.write_bytes(BAM.index.read_bytes()[:100])
    with pytest.raises(InvalidInput):
        region_blocks(BAM.fmt, data, index, "11", cache=cache)
