"""SQLite writers take turns (``genoshare.store.db.WriteTurn``): none is lost, stuck, or left holding the lock.

A node on SQLite has one writer at a time. Its processes (a server's workers, the CLI) hand the turn on
through a lock file; these tests run real processes on a real database file: writers in several processes
and threads lose no update, one killed mid-transaction does not stop the others, and the WAL is still
checkpointed with SQLite's automatic checkpoint off.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sqlalchemy import text

from genoshare.store.db import WriteTurn, make_engine

#: A child process: ``threads`` threads each add 1 to the counter ``rounds`` times, each in a transaction
#: that reads before it writes (the shape of the node's privacy writes).
WRITER = textwrap.dedent(
    """
    import sys, threading
    from sqlalchemy import text
    from genoshare.store.db import make_engine
    engine = make_engine(sys.argv[1])
    def work():
        for _ in range(int(sys.argv[3])):
            with engine.begin() as connection:
                connection.execute(text("UPDATE counter SET n = n + 1 WHERE id = 1"))
                n = connection.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one()
                connection.execute(text("INSERT INTO seen (n) VALUES (:n)"), {"n": n})
    threads = [threading.Thread(target=work) for _ in range(int(sys.argv[2]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    """
)

#: A child process that takes the write lock, says so, and waits to be killed.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from sqlalchemy import text
    from genoshare.store.db import make_engine
    connection = make_engine(sys.argv[1]).connect()
    connection.execute(text("UPDATE counter SET n = n + 1 WHERE id = 1"))
    print("holding", flush=True)
    time.sleep(600)
    """
)


def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    with make_engine(url).begin() as connection:
        connection.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        connection.execute(text("CREATE TABLE seen (n INTEGER NOT NULL UNIQUE)"))
        connection.execute(text("INSERT INTO counter VALUES (1, 0)"))
    return url


def python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_writers_in_three_processes_and_many_threads_lose_no_update(tmp_path: Path) -> None:
    url = database(tmp_path)
    writers = [python(WRITER, url, "8", "40") for _ in range(3)]
    for writer in writers:
        _, errors = writer.communicate(timeout=300)
        assert writer.returncode == 0, errors  # no "database is locked", no deadlock
    with make_engine(url).connect() as connection:
        assert connection.execute(text("SELECT n FROM counter")).scalar_one() == 3 * 8 * 40
        # Each transaction saw its own increment and nobody else's: they ran one after another.
        assert connection.execute(text("SELECT count(DISTINCT n), max(n) FROM seen")).one() == (960, 960)


def test_a_writer_killed_mid_transaction_does_not_stop_the_others(tmp_path: Path) -> None:
    url = database(tmp_path)
    holder = python(HOLDER, url)
    assert holder.stdout is not None and holder.stdout.readline() == "holding\n", holder.stderr
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    began = time.monotonic()
    with make_engine(url).begin() as connection:
        connection.execute(text("UPDATE counter SET n = n + 10 WHERE id = 1"))
    assert time.monotonic() - began < 5, "the next writer waited for a dead one"
    with make_engine(url).connect() as connection:
        assert connection.execute(text("SELECT n FROM counter")).scalar_one() == 10, "the dead one's write is gone"


def test_the_wal_is_still_checkpointed(tmp_path: Path) -> None:
    """SQLite's automatic checkpoint is off on turn-taking connections; without the node's, the WAL only grows."""
    url = database(tmp_path)
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE pages (id INTEGER PRIMARY KEY, body BLOB)"))
    written = 0
    for number in range(4 * WriteTurn.CHECKPOINT_COMMITS):
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO pages VALUES (:id, :body)"), {"id": number, "body": os.urandom(20_000)}
            )
        written += 20_000
    wal = Path(f"{tmp_path / 'node.db'}-wal").stat().st_size
    assert written > 20_000_000
    assert wal < written / 2, f"the WAL holds {wal} bytes after {written} written: never checkpointed"
