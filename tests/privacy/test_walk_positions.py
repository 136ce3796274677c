"""The harness's positions candidate (``WatchRule.min_span``): a screen through one shared segment is no walk.

A clinician screening one patient's candidates in genome order may open on a stretch the patient shares
with a relative in the dataset: there, every candidate is the relative's allele, as in a walk over the
relative's genome. A walk over a member's genome, in any order, soon asks about alleles far apart. The
candidate counts a member towards a flag only once the questions on their alleles lie on two chromosomes or
``min_span`` bases apart, or once they are ``span_free_hits`` of the person's questions wherever they lie.
The node does not pass positions to the watch yet (docs/privacy.md).
"""

from __future__ import annotations

from genoshare.access.attack_watch import SessionWatch, WatchRule
from genoshare_lab.privacy.detection import SPAN


def _flagged_at(rule: WatchRule, questions: list[tuple[list[int], int, tuple[str, int]]]) -> int | None:
    watch = SessionWatch(rule)
    for i, (carriers, copies, position) in enumerate(questions):
        if watch.observe(carriers, copies, position):
            return i + 1
    return None


def test_a_screen_through_a_segment_shared_with_a_relative_is_not_a_walk() -> None:
    # Twelve of the relative's singletons in a row, 100 kb apart on chromosome 20, then the patient's own
    # candidates: absent from the dataset, or other people's.
    segment = [([7], 1, ("20", 30_000_000 + 100_000 * i)) for i in range(12)]
    rest = [([] if i % 2 else [100 + i], 0 if i % 2 else 1, ("20", 32_000_000 + 500_000 * i)) for i in range(40)]
    screen = segment + rest
    assert _flagged_at(WatchRule(), screen) == 2, "without positions, the node default flags it"
    assert _flagged_at(SPAN, screen) is None


def test_a_walk_over_a_genome_is_flagged_once_it_leaves_one_stretch() -> None:
    # A rarest-first walk: the member's singletons wherever they lie.
    walk = [([7], 1, (str(1 + i % 22), 10_000_000 + 3_000_000 * i)) for i in range(10)]
    assert _flagged_at(SPAN, walk) == 2
    # The same walk kept within 20 Mb of its first question is flagged when it steps beyond them ...
    near = [([7], 1, ("20", 30_000_000 + 1_000_000 * i)) for i in range(25)]
    assert _flagged_at(SPAN, near) == 21
    # ... or, if it never does, at its 25th question on the member's alleles.
    nearer = [([7], 1, ("20", 30_000_000 + 100_000 * i)) for i in range(30)]
    assert SPAN.span_free_hits == 25 and _flagged_at(SPAN, nearer) == 25
