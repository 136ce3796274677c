"""The four formats htsget 1.3 serves, named as the spec's ``format`` parameter spells them."""

from __future__ import annotations

from enum import StrEnum


class HtsgetFormat(StrEnum):
    BAM = "BAM"
    CRAM = "CRAM"
    VCF = "VCF"
    BCF = "BCF"

    @property
    def is_reads(self) -> bool:
        return self in (HtsgetFormat.BAM, HtsgetFormat.CRAM)
