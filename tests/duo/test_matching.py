"""Matching, table-driven. Each row cites the DUO text (definition or comment) that implies it."""

import datetime as dt

import pytest

from genoshare.duo.codes import parse_dataset_codes
from genoshare.duo.errors import DuoError
from genoshare.duo.matching import Outcome, ResearchPurpose, match
from genoshare.duo.terms import duo_release

P, D, R = Outcome.PERMIT, Outcome.DENY, Outcome.NEEDS_REVIEW
TODAY = dt.date(2026, 6, 1)

DIABETES = "MONDO:0005015"
T1D = "MONDO:0005147"
T2D = "MONDO:0005148"
BREAST_CANCER = "MONDO:0007254"
BREAST_CARCINOMA = "MONDO:0004989"  # is_a breast cancer
ASTHMA = "MONDO:0004979"

GRU = {"primary": "GRU"}
HMB = {"primary": "HMB"}
POA = {"primary": "POA"}
NRES = {"primary": "NRES"}
DS_T2D = {"primary": "DS", "diseases": [T2D]}
DS_DIABETES = {"primary": "DS", "diseases": [DIABETES]}
METHODS = {"primary": "GRU", "methods_development": True}

# (dataset codes, purpose fields, expected outcome); purposes are dated TODAY unless they say otherwise.
TABLE = [
    # NRES "indicates there is no restriction on use".
    (["NRES"], GRU, P),
    (["NRES"], POA, P),
    (["NRES"], NRES, P),
    (["NRES"], {**HMB, "clinical_care": True, "commercial": True}, P),
    # GRU "allowed for general research use for any research purpose"; its comment includes health,
    # fundamental biology, population origins or ancestry, methods development, social sciences.
    (["GRU"], GRU, P),
    (["GRU"], HMB, P),
    (["GRU"], DS_T2D, P),
    (["GRU"], POA, P),
    (["GRU"], {**HMB, "population_ancestry": True}, P),
    (["GRU"], METHODS, P),
    # ... but only research: use outside research is what NRES is for.
    (["GRU"], NRES, D),
    # GRU-CC was made obsolete and split into GRU + CC: clinical care needs CC.
    (["GRU"], {**GRU, "clinical_care": True}, D),
    (["GRU", "CC"], {**GRU, "clinical_care": True}, P),
    # HMB: "health/medical/biomedical purposes; does not include the study of population origins or ancestry".
    (["HMB"], HMB, P),
    (["HMB"], DS_T2D, P),  # DS is_a HMB
    (["HMB"], POA, D),
    (["HMB"], GRU, D),
    (["HMB"], {**HMB, "population_ancestry": True}, R),
    (["HMB"], {**HMB, "clinical_care": True}, D),
    (["HMB", "CC"], {**HMB, "clinical_care": True}, P),
    # NMDS exists because methods development is otherwise allowed: without it, HMB/DS/POA permit it.
    (["HMB"], METHODS, P),
    (["HMB", "NMDS"], METHODS, D),
    # DS "allowed provided it is related to the specified disease"; MONDO subclasses are that disease.
    ([f"DS:{DIABETES}"], DS_T2D, P),
    ([f"DS:{DIABETES}"], DS_DIABETES, P),
    ([f"DS:{T2D}"], DS_DIABETES, D),  # the purpose is broader than the consent
    ([f"DS:{T2D}"], {"primary": "DS", "diseases": [T1D]}, D),  # a sibling
    ([f"DS:{DIABETES}"], {"primary": "DS", "diseases": [ASTHMA]}, D),
    ([f"DS:{DIABETES}"], HMB, D),
    ([f"DS:{DIABETES}"], GRU, D),
    ([f"DS:{DIABETES}"], POA, D),
    ([f"DS:{DIABETES}"], {**DS_T2D, "population_ancestry": True}, R),  # DS is_a HMB: HMB's exclusion
    ([f"DS:{DIABETES}"], {**DS_T2D, "clinical_care": True}, D),
    ([f"DS:{DIABETES}", "CC"], {**DS_T2D, "clinical_care": True}, P),
    ([f"DS:{DIABETES}"], METHODS, P),
    # several DS: every purpose disease must fall under one of them
    ([f"DS:{DIABETES}", f"DS:{BREAST_CANCER}"], {"primary": "DS", "diseases": [T2D, BREAST_CARCINOMA]}, P),
    ([f"DS:{DIABETES}", f"DS:{BREAST_CANCER}"], {"primary": "DS", "diseases": [T2D, ASTHMA]}, D),
    ([f"DS:{DIABETES}", f"DS:{BREAST_CANCER}"], DS_T2D, P),
    # POA "limited to the study of population origins or ancestry".
    (["POA"], POA, P),
    (["POA"], HMB, D),
    (["POA"], DS_T2D, D),
    (["POA"], GRU, D),
    (["POA"], {**HMB, "population_ancestry": True}, D),
    (["POA"], {**POA, "clinical_care": True}, D),
    # NMDS "does not allow methods development research", other than within the permitted scope.
    (["GRU", "NMDS"], METHODS, D),
    (["GRU", "NMDS"], HMB, P),
    (["GRU", "NMDS"], {**HMB, "methods_development": True}, P),
    ([f"DS:{DIABETES}", "NMDS"], {**DS_T2D, "methods_development": True}, P),
    ([f"DS:{DIABETES}", "NMDS"], METHODS, D),
    # GSO "limited to genetic studies only".
    (["GRU", "GSO"], {**HMB, "genetic_study": True}, P),
    (["GRU", "GSO"], HMB, D),
    # NPUNCU "not-for-profit organizations and not-for-profit use, non-commercial use".
    (["GRU", "NPUNCU"], GRU, P),
    (["GRU", "NPUNCU"], {**GRU, "for_profit": True}, D),
    (["GRU", "NPUNCU"], {**GRU, "commercial": True}, D),
    # NPU "limited to not-for-profit organizations".
    (["GRU", "NPU"], {**GRU, "for_profit": True}, D),
    (["GRU", "NPU"], {**GRU, "commercial": True}, P),
    # NCU: "can be used by commercial organisations for research purposes, but not commercial purposes".
    (["GRU", "NCU"], {**GRU, "for_profit": True}, P),
    (["GRU", "NCU"], {**GRU, "commercial": True}, D),
    # NPOA "population, origin, or ancestry research is prohibited".
    (["GRU", "NPOA"], POA, D),
    (["GRU", "NPOA"], {**GRU, "population_ancestry": True}, D),
    (["GRU", "NPOA"], HMB, P),
    # PUB: requestor agrees to make results available.
    (["GRU", "PUB"], {**GRU, "publication_planned": True}, P),
    (["GRU", "PUB"], GRU, R),
    # COL: requestor must agree to collaborate with the primary investigator(s).
    (["GRU", "COL:Dr Jane Doe"], {**GRU, "collaboration_agreed": True}, P),
    (["GRU", "COL:Dr Jane Doe"], GRU, R),
    # IRB: requestor must provide documentation of local IRB/ERB approval.
    (["GRU", "IRB"], {**GRU, "irb_approval": True}, P),
    (["GRU", "IRB"], GRU, R),
    # RTN: requestor must return derived/enriched data.
    (["GRU", "RTN"], {**GRU, "return_of_results": True}, P),
    (["GRU", "RTN"], GRU, R),
    # US / PS / IS: approved users, projects, institutions; DUO gives no list to check against.
    (["GRU", "US"], {**GRU, "requester_id": "alice"}, R),
    (["GRU", "PS"], {**GRU, "project_id": "p1"}, R),
    (["GRU", "IS"], {**GRU, "institution": "EMBL"}, R),
    # CC "use is allowed for clinical use and care": it adds, never restricts.
    (["GRU", "CC"], GRU, P),
    # TS "use is approved for a specific number of months".
    (["GRU", "TS:12"], GRU, P),
    (["GRU", "TS:12"], {**GRU, "access_granted_on": dt.date(2025, 7, 1)}, P),
    (["GRU", "TS:12"], {**GRU, "access_granted_on": dt.date(2025, 6, 1)}, D),  # ended this very day
    (["GRU", "TS:12"], {**GRU, "access_granted_on": dt.date(2025, 1, 1)}, D),
    # MOR: "agrees not to publish results of studies until a specific date".
    (["GRU", "MOR:2027-01-31"], GRU, P),
    (["GRU", "MOR:2027-01-31"], {**GRU, "publication_date": dt.date(2026, 12, 1)}, D),
    (["GRU", "MOR:2027-01-31"], {**GRU, "publication_date": dt.date(2027, 1, 31)}, P),
    (["GRU", "MOR:2027-01-31"], {**GRU, "publication_planned": True}, R),
    (["GRU", "MOR:2026-01-31"], {**GRU, "publication_planned": True}, P),  # moratorium is over
    # GS "limited to within a specific geographic region".
    (["GRU", "GS:GAZ:00002459"], {**GRU, "location": "GAZ:00002459"}, P),
    (["GRU", "GS:Europe"], {**GRU, "location": "europe"}, P),
    (["GRU", "GS:GAZ:00002459"], GRU, R),
    (["GRU", "GS:GAZ:00002459"], {**GRU, "location": "GAZ:00002560"}, R),  # no GAZ hierarchy offline
    # RS "limited to studies of a certain research type".
    (["GRU", "RS:EDAM:topic_3574"], {**GRU, "topics": ["EDAM:topic_3574"]}, P),
    (["GRU", "RS:EDAM:topic_3574"], GRU, R),
    # Precedence: DENY over NEEDS_REVIEW over PERMIT.
    (["GRU", "IRB", "NPU"], {**GRU, "for_profit": True}, D),
    (["GRU", "IRB", "PUB"], {**GRU, "publication_planned": True}, R),
    (["HMB", "IRB", "NPOA"], POA, D),
]


def _purpose(fields: dict) -> ResearchPurpose:
    return ResearchPurpose(**({"date": TODAY} | fields))


@pytest.mark.parametrize(
    ("dataset", "purpose", "expected"),
    TABLE,
    ids=[f"{'+'.join(d)}|{'/'.join(f'{k}={v}' for k, v in p.items())}" for d, p, _ in TABLE],
)
def test_table(dataset, purpose, expected):
    result = match(_purpose(purpose), parse_dataset_codes(dataset))
    assert result.outcome == expected, result.reasons
    assert result.reasons, "every decision must say why"
    assert len(result.decisions) == len(dataset)


def test_every_code_appears_in_the_table():
    used = {code.partition(":")[0] for dataset, _, _ in TABLE for code in dataset}
    assert used == {t.shorthand for t in duo_release().consent_codes()}


class TestReasons:
    def test_ds_names_both_diseases(self):
        result = match(_purpose({**DS_T2D, "for_profit": True}), parse_dataset_codes([f"DS:{DIABETES}", "NPU"]))
        assert result.outcome is D
        assert result.decisions[0].reasons == (
            "permitted: DS MONDO:0005015 (diabetes mellitus) includes MONDO:0005148 (type 2 diabetes mellitus)",
        )
        assert result.decisions[0].outcome is P
        assert result.decisions[1].outcome is D
        assert "NPU" in result.decisions[1].reasons[0]

    def test_reverse_ds_says_broader(self):
        result = match(_purpose(DS_DIABETES), parse_dataset_codes([f"DS:{T2D}"]))
        assert result.reasons[0].startswith("denied: MONDO:0005015 (diabetes mellitus) is broader than DS")

    def test_review_reason_says_what_to_attach(self):
        result = match(_purpose(GRU), parse_dataset_codes(["GRU", "IRB", "COL:Dr Jane Doe"]))
        assert "requires IRB/ERB approval (IRB): attach the approval document" in result.reasons
        assert "requires collaboration with Dr Jane Doe (COL): attach the collaboration agreement" in result.reasons

    def test_user_reason_names_the_requester(self):
        result = match(_purpose({**GRU, "requester_id": "alice"}), parse_dataset_codes(["GRU", "US"]))
        assert "approve user alice" in result.reasons[-1]

    def test_gru_reason_mentions_what_the_comment_includes(self):
        result = match(_purpose({**GRU, "methods_development": True}), parse_dataset_codes(["GRU"]))
        assert result.reasons == (
            "permitted: GRU allows any research purpose, including methods and algorithms development",
        )

    def test_to_dict_shape(self):
        result = match(_purpose(GRU), parse_dataset_codes(["GRU", "TS:6"]))
        assert result.to_dict() == {
            "outcome": "PERMIT",
            "expires_on": "2026-12-01",
            "codes": [
                {
                    "code": "GRU",
                    "id": "DUO:0000042",
                    "label": "general research use",
                    "outcome": "PERMIT",
                    "reasons": ["permitted: GRU allows any research purpose"],
                },
                {
                    "code": "TS:6",
                    "id": "DUO:0000025",
                    "label": "time limit on use",
                    "outcome": "PERMIT",
                    "reasons": [
                        "permitted: TS: use approved for 6 months from 2026-06-01, until 2026-12-01 (exclusive)"
                    ],
                },
            ],
        }


class TestTimeLimit:
    @pytest.mark.parametrize(
        ("start", "months", "end"),
        [
            (dt.date(2026, 1, 31), 1, dt.date(2026, 2, 28)),
            (dt.date(2028, 1, 31), 1, dt.date(2028, 2, 29)),
            (dt.date(2026, 11, 15), 3, dt.date(2027, 2, 15)),
            (dt.date(2026, 6, 1), 24, dt.date(2028, 6, 1)),
        ],
    )
    def test_calendar_months(self, start, months, end):
        result = match(_purpose({**GRU, "date": start}), parse_dataset_codes(["GRU", f"TS:{months}"]))
        assert result.expires_on == end

    def test_no_ts_no_expiry(self):
        assert match(_purpose(GRU), parse_dataset_codes(["GRU"])).expires_on is None


class TestInvalidInput:
    def test_invalid_code_set_is_rejected(self):
        with pytest.raises(DuoError, match="exactly one primary permission"):
            match(_purpose(GRU), parse_dataset_codes(["GRU"]) + parse_dataset_codes(["HMB"]))

    def test_unknown_purpose_disease(self):
        with pytest.raises(DuoError, match="unknown MONDO term 'MONDO:9999999'"):
            match(_purpose({"primary": "DS", "diseases": ["MONDO:9999999"]}), parse_dataset_codes(["GRU"]))

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"primary": "DS"}, "a DS purpose needs at least one MONDO disease id"),
            ({"primary": "DS", "diseases": ["EFO:0001645"]}, "MONDO"),
            ({"primary": "XYZ"}, "primary"),
            ({"primary": "GRU", "unknown_field": True}, "unknown_field"),
        ],
    )
    def test_purpose_validation(self, fields, message):
        with pytest.raises(ValueError, match=message):
            ResearchPurpose(**fields)


def test_purpose_defaults_to_today():
    assert ResearchPurpose(primary="GRU").date == dt.date.today()
