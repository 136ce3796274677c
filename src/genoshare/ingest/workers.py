"""Stages the files of one ingest in a bounded set of worker processes (``genoshare ingest --jobs N``).

Staging is CPU-bound (htslib decoding every record, Crypt4GH, checksums) and much of it holds the GIL, so
files are staged side by side in processes, not threads.  Each worker stages one file at a time with
``genoshare.ingest.staging.stage_file``, the code the serial path runs, and sends back what it staged; the
ingesting process publishes them all in one transaction, in the order the steward named the files (the
order people are numbered in), or publishes nothing.

Not ``concurrent.futures``: when one file fails, or at Ctrl-C, the other files' staging must stop at once (its
work is thrown away anyway), and a worker that dies (killed, out of memory) must be reported by the file it
was staging; Python 3.11's executor can neither kill its workers nor say which task a dead worker held.

Workers are Python processes of their own (``python -m genoshare.ingest.workers``), not ``multiprocessing``
children: ``spawn`` would run the ingesting program's main module again in each (the ``genoshare`` script
imports the whole CLI, a benchmark its whole harness: seconds of CPU per worker), and ``fork`` would copy a
process with threads (a progress display, database pools). A worker talks over a socket pair, ignores Ctrl-C
(the ingesting process stops it) and dies with the ingesting process, ``kill -9`` included, so nothing
writes into staging after it is gone; what it wrote there is swept by the next ingest
(``ObjectStore.sweep_staging``).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
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
    process: subprocess.Popen[bytes]
    connection: Connection
    #: The index (in ``paths``) of the file it is staging, or None when idle.
    task: int | None = None


def _in_workers(
    context: StageContext, paths: Sequence[Path], known: Collection[str], jobs: int, progress: StageProgress | None
) -> list[Outcome]:
    outcomes: dict[int, Outcome] = {}
    waiting = list(range(len(paths)))[::-1]
    workers: list[_Worker] = []
    try:
        for _ in range(jobs):
            workers.append(_start(context, frozenset(known)))
            _give(workers[-1], waiting, paths)
        while len(outcomes) < len(paths):
            busy = {worker.connection: worker for worker in workers if worker.task is not None}
            for connection in wait(list(busy)):
                worker = busy[connection]  # type: ignore[index]
                _receive(worker, paths, outcomes, progress)
                if worker.task is None:
                    _give(worker, waiting, paths)
    finally:
        for worker in workers:
            worker.connection.close()  # an idle worker reads the end and exits
            if worker.task is not None:
                worker.process.kill()  # staging a file of a batch that will not be published
            worker.process.wait()
    return [outcomes[index] for index in range(len(paths))]


def _start(context: StageContext, known: frozenset[str]) -> _Worker:
    ours, theirs = socket.socketpair()
    with theirs:
        process = subprocess.Popen(  # noqa: S603 - our interpreter and our own module
            [sys.executable, "-m", "genoshare.ingest.workers", str(theirs.fileno()), str(os.getpid())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            # The modules this process found (a benchmark or a test may add to its path), the worker finds.
            env={**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)},
        )
    worker = _Worker(process, Connection(ours.detach()))
    worker.connection.send((context, known))
    return worker


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
                return
            kind, payload = worker.connection.recv()
        except (EOFError, OSError):
            break
        if kind == "failed":
            raise payload
        if kind == "progress":
            if progress is not None:
                progress(*payload)
            continue
        outcomes[worker.task], worker.task = payload, None
        return
    code = worker.process.wait()
    how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    raise IngestError(path, f"the worker process staging it died ({how}); nothing was published")


def _work(descriptor: int, parent: int) -> None:
    """A worker's life: stage the files it is sent until the ingesting process closes its end."""
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    connection = Connection(descriptor)
    context, known = connection.recv()

    def report(name: str, stage: str, done: int, total: int) -> None:
        connection.send(("progress", (name, stage, done, total)))

    while True:
        try:
            path = connection.recv()
        except EOFError:
            return
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
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # it ended before the line above took effect
        os._exit(1)


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


if __name__ == "__main__":
    _work(int(sys.argv[1]), int(sys.argv[2]))
