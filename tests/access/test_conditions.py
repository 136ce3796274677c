"""Pattern matching of visa conditions (GA4GH Passport 1.2.1, "Pattern Matching"), without regex pitfalls."""

from __future__ import annotations

import time

import pytest

from genoshare.access.conditions import glob


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("faculty@*", "faculty@uni.example.org", True),
        ("faculty@*", "student@uni.example.org", False),
        ("*@uni.example.org", "faculty@uni.example.org", True),
        ("f?culty@*", "faculty@x", True),
        ("f?culty@*", "fculty@x", False),
        ("*", "", True),
        ("?", "", False),
        ("a*b*c", "aXXbYYc", True),
        ("a*b*c", "aXXbYY", False),
        ("faculty@uni.example.org", "faculty@uni.example.orgX", False),  # full string only
        ("Faculty@*", "faculty@x", False),  # case-sensitive
        (".*", "anything", False),  # no regular expressions
        ("[a]", "a", False),
        ("a\\*", "a\\b", True),  # no escape character: '*' stays a wildcard
    ],
)
def test_glob_follows_the_passport_pattern_rules(pattern: str, text: str, expected: bool) -> None:
    assert glob(pattern, text) is expected


def test_a_pathological_pattern_takes_no_exponential_time() -> None:
    started = time.perf_counter()
    assert not glob("*a" * 100 + "b", "a" * 10_000)
    assert time.perf_counter() - started < 2
