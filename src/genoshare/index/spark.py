"""Builds the variant index on Apache Spark: one task per region of the input, one index file per task.

The driver splits the (bgzipped, tabix/CSI-indexed) VCF/BCF by contig, and a contig with many records into
position ranges of about `records_per_task` records each, from the record counts its index keeps
(`bcftools index --stats`) and the contig lengths its header declares. Each task reads its region through the
index (pysam's bcftools, or cyvcf2 for inputs bcftools cannot write as BCF) and writes its rows with the very
code of the one-process build (`genoshare.index.build.write_index_file`), so the rows, their order, the schema
and the file metadata are those of `variants.arrow`; only their split into files differs.

Parts land in a fresh ``parts-<token>/contig=<name>/pos=<start>.arrow`` tree beside where
``variants.arrow`` would be, and nothing serves them until the driver writes the manifest
(`schema.MANIFEST`, one atomic rename) naming them in order: a failed or killed job leaves no manifest and its
parts are deleted. The Beacon's database row, written after, is what publishes the index to queries.

Every task must see the input and the output directory at the same path: true in local mode; on a cluster,
the node's data and scratch directories are on a shared file system (docs/scale.md).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pysam
from pysam import bcftools

from genoshare.index.bcf import BcfError, BcfStream, Cyvcf2Source, Region, UndeclaredInHeader
from genoshare.index.build import (
    INDEX_FILE,
    PARQUET_INDEX_FILE,
    IndexSummary,
    build_variant_index,
    write_index_file,
)
from genoshare.index.schema import FORMAT, MANIFEST

if TYPE_CHECKING:
    from pyspark import Broadcast
    from pyspark.sql import SparkSession

#: htslib's largest position (2^31 - 2, 0-based).
_MAX_POSITION = (1 << 31) - 1
#: Spark properties every session gets unless the operator's ``[spark] conf`` says otherwise.
_DEFAULT_CONF = {
    "spark.ui.showConsoleProgress": "false",
    "spark.ui.enabled": "false",
    "spark.task.maxFailures": "1",  # a region that fails to parse fails again: report it at once
}


def spark_session(master: str, conf: Mapping[str, str]) -> SparkSession:
    """The process's Spark session (started once; later calls return it).

    In local mode the Python workers run this interpreter, so they import this very genoshare; on a cluster
    ``spark.pyspark.python`` must name an interpreter with genoshare installed on every worker.
    """
    from pyspark.sql import SparkSession

    _check_java()
    settings = dict(_DEFAULT_CONF)
    if master.startswith("local"):
        settings["spark.pyspark.python"] = sys.executable
    settings.update(conf)
    builder = SparkSession.builder.master(master).appName("genoshare-ingest")
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _check_java() -> None:
    """Spark's launcher script would print two shell errors and Spark a third; say what is missing instead."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and not os.access(Path(java_home) / "bin" / "java", os.X_OK):
        raise ValueError(f"Spark needs Java 17: JAVA_HOME={java_home} has no bin/java")
    if not java_home and shutil.which("java") is None:
        raise ValueError("Spark needs Java 17: no java on PATH (Debian: apt-get install openjdk-17-jre-headless)")


def plan_regions(path: Path, records_per_task: int) -> list[Region]:
    """Regions that tile every contig with records, in the index's contig order, ~`records_per_task` records each.

    The index counts each contig's records (``bcftools index --stats``) and finds where its first and last
    record start (a few seeks); a contig with more records than a task takes is cut into equal position
    ranges over that span, which hold equal record counts as far as variants are spread evenly.
    """
    try:
        stats = str(bcftools.index("--stats", str(path)))
        regions = []
        with pysam.VariantFile(str(path)) as reader:
            for line in stats.splitlines():
                contig, _, count = line.split("\t")
                pieces = math.ceil(int(count) / records_per_task)
                if pieces <= 1:
                    regions.append(Region(str(path), contig))
                    continue
                first, last = _span(reader, contig)
                step = math.ceil((last + 1 - first) / pieces)
                cuts = [first + k * step for k in range(1, pieces)]
                ends: list[int | None] = [*cuts, None]
                regions.extend(Region(str(path), contig, lo, hi) for lo, hi in zip([0, *cuts], ends, strict=True))
    except (OSError, ValueError, pysam.utils.SamtoolsError) as error:
        raise ValueError(f"cannot split {path.name} by its index: {_one_line(error)}") from error
    return regions


def _ensure_index(path: Path) -> None:
    """A CSI index beside the file, unless one is there: ingest has moved the file's own into the store by now.

    One pass that parses only CHROM and POS, a small part of the build's cost (docs/scale.md).
    """
    if any(path.with_name(path.name + suffix).is_file() for suffix in (".csi", ".tbi")):
        return
    try:
        bcftools.index("--csi", "--force", str(path), catch_stdout=False)
    except pysam.utils.SamtoolsError as error:
        raise ValueError(f"cannot index {path.name} by position (bgzipped, sorted?): {_one_line(error)}") from error


def _span(reader: pysam.VariantFile, contig: str) -> tuple[int, int]:
    """Where the contig's first and last records start: a binary search of index seeks."""

    def starts_at_or_after(position: int) -> int | None:
        # Records overlapping the position come first; skip them to the first one starting there or later.
        return next((r.start for r in reader.fetch(contig, position) if r.start >= position), None)

    first = starts_at_or_after(0)
    if first is None:
        return 0, 0
    lo, hi = first, _MAX_POSITION  # a record starts at or after lo; none starts at or after hi
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if starts_at_or_after(middle) is None:
            hi = middle
        else:
            lo = middle
    return first, lo


@dataclass(frozen=True)
class _Part:
    """What one task wrote (`file` relative to the parts directory), or the one-line reason it could not."""

    region: Region
    file: str = ""
    n_records: int = 0
    n_rows: int = 0
    n_samples: int = 0
    contigs: tuple[str, ...] = ()
    error: str = ""


def _index_region(parts_dir: str, source_name: str, numbers: Broadcast[dict[str, int]], region: Region) -> _Part:
    """One Spark task: the region's rows as one index file. Errors come back as data, not as a Java trace."""
    relative = f"contig={quote(region.contig, safe='')}/pos={region.start:012d}.arrow"
    target = Path(parts_dir) / relative
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        try:
            with BcfStream(region) as stream:
                written = write_index_file(stream, source_name, target, numbers.value)
        except UndeclaredInHeader:
            with Cyvcf2Source(region) as reader:
                written = write_index_file(reader, source_name, target, numbers.value)
    except (BcfError, OSError, ValueError) as error:
        target.unlink(missing_ok=True)
        return _Part(region, error=f"{region.spec}: {_one_line(error)}")
    os.chmod(target, 0o600)  # carrier bitmaps: the genotype matrix, for the node's user only
    return _Part(region, relative, written.n_records, written.n_rows, written.n_samples, written.contigs)


class SparkIndexBuilder:
    """`build_variant_index` on Spark, with the same signature, for `BeaconIndexer`'s ``build``."""

    def __init__(self, session: Callable[[], SparkSession], records_per_task: int) -> None:
        #: Called once a build needs Spark: a JVM starts only when a VCF/BCF is indexed.
        self._session = session
        self.records_per_task = records_per_task

    def __call__(
        self, vcf_path: Path | str, out_dir: Path | str, sample_numbers: Mapping[str, int] | None = None
    ) -> IndexSummary:
        began = time.perf_counter()
        source, out = Path(vcf_path), Path(out_dir)
        _ensure_index(source)
        regions = plan_regions(source, self.records_per_task)
        if not regions:  # no records: the one-process build writes the same empty file in no time
            return build_variant_index(source, out, sample_numbers)
        if sample_numbers is None:
            with pysam.VariantFile(str(source)) as reader:
                sample_numbers = {name: i for i, name in enumerate(reader.header.samples)}
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        parts_dir = out / f"parts-{uuid.uuid4().hex[:12]}"
        parts_dir.mkdir(mode=0o700)
        try:
            parts = self._run(regions, parts_dir, source.name, dict(sample_numbers))
            failed = [part.error for part in parts if part.error]
            if failed:
                raise ValueError(f"{len(failed)} of {len(parts)} regions failed, first {failed[0]}")
            # Empty regions leave no file, but an index keeps one (its schema and sample set) if all are empty.
            kept = [part for part in parts if part.n_rows] or parts[:1]
            for part in parts:
                if part not in kept:
                    (parts_dir / part.file).unlink()
            contigs = list(dict.fromkeys(c for part in parts for c in part.contigs))
            n_records, n_rows = sum(part.n_records for part in parts), sum(part.n_rows for part in parts)
            manifest = {
                "format": FORMAT,
                "source": source.name,
                "parts": [f"{parts_dir.name}/{part.file}" for part in kept],
                "n_records": n_records,
                "n_rows": n_rows,
                "contigs": contigs,
            }
            partial_manifest = out / (MANIFEST + ".partial")
            partial_manifest.write_text(json.dumps(manifest, indent=1))
            os.chmod(partial_manifest, 0o600)
            os.replace(partial_manifest, out / MANIFEST)
        except BaseException:
            shutil.rmtree(parts_dir, ignore_errors=True)
            raise
        _remove_unpublished(out, keep=parts_dir.name)
        return IndexSummary(
            path=out / MANIFEST,
            n_records=n_records,
            n_rows=n_rows,
            n_samples=parts[0].n_samples,
            contigs=tuple(contigs),
            bytes_read=source.stat().st_size,
            seconds=time.perf_counter() - began,
        )

    def _run(self, regions: list[Region], parts_dir: Path, source_name: str, numbers: dict[str, int]) -> list[_Part]:
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        try:
            context = self._session().sparkContext
            shared = context.broadcast(numbers)  # once per executor, not once per task: 10^5 names add up
            try:
                task = partial(_index_region, str(parts_dir), source_name, shared)
                return context.parallelize(regions, len(regions)).map(task).collect()
            finally:
                shared.unpersist()
        except (Py4JError, PySparkException) as error:
            # No Java, an unreachable master, lost executors: the cause's first line, not a Java stack trace.
            raise ValueError(f"Spark failed: {_one_line(str(error).strip().splitlines()[0])}") from error


def _remove_unpublished(out: Path, keep: str) -> None:
    """Earlier builds' parts and a one-process index in the same directory: the manifest names neither."""
    (out / INDEX_FILE).unlink(missing_ok=True)
    (out / PARQUET_INDEX_FILE).unlink(missing_ok=True)
    for stale in out.glob("parts-*"):
        if stale.name != keep:
            shutil.rmtree(stale, ignore_errors=True)


def _one_line(error: BaseException | str) -> str:
    """One line of an htslib, bcftools or Spark message, which spans several: the CLI and logs show one."""
    return " ".join(str(error).split())
