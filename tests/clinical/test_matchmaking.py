"""``POST /mme/match`` as the Matchmaker Exchange API 1.1 defines it, checked against its JSON Schema.

Ranking (phenotype and gene), the custodian's contact instead of any identifier, consent (a participant's
choice, the dataset's CC code, withdrawal), and the audit entry that "who used my data" reports.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from clinical_world import (
    CONTACT,
    DIAGNOSES,
    EPILEPSY,
    MARFAN,
    OTHER,
    PEER_NAME,
    PEER_TOKEN,
    PEOPLE,
    RENAL,
    STEWARD,
    ClinicalWorld,
    reset_choice,
)
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from genoshare.node import build_consent, build_usage

from support import OPERATOR, SPEC, Passports, bearer

SCHEMA = json.loads((SPEC / "mme" / "mme-search-1.1.schema.json").read_text())
MEDIA = "application/vnd.ga4gh.matchmaker.v1.1+json"


def validator(definition: str) -> Draft202012Validator:
    return Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{definition}"})


def patient(features: list[str] | None = None, genes: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patient": {
            "id": "their-patient-1",
            "contact": {"name": "Dr Requester", "href": "mailto:requester@example.org", "roles": ["clinician"]},
            **extra,
        }
    }
    if features:
        body["patient"]["features"] = [{"id": term} for term in features]
    if genes:
        body["patient"]["genomicFeatures"] = [{"gene": {"id": gene}} for gene in genes]
    if features or genes:
        validator("request").validate(body)  # what the tests send is itself a valid MME request
    return body


def ask(client: TestClient, body: Any, token: str | None = PEER_TOKEN, media: str = MEDIA) -> Any:
    headers = {"Content-Type": media, "Accept": media}
    if token is not None:
        headers["X-Auth-Token"] = token
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/mme/match", content=content, headers=headers)


def matched(response: Any, world: ClinicalWorld) -> list[str]:
    """The samples behind the matches, best first (the answer itself only has dataset/pseudonym)."""
    by_id = {f"{PEOPLE[s][0]}/{p}": s for s, p in world.pseudonyms.items()}
    return [by_id[result["patient"]["id"]] for result in response.json()["results"]]


def test_an_answer_is_an_mme_response_with_the_mme_media_type(client: TestClient) -> None:
    response = ask(client, patient(MARFAN, ["GENE1"]))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MEDIA
    validator("response").validate(response.json())
    assert response.json()["results"], "the planted match must be found"


def test_the_closest_patient_comes_first_with_the_custodians_contact_and_no_sample_name(
    client: TestClient, world: ClinicalWorld
) -> None:
    response = ask(client, patient(MARFAN))
    assert matched(response, world)[0] == "R01"
    best = response.json()["results"][0]
    assert best["patient"]["contact"] == {
        "name": "Dr Custodian, Genetics",
        "institution": world.node.settings.organization,
        "href": CONTACT,
    }
    assert {f["id"] for f in best["patient"]["features"]} == set(MARFAN[:4])
    scores = [r["score"]["patient"] for r in response.json()["results"]]
    assert scores == sorted(scores, reverse=True)
    for sample in PEOPLE:  # steward sample names never leave: only pseudonyms do
        assert sample not in response.text


def test_a_rare_allele_in_a_candidate_gene_counts_and_a_common_one_does_not(
    client: TestClient, world: ClinicalWorld
) -> None:
    # Everyone in "rare" carries the common GENE1 allele; only R01 a rare one, only R02 one in GENE2.
    assert matched(ask(client, patient(genes=["GENE1"])), world) == ["R01"]
    only_gene2 = ask(client, patient(genes=["ENSG00000000002"]))  # an Ensembl id names the gene too
    assert matched(only_gene2, world) == ["R02"]
    assert only_gene2.json()["results"][0]["patient"]["genomicFeatures"] == [{"gene": {"id": "ENSG00000000002"}}]
    # The gene lifts the epilepsy patient above one with the same phenotype but no rare allele in GENE2.
    both = matched(ask(client, patient(EPILEPSY, ["GENE2"])), world)
    assert both[0] == "R02"
    assert matched(ask(client, patient(genes=["NOSUCHGENE"])), world) == []


def test_only_people_whose_consent_allows_matchmaking_are_ever_shown(client: TestClient, world: ClinicalWorld) -> None:
    # R04 refused, R05 withdrew, N01's dataset has no CC code and N01 was never asked: all Marfan-like.
    shown = matched(ask(client, patient(MARFAN)), world)
    assert "R01" in shown
    assert not {"R04", "R05", "N01"} & set(shown)
    consent = build_consent(world.node)
    person = consent.find("research", world.pseudonyms["N01"])
    token = consent.issue_link(person, OPERATOR.actor)
    try:
        said = client.post("/consent/matchmaking", json={"allow": True}, headers={"X-Consent-Token": token})
        assert said.status_code == 200, said.text
        assert said.json()["matchmaking"] is True
        assert "N01" in matched(ask(client, patient(MARFAN)), world)
        index = client.app.state.mme._candidates  # type: ignore[attr-defined]
        client.post("/consent/matchmaking", json={"allow": False}, headers={"X-Consent-Token": token})
        assert "N01" not in matched(ask(client, patient(MARFAN)), world)
        # A consent change (which reloads the Beacon's people) recomputes who may be shown, not the index.
        assert client.app.state.mme._candidates is index  # type: ignore[attr-defined]
    finally:
        reset_choice(world, "N01")


def test_every_answer_is_audited_and_shows_in_the_participants_usage(client: TestClient, world: ClinicalWorld) -> None:
    ask(client, patient(MARFAN, ["GENE1"]))
    entry = [e for e in world.node.audit.entries() if e.action == "mme.match"][-1]
    assert entry.actor == f"mme:{PEER_NAME}"
    shown = entry.details["datasets"]["rare"]["matches"]
    assert {"participant": world.pseudonyms["R01"], "score": pytest.approx(shown[0]["score"])} in shown
    assert entry.details["genes"] == ["GENE1"]
    assert "their-patient-1" not in json.dumps(entry.details)  # the peer's patient id is not kept
    uses = [use.as_dict() for use in build_usage(world.node).of("rare", world.pseudonyms["R01"])]
    mine = [use for use in uses if use["user"] == f"mme:{PEER_NAME}"]
    assert mine and mine[0]["routes"]["matchmaking"]["records"] >= 1
    # The participant sees it in their own report, with their consent token.
    consent = build_consent(world.node)
    token = consent.issue_link(consent.find("rare", world.pseudonyms["R01"]), OPERATOR.actor)
    own = client.get("/consent/usage", headers={"X-Consent-Token": token}).json()
    assert any(use["user"] == f"mme:{PEER_NAME}" and "matchmaking" in use["routes"] for use in own)
    # R04 refused: no match ever showed them, so nothing is reported as a use of their data.
    others = build_usage(world.node).of("rare", world.pseudonyms["R04"])
    assert all(use.actor != f"mme:{PEER_NAME}" for use in others)


@pytest.mark.parametrize(
    ("token", "media", "body", "status"),
    [
        (None, MEDIA, patient(MARFAN), 401),
        ("not-a-token-we-gave", MEDIA, patient(MARFAN), 401),
        (PEER_TOKEN, "text/plain", patient(MARFAN), 415),
        (PEER_TOKEN, "application/json", patient(MARFAN), 415),  # no version anywhere
        (PEER_TOKEN, "application/vnd.ga4gh.matchmaker.v2.0+json", patient(MARFAN), 406),
        (PEER_TOKEN, MEDIA, b"{not json", 400),
        (PEER_TOKEN, MEDIA, {"patient": {"id": "x", "contact": {"name": "n", "href": "mailto:a@b"}}}, 422),
        (PEER_TOKEN, MEDIA, {"patient": {"id": "x", "features": [{"id": "HP:0001166"}]}}, 422),
        (PEER_TOKEN, MEDIA, {"patient": {**patient()["patient"], "features": [{"id": "seizures"}]}}, 422),
        (PEER_TOKEN, MEDIA, [1, 2], 422),
        (PEER_TOKEN, MEDIA, patient(genes=[f"GENE{n}" for n in range(101)]), 422),  # a patient has a few genes
    ],
)
def test_refusals_carry_the_mme_status_and_message(
    client: TestClient, token: str | None, media: str, body: Any, status: int
) -> None:
    response = ask(client, body, token, media)
    assert response.status_code == status, response.text
    validator("error").validate(response.json())
    if status == 406:
        assert "1.1" in response.json()["supportedVersions"]


def test_a_refused_token_is_audited(client: TestClient, world: ClinicalWorld) -> None:
    ask(client, patient(MARFAN), "stolen-or-guessed")
    client.app.state.denials.flush()  # type: ignore[attr-defined]
    denials = [e for e in world.node.audit.entries() if e.action == "mme.match" and e.decision != "permit"]
    assert denials, "a refused match request must leave an audit entry"


def test_version_1_0_and_the_join_protocols_plain_json_are_answered(client: TestClient) -> None:
    assert ask(client, patient(MARFAN), media="application/vnd.ga4gh.matchmaker.v1.0+json").status_code == 200
    plain = client.post(
        "/mme/match",
        json=patient(MARFAN),
        headers={"X-Auth-Token": PEER_TOKEN, "Accept": "application/vnd.ga4gh.matchmaker+json"},
    )
    assert plain.status_code == 200 and plain.headers["content-type"] == MEDIA


def test_get_is_not_a_match_and_heartbeat_needs_the_token(client: TestClient) -> None:
    assert client.get("/mme/match", headers={"X-Auth-Token": PEER_TOKEN}).status_code == 405
    assert client.get("/mme/heartbeat").status_code == 401
    beat = client.get("/mme/heartbeat", headers={"X-Auth-Token": PEER_TOKEN})
    assert beat.status_code == 200
    assert MEDIA in beat.json()["heartbeat"]["accept"]


def test_only_a_steward_sends_a_patient_to_the_peers_and_each_peer_is_reported(
    client: TestClient, world: ClinicalWorld, passports: Passports
) -> None:
    body = patient(MARFAN, ["GENE1"])
    assert client.post("/mme/peers/match", json=body).status_code == 401
    researcher = client.post("/mme/peers/match", json=body, headers=bearer(passports.anonymous_researcher()))
    assert researcher.status_code == 403
    validator("error").validate(researcher.json())
    steward = Passports(passports.issuer, subject=STEWARD).anonymous_researcher()
    answer = client.post("/mme/peers/match", json=body, headers=bearer(steward))
    assert answer.status_code == 200, answer.text
    assert [(p["peer"], p["status"], p["results"]) for p in answer.json()["peers"]] == [("Down", "unreachable", [])]
    search = [e for e in world.node.audit.entries() if e.action == "mme.search"][-1]
    assert search.actor.startswith(STEWARD) and search.details["peers"]["Down"]["status"] == "unreachable"


def sample_of(result: dict[str, Any], world: ClinicalWorld) -> str:
    return {f"{PEOPLE[s][0]}/{p}": s for s, p in world.pseudonyms.items()}[result["patient"]["id"]]


def scores_of(response: Any, world: ClinicalWorld) -> dict[str, dict[str, float]]:
    return {sample_of(result, world): result["score"] for result in response.json()["results"]}


def test_a_disorder_named_in_omim_matches_a_person_diagnosed_under_mondo(
    client: TestClient, world: ClinicalWorld
) -> None:
    # R06's Marfan syndrome is recorded as MONDO:0007947; the peer says MIM:154700, as MME examples do.
    assert DIAGNOSES["R06"] == "MONDO:0007947"
    without = ask(client, patient(EPILEPSY))
    asked = ask(client, patient(EPILEPSY, disorders=[{"id": "MIM:154700", "label": "Marfan syndrome"}]))
    assert asked.status_code == 200, asked.text
    validator("response").validate(asked.json())
    scores = scores_of(asked, world)
    assert scores["R06"]["_disorder"] == 1.0
    assert [e for e in world.node.audit.entries() if e.action == "mme.match"][-1].details["disorders"] == 1
    before = matched(without, world)  # the answer is the top 5: R06 may not be in it by phenotype alone
    assert matched(asked, world).index("R06") < (before.index("R06") if "R06" in before else len(before))
    shown = next(r for r in asked.json()["results"] if sample_of(r, world) == "R06")
    assert shown["patient"]["disorders"] == [{"id": "MONDO:0007947", "label": "Marfan syndrome"}]


def test_an_orphanet_disorder_matches_a_subtype_diagnosed_under_mondo(client: TestClient, world: ClinicalWorld) -> None:
    # ORPHA:730 is autosomal dominant polycystic kidney disease; R03 has its subtype polycystic kidney disease 1.
    # A subtype fits a little less than the disease itself: ADPKD has 5 subtypes among MONDO's 23,305 terms,
    # so its information content is 1 - ln 6 / ln 23305 = 0.82 against the subtype's 1, and Lin's 0.90.
    scores = scores_of(ask(client, patient(OTHER, disorders=[{"id": "ORPHA:730"}])), world)
    assert 0.85 < scores["R03"]["_disorder"] < 1.0
    assert all(score["_disorder"] < 1.0 for sample, score in scores.items() if sample != "R03")


def test_a_disorder_is_scored_against_phenotypes_through_its_hpo_annotations(
    client: TestClient, world: ClinicalWorld
) -> None:
    # Nobody is diagnosed with Marfan syndrome in R01's record, but R01 has its features; R02 has epilepsy.
    scores = scores_of(ask(client, patient(RENAL, disorders=[{"id": "OMIM:154700"}])), world)
    assert scores["R01"]["_disorder"] > 0.1
    assert scores["R01"]["_disorder"] > scores.get("R02", {"_disorder": 0.0})["_disorder"]
    assert scores["R06"]["_disorder"] == 1.0  # the one recorded with it


def test_a_disorder_this_node_cannot_read_is_left_out_not_scored_zero(client: TestClient, world: ClinicalWorld) -> None:
    plain = ask(client, patient(MARFAN)).json()["results"]
    unknown = ask(client, patient(MARFAN, disorders=[{"id": "DOID:14323"}])).json()["results"]
    assert unknown == plain
    assert all("_disorder" not in result["score"] for result in unknown)
