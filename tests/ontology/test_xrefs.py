"""One disease under its MONDO, OMIM and Orphanet ids (MONDO's exact matches, shipped as package data)."""

from __future__ import annotations

from genoshare.ontology.xrefs import mondo_xrefs, normalise_disease_id


def test_marfan_syndrome_is_one_disease_under_its_three_ids() -> None:
    # Marfan syndrome: OMIM 154700, Orphanet 558, MONDO:0007947.
    xrefs = mondo_xrefs()
    for spelling in ("MIM:154700", "OMIM:154700", "ORPHA:558", "Orphanet:558", "MONDO:0007947"):
        assert {"OMIM:154700", "ORPHA:558", "MONDO:0007947"} <= xrefs.equivalents(spelling), spelling


def test_ids_of_other_schemes_are_not_guessed_at() -> None:
    assert normalise_disease_id("DOID:14323") is None
    assert normalise_disease_id("Marfan syndrome") is None
    assert mondo_xrefs().equivalents("DOID:14323") == frozenset()
    assert mondo_xrefs().equivalents("OMIM:999999999") == {"OMIM:999999999"}  # itself, nothing more
