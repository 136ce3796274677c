"""Whether a pooled PostgreSQL connection is still there, found out without a round trip when it can be.

SQLAlchemy's ``pool_pre_ping`` sends a ``SELECT 1`` on every checkout. A Beacon answer's write is one
statement (``access.privacy_state``), so that ping was half the answer's round trips to the database, and a
rare allele's (with the attack watch's count) took four where two do the work. Here a connection is pinged
only when the pool cannot vouch for it otherwise:

- its socket has something to read while it sat idle in the pool: the server said something unasked, which
  is how a server that shuts down or restarts, or ends the session (``pg_terminate_backend``,
  ``idle_session_timeout``), leaves it (a FATAL message, then the end of the stream);
- it sat idle for ``PING_AFTER_IDLE_SECONDS`` or more: a firewall or proxy that cuts a connection it deems
  idle does so silently, after minutes.

A connection that fails its ping is replaced, with every other connection of the pool, as ``pool_pre_ping``
does: a restarted database server costs no failed request. A connection lost between checkout and its first
statement fails that request, as it would with ``pool_pre_ping``.
"""

from __future__ import annotations

import math
import select
import time
from functools import partial
from typing import Any

from sqlalchemy import Engine, event, exc
from sqlalchemy.engine import Dialect

#: A connection used this recently, with nothing from the server waiting on its socket, is not pinged.
PING_AFTER_IDLE_SECONDS = 1.0
_RETURNED = "genoshare_returned_at"


def ping_when_in_doubt(engine: Engine) -> None:
    """Ping the engine's pooled connections on checkout only when they may have gone (see the module)."""
    event.listen(engine, "connect", _returned)
    event.listen(engine, "checkin", _returned)
    event.listen(engine, "checkout", partial(_checkout, engine.dialect))


def _returned(_dbapi_connection: Any, record: Any) -> None:
    record.info[_RETURNED] = time.monotonic()


def _spoke(dbapi_connection: Any) -> bool:
    """Whether the server closed the connection or sent something no statement asked for."""
    return bool(dbapi_connection.closed or select.select([dbapi_connection.fileno()], [], [], 0)[0])


def _checkout(dialect: Dialect, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    idle = time.monotonic() - record.info.get(_RETURNED, -math.inf)
    if idle < PING_AFTER_IDLE_SECONDS and not _spoke(dbapi_connection):
        return
    try:
        dialect.do_ping(dbapi_connection)
    except dialect.loaded_dbapi.Error as error:
        if dialect.is_disconnect(error, dbapi_connection, None):
            # The pool takes a new connection (and drops the others, made before the server went away).
            raise exc.InvalidatePoolError(str(error)) from error
        raise
