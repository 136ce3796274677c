"""Refused requests in the audit log: every denial counted, without a row per attempt.

Anyone can make the node refuse them (a garbage token, or no passport at all, costs nothing to send), so a
row per denial would let any client grow the database at the server's request rate.  Denials are grouped by
(caller, client, action, status, error code): the first of a group is written at once, with its resource and
reason; the repeats that follow within ``window`` seconds are counted and written as one entry (how many,
first and last time) when the window closes, at the next denial of any group or when the server stops.
The key holds nothing the client chooses freely (the reason may quote its input), and at most
``max_groups`` groups are open; beyond that, new ones share one overflow group per action and status.  So
the log grows by at most ``2 * max_groups`` rows per window at any request rate (about 0.25 MB a minute at
the defaults, reached only with hundreds of client addresses); the price is that a burst of refusals shows
as one entry with a count, naming the first one's resource and reason, rather than one entry each.  Texts
are cut to ``MAX_TEXT`` characters.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from genoshare.audit.log import AuditLog, Entry

ANONYMOUS = "anonymous"
MAX_TEXT = 200
OVERFLOW = "(other clients)"


@dataclass
class _Group:
    first: Entry
    opened: float
    repeats: int = 0
    first_repeat: str = ""
    last_repeat: str = ""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DenialLog:
    def __init__(
        self,
        audit: AuditLog,
        *,
        window: float = 60.0,
        max_groups: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.audit = audit
        self.window = window
        self.max_groups = max_groups
        self.clock = clock
        self._groups: dict[tuple[str, str, str, int, str], _Group] = {}
        self._lock = threading.Lock()

    def deny(
        self,
        *,
        actor: str,
        client: str,
        action: str,
        resource: str,
        status: int,
        code: str,
        reason: str,
        method: str,
        details: Mapping[str, object] | None = None,
    ) -> None:
        """Count one refused request; writes the group's first entry, or closed groups' repeat counts."""
        reason = reason[:MAX_TEXT]
        key = (actor, client, action, status, code)
        now = self.clock()
        with self._lock:
            due = self._close(now - self.window)
            group = self._groups.get(key)
            if group is None and len(self._groups) >= self.max_groups:
                key = (ANONYMOUS, OVERFLOW, action, status, "")
                group = self._groups.get(key)
            if group is not None:
                group.repeats += 1
                group.last_repeat = _now()
                group.first_repeat = group.first_repeat or group.last_repeat
            else:
                first = Entry(
                    key[0],
                    action,
                    resource[:MAX_TEXT],
                    "deny",
                    reason if key[1] != OVERFLOW else "several reasons (too many distinct clients to group)",
                    {**(details or {}), "status": status, "method": method[:16], "client": key[1][:MAX_TEXT]},
                )
                self._groups[key] = _Group(first, now)
                due.append(first)
        for entry in due:
            self.audit.record(entry)

    def flush(self) -> None:
        """Write the counts of every open group (the server is stopping)."""
        with self._lock:
            due = self._close(None)
        for entry in due:
            self.audit.record(entry)

    def _close(self, opened_before: float | None) -> list[Entry]:
        """Remove the groups opened before ``opened_before`` (all for None); entries for their repeats.

        Groups are kept in the order they opened, so the walk stops at the first one still open.
        """
        closed = []
        for key, group in self._groups.items():
            if opened_before is not None and group.opened > opened_before:
                break
            closed.append(key)
        due = []
        for key in closed:
            group = self._groups.pop(key)
            if group.repeats:
                first = group.first
                due.append(
                    Entry(
                        first.actor,
                        first.action,
                        first.resource,
                        "deny",
                        f"{group.repeats} more like this: {first.reason}"[: MAX_TEXT * 2],
                        {
                            **first.details,
                            "repeats": group.repeats,
                            "first_repeat": group.first_repeat,
                            "last_repeat": group.last_repeat,
                        },
                    )
                )
        return due
