"""Stages the files of one ingest in a bounded set of worker processes (``genoshare ingest --jobs N``).

Staging is CPU-bound (htslib decoding every record, Crypt4GH, checksums) and much of it holds the GIL, so
files are staged side by side in processes, not threads.  Each worker stages one file at a time with
``genoshare.ingest.staging.stage_file``, the code the serial path runs, and sends back what it staged; the
ingesting process publishes them all in one transaction, in the order the steward named the files (the
order people are numbered in), or publishes nothing.

Not ``concurrent.futures``: when one file fails, or at Ctrl-C, the other files' staging must stop at once (its
work is thrown away anyway), and a worker that dies (killed, out of memory) must be reported by the file it
was staging; Python 3.11's executor can neither kill its workers nor say which task a dead worker held.

Workers are started with ``spawn`` (the ingesting process has threads: a progress display, database
pools), ignore Ctrl-C (the ingesting process stops them), and die with the ingesting process, ``kill -9``
included, so nothing writes into staging after it is gone; what they wrote there is swept by the next ingest
(``ObjectStore.sweep_staging``).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path

from genoshare.errors import GenoshareError
from genoshare.ingest.errors import IngestError
from genoshare.ingest.staging import StageContext, StagedFile, StageProgress, Unchanged, stage_file

Outcome = StagedFile | Unchanged
#: The default of ``--jobs``: one worker per core, at most four (beyond that a file system, not cores, bounds).
MAX_DEFAULT_JOBS = 4
_PR_SET_PDEATHSIG = 1


def default_jobs() -> int:
    """The cores this process may use (its affinity, which containers set), at most ``MAX_DEFAULT_JOBS``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_JOBS))


def stage_all(
    context: StageContext, paths: Sequence[Path], known: Collection[str], jobs: int, progress: StageProgress | None
) -> list[Outcome]:
    """Stage every file, ``jobs`` at a time; the outcomes in the order of ``paths``.

    ``known`` holds the checksums of the dataset's sources: those files come back :class:`Unchanged`. The
    first failure stops the other files' staging and is raised here, as the serial path raises it.
    """
    if jobs <= 1 or len(paths) <= 1:
        outcomes: list[Outcome] = []
        seen = set(known)
        for path in paths:
            outcomes.append(stage_file(context, path, seen, progress))
            seen.add(outcomes[-1].source_sha256)
        return outcomes
    return _in_workers(context, paths, known, min(jobs, len(paths)), progress)


@dataclass
class _Worker:
    process: BaseProcess
    connection: Connection
    #: The index (in ``paths``) of the file it is staging, or None when idle.
    task: int | None = None


def _in_workers(
    context: StageContext, paths: Sequence[Path], known: Collection[str], jobs: int, progress: StageProgress | None
) -> list[Outcome]:
    spawn = multiprocessing.get_context("spawn")
    outcomes: dict[int, Outcome] = {}
    waiting = list(range(len(paths)))[::-1]
    workers: list[_Worker] = []
    try:
        for _ in range(jobs):
            ours, theirs = spawn.Pipe()
            process = spawn.Process(
                target=_work, args=(theirs, context, frozenset(known), os.getpid()), name="genoshare-ingest-worker"
            )
            process.start()
            theirs.close()
            workers.append(_Worker(process, ours))
        for worker in workers:
            _give(worker, waiting, paths)
        while len(outcomes) < len(paths):
            busy = [worker for worker in workers if worker.task is not None]
            ready = wait([w.connection for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                if worker.connection in ready or worker.process.sentinel in ready:
                    _receive(worker, paths, outcomes, progress)
                    if worker.task is None:
                        _give(worker, waiting, paths)
    finally:
        for worker in workers:
            if worker.process.is_alive():
                worker.process.kill()  # staging of other files, now thrown away
            worker.process.join()
            worker.connection.close()
    return [outcomes[index] for index in range(len(paths))]


def _give(worker: _Worker, waiting: list[int], paths: Sequence[Path]) -> None:
    if waiting:
        worker.task = waiting.pop()
        worker.connection.send(paths[worker.task])


def _receive(
    worker: _Worker, paths: Sequence[Path], outcomes: dict[int, Outcome], progress: StageProgress | None
) -> None:
    """Handle what ``worker`` sent; raise its file's error, or one naming the file if the worker died."""
    assert worker.task is not None
    path = paths[worker.task]
    while True:
        try:
            if not worker.connection.poll():
                break
            kind, payload = worker.connection.recv()
        except (EOFError, OSError):
            break  # the worker is gone: said below
        if kind == "failed":
            raise payload
        if kind == "progress":
            if progress is not None:
                progress(*payload)
            continue
        outcomes[worker.task], worker.task = payload, None
        return
    if not worker.process.is_alive():
        worker.process.join()
        code = worker.process.exitcode or 0
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        raise IngestError(path, f"the worker process staging it died ({how}); nothing was published")


def _work(connection: Connection, context: StageContext, known: frozenset[str], parent: int) -> None:
    """A worker's life: stage the files it is sent until the ingesting process closes its end."""
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            path = connection.recv()
        except EOFError:
            return

        def report(name: str, stage: str, done: int, total: int) -> None:
            connection.send(("progress", (name, stage, done, total)))

        try:
            outcome = stage_file(context, path, known, report)
        except Exception as error:  # raised by the ingesting process, as the serial path raises it
            connection.send(("failed", _portable(error, path)))
        else:
            connection.send(("done", outcome))


def _portable(error: Exception, path: Path) -> Exception:
    """``error`` if it survives pickling, else a one-line :class:`IngestError` naming the file."""
    if not isinstance(error, GenoshareError):
        error.add_note(f"(while staging {path})")
    try:
        rebuilt = pickle.loads(pickle.dumps(error))  # noqa: S301 (bytes this process just made)
    except Exception:  # an exception class pickle cannot rebuild: keep its text
        return IngestError(path, f"{type(error).__name__}: {error}")
    assert isinstance(rebuilt, Exception)
    return rebuilt


def _die_with(parent: int) -> None:
    """End this worker when the ingesting process ends, however it ends."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_exit_with_parent, daemon=True).start()
    if os.getppid() != parent:  # it ended before the line above took effect
        os._exit(1)


def _exit_with_parent() -> None:
    parent = multiprocessing.parent_process()
    if parent is not None:
        wait([parent.sentinel])
        os._exit(1)
