"""The refusal log counts every refusal while writing a bounded number of rows (clock under the test's control)."""

from __future__ import annotations

from genoshare.audit.denials import OVERFLOW, DenialLog
from genoshare.node import Node


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refuse(log: DenialLog, client: str = "10.0.0.1", code: str = "InvalidAuthentication") -> None:
    log.deny(
        actor="anonymous",
        client=client,
        action="drs",
        resource="/ga4gh/drs/v1/objects/x",
        status=401,
        code=code,
        reason="passport signature does not verify",
        method="GET",
    )


def rows(node: Node) -> list[dict[str, object]]:
    return [{"client": e.details["client"], "repeats": e.details.get("repeats", 0)} for e in node.audit.entries()]


def test_repeats_in_a_window_become_one_entry_with_their_count(node: Node) -> None:
    clock = Clock()
    log = DenialLog(node.audit, window=60, clock=clock)
    for _ in range(50):
        refuse(log)
    assert rows(node) == [{"client": "10.0.0.1", "repeats": 0}]
    clock.now += 61
    refuse(log)  # the window closed: its 49 repeats are written, and this refusal opens a new group
    assert rows(node) == [
        {"client": "10.0.0.1", "repeats": 0},
        {"client": "10.0.0.1", "repeats": 49},
        {"client": "10.0.0.1", "repeats": 0},
    ]
    refuse(log, code="PermissionDenied")  # another kind of refusal is a group of its own
    assert len(rows(node)) == 4
    refuse(log)
    log.flush()
    assert rows(node)[-1] == {"client": "10.0.0.1", "repeats": 1}
    assert node.audit.verify().ok


def test_many_clients_share_an_overflow_group(node: Node) -> None:
    log = DenialLog(node.audit, window=60, max_groups=3, clock=Clock())
    for number in range(100):
        refuse(log, client=f"10.0.1.{number}")
    log.flush()
    found = rows(node)
    assert [row["client"] for row in found[:4]] == ["10.0.1.0", "10.0.1.1", "10.0.1.2", OVERFLOW]
    assert 1 + sum(int(str(row["repeats"])) for row in found if row["client"] == OVERFLOW) == 97
    assert len(found) <= 2 * 4
