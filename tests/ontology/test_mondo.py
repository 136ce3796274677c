"""MONDO facts stated in src/genoshare/ontology/data/SOURCE.txt, checked against the packaged TSV."""

import pytest

from genoshare.ontology import UnknownTerm, get_ontology

T2D = "MONDO:0005148"
DIABETES = "MONDO:0005015"

# SOURCE.txt, "Verification": the 9 ancestors of type 2 diabetes mellitus.
T2D_ANCESTORS = {
    "MONDO:0005015",  # diabetes mellitus
    "MONDO:0002908",  # glucose metabolism disease
    "MONDO:0005066",  # metabolic disease
    "MONDO:0700096",  # human disease
    "MONDO:0000001",  # disease
    "MONDO:0001933",  # endocrine pancreas disorder
    "MONDO:0002356",  # pancreas disorder
    "MONDO:0004335",  # digestive system disorder
    "MONDO:0005151",  # endocrine system disorder
}


@pytest.fixture(scope="module")
def mondo():
    return get_ontology("MONDO")


def test_counts_match_source(mondo):
    assert len(mondo) == 23_305
    assert mondo.version == "v2023-08-02"


def test_labels(mondo):
    assert mondo.label(T2D) == "type 2 diabetes mellitus"
    assert mondo.label(DIABETES) == "diabetes mellitus"
    assert mondo.label("MONDO:0000001") == "disease"


def test_t2d_has_the_nine_documented_ancestors(mondo):
    assert mondo.parents(T2D) == {DIABETES}
    assert mondo.ancestors(T2D) == T2D_ANCESTORS


def test_is_a_is_reflexive_and_directed(mondo):
    assert mondo.is_a(T2D, DIABETES)
    assert mondo.is_a(T2D, T2D)
    assert not mondo.is_a(DIABETES, T2D)


def test_descendants_are_the_inverse_of_ancestors(mondo):
    assert T2D in mondo.descendants(DIABETES)
    assert DIABETES not in mondo.descendants(DIABETES)
    assert T2D in mondo.children(DIABETES)
    for term in mondo.descendants(DIABETES):
        assert DIABETES in mondo.ancestors(term)


def test_the_four_documented_roots_have_no_parents(mondo):
    for root in ("MONDO:0000001", "MONDO:0021125", "MONDO:0021178", "MONDO:0042489"):
        assert mondo.parents(root) == frozenset()
        assert mondo.ancestors(root) == frozenset()


def test_every_term_except_roots_reaches_a_root(mondo):
    roots = {"MONDO:0000001", "MONDO:0021125", "MONDO:0021178", "MONDO:0042489"}
    everything = mondo.descendants("MONDO:0000001") | mondo.descendants("MONDO:0021125")
    everything |= mondo.descendants("MONDO:0021178") | mondo.descendants("MONDO:0042489")
    assert len(everything | roots) == len(mondo)


@pytest.mark.parametrize("method", ["label", "ancestors", "descendants", "parents", "children"])
def test_unknown_ids_raise_unknown_term(mondo, method):
    with pytest.raises(UnknownTerm, match=r"unknown MONDO term 'MONDO:9999999'"):
        getattr(mondo, method)("MONDO:9999999")


def test_is_a_checks_both_ends(mondo):
    with pytest.raises(UnknownTerm):
        mondo.is_a("MONDO:9999999", DIABETES)
    with pytest.raises(UnknownTerm):
        mondo.is_a(T2D, "MONDO:9999999")


def test_unknown_term_is_a_lookup_error_with_a_plain_message(mondo):
    with pytest.raises(LookupError) as caught:
        mondo.label("nonsense")
    assert str(caught.value) == "unknown MONDO term 'nonsense': not in MONDO release v2023-08-02"


def test_is_cached_per_process(mondo):
    assert get_ontology("mondo") is mondo


def test_unsupported_prefix():
    with pytest.raises(ValueError, match="no ontology for prefix 'EFO'"):
        get_ontology("EFO")
