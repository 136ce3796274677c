"""Where the processes of a running node write their Prometheus metrics, so that ``/metrics`` adds them up.

``serve`` empties ``DATA_DIR/metrics`` at each start and runs in prometheus_client's multiprocess mode there:
every worker of ``serve --workers N`` writes its counters and histograms into files of its own, and any worker
answering ``/metrics`` reports the sum over all of them. ``genoshare ingest``, run while the server is up,
writes its progress and failures there too. prometheus_client chooses its mode when it is first imported:
these functions run before anything imports it (this module does not), or make it choose again.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

#: The variable prometheus_client reads to write each process's metrics into files under it.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
METRICS_DIR = "metrics"


def start_run(data_dir: Path) -> Path:
    """A fresh metrics directory for a server that starts now: counters begin at zero, as after any restart."""
    directory = data_dir / METRICS_DIR
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True)
    _use(directory)
    return directory


def _use(directory: Path) -> None:
    os.environ[MULTIPROCESS_DIR] = str(directory)
    if "prometheus_client.values" in sys.modules:  # imported already (the demo, a test): choose again, so
        from prometheus_client import values  # that metrics made from now on use the files

        values.ValueClass = values.get_value_class()


def join_run(data_dir: Path) -> Path | None:
    """Write this command's metrics where the node's server reads them; None when no server has run here."""
    directory = data_dir / METRICS_DIR
    if MULTIPROCESS_DIR in os.environ or not directory.is_dir():
        return None
    _use(directory)
    return directory


def current() -> str | None:
    return os.environ.get(MULTIPROCESS_DIR) or None
