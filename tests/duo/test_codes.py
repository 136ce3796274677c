"""Consent-code parsing, written from duo-terms.tsv / SOURCE.txt, not from the parser's output."""

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from genoshare.duo.codes import ConsentCode, parse_code, parse_dataset_codes, validate_code_set
from genoshare.duo.errors import DuoError
from genoshare.duo.terms import DUO_VERSION, Kind, duo_release

# Every consent code of DUO 2021-02-23: shorthand, id, kind, and a valid written form
# (SOURCE.txt: DS/GS/RS carry OWL restrictions; MOR/TS/COL parameters come from the comments).
CODES = [
    ("NRES", "DUO:0000004", "permission", "NRES", None),
    ("GRU", "DUO:0000042", "permission", "GRU", None),
    ("HMB", "DUO:0000006", "permission", "HMB", None),
    ("DS", "DUO:0000007", "permission", "DS:MONDO:0005015", "MONDO:0005015"),
    ("POA", "DUO:0000011", "permission", "POA", None),
    ("RS", "DUO:0000012", "modifier", "RS:EDAM:topic_3574", "EDAM:topic_3574"),
    ("NMDS", "DUO:0000015", "modifier", "NMDS", None),
    ("GSO", "DUO:0000016", "modifier", "GSO", None),
    ("NPUNCU", "DUO:0000018", "modifier", "NPUNCU", None),
    ("PUB", "DUO:0000019", "modifier", "PUB", None),
    ("COL", "DUO:0000020", "modifier", "COL:Dr Jane Doe", "Dr Jane Doe"),
    ("IRB", "DUO:0000021", "modifier", "IRB", None),
    ("GS", "DUO:0000022", "modifier", "GS:GAZ:00002459", "GAZ:00002459"),
    ("MOR", "DUO:0000024", "modifier", "MOR:2027-01-31", "2027-01-31"),
    ("TS", "DUO:0000025", "modifier", "TS:12", "12"),
    ("US", "DUO:0000026", "modifier", "US", None),
    ("PS", "DUO:0000027", "modifier", "PS", None),
    ("IS", "DUO:0000028", "modifier", "IS", None),
    ("RTN", "DUO:0000029", "modifier", "RTN", None),
    ("CC", "DUO:0000043", "modifier", "CC", None),
    ("NPOA", "DUO:0000044", "modifier", "NPOA", None),
    ("NPU", "DUO:0000045", "modifier", "NPU", None),
    ("NCU", "DUO:0000046", "modifier", "NCU", None),
]


def test_the_table_covers_every_code_of_the_release():
    assert {row[0] for row in CODES} == {t.shorthand for t in duo_release().consent_codes()}


@pytest.mark.parametrize(("shorthand", "duo_id", "kind", "written", "parameter"), CODES)
def test_parse_by_shorthand_and_by_id(shorthand, duo_id, kind, written, parameter):
    by_shorthand = parse_code(written)
    suffix = written.partition(":")[2]
    by_id = parse_code(f"{duo_id}:{suffix}" if suffix else duo_id)
    iri = f"http://purl.obolibrary.org/obo/{duo_id.replace(':', '_')}"
    by_iri = parse_code(f"{iri}:{suffix}" if suffix else iri)
    assert by_shorthand == by_id == by_iri
    assert (by_shorthand.shorthand, by_shorthand.duo_id) == (shorthand, duo_id)
    assert by_shorthand.kind == Kind(kind)
    assert by_shorthand.parameter == parameter
    assert by_shorthand.is_primary == (kind == "permission")
    assert str(by_shorthand) == written


@pytest.mark.parametrize(("shorthand", "duo_id", "kind", "written", "parameter"), CODES)
def test_every_code_has_a_valid_beacon_shape(shorthand, duo_id, kind, written, parameter, beacon_validator):
    primary = "GRU" if kind == "modifier" else written
    codes = parse_dataset_codes([primary] + ([written] if kind == "modifier" else []))
    document = {"duoDataUse": [c.to_beacon() for c in codes]}
    beacon_validator.validate(document)
    assert document["duoDataUse"][-1]["id"] == duo_id
    assert document["duoDataUse"][-1]["version"] == DUO_VERSION


def test_examples_from_the_brief():
    ds = parse_code("DS:MONDO:0005015")
    assert ds == parse_code("DUO:0000007:MONDO:0005015")
    assert ds.label == "disease specific research"
    assert ds.parameter_label == "diabetes mellitus"
    assert ds.describe() == "DS MONDO:0005015 (diabetes mellitus)"
    assert parse_code("GRU").label == "general research use"
    assert parse_code("COL:Dr Jane Doe").parameter == "Dr Jane Doe"
    assert parse_code("gru") == parse_code(" GRU ")


def test_npoa_iri_anomaly_accepts_both_iris():
    # SOURCE.txt: the OWL IRI of NPOA has 8 digits while its CURIE is DUO:0000044.
    odd = parse_code("http://purl.obolibrary.org/obo/DUO_00000044")
    assert odd == parse_code("http://purl.obolibrary.org/obo/DUO_0000044") == parse_code("NPOA")
    assert odd.duo_id == "DUO:0000044"


def test_parameters_are_normalised():
    assert parse_code("TS:012").parameter == "12"
    assert parse_code("GS:Europe").parameter == "Europe"


class TestBeaconShape:
    def test_ds_puts_the_disease_in_modifiers(self):
        assert parse_code("DS:MONDO:0005015").to_beacon() == {
            "id": "DUO:0000007",
            "label": "disease specific research",
            "version": DUO_VERSION,
            "modifiers": [{"id": "MONDO:0005015", "label": "diabetes mellitus"}],
        }

    def test_no_parameter_no_modifiers(self):
        assert parse_code("NRES").to_beacon() == {
            "id": "DUO:0000004",
            "label": "no restriction",
            "version": DUO_VERSION,
        }

    def test_curie_places_are_modifiers_names_are_label_text(self):
        assert parse_code("GS:GAZ:00002459").to_beacon()["modifiers"] == [{"id": "GAZ:00002459"}]
        europe = parse_code("GS:Europe").to_beacon()
        assert "modifiers" not in europe
        assert europe["label"] == "geographical restriction: Europe"

    def test_value_parameters_stay_readable(self):
        assert parse_code("TS:12").to_beacon()["label"] == "time limit on use: 12 months"
        assert parse_code("TS:1").to_beacon()["label"] == "time limit on use: 1 month"
        assert parse_code("MOR:2027-01-31").to_beacon()["label"] == "publication moratorium: until 2027-01-31"
        assert parse_code("COL:Dr Jane Doe").to_beacon()["label"] == "collaboration required: Dr Jane Doe"


ERRORS = [
    ("", "empty consent code"),
    ("XYZ", "unknown consent code 'XYZ'"),
    ("DUO:0009999", "unknown DUO id 'DUO:0009999'"),
    ("GRU-CC", "obsolete in DUO; use GRU (DUO:0000042) + CC (DUO:0000043) instead"),
    ("DUO:0000005", "obsolete in DUO; use GRU (DUO:0000042) + CC (DUO:0000043) instead"),
    ("RU", "DUO:0000014 (RU, research use only) is obsolete in DUO and has no replacement"),
    ("DUO:0000002", "obsolete in DUO and has no replacement"),
    ("DUO:0000031", "DUO:0000031 (method development) is a DUO investigation class"),
    ("DUO:0000038", "investigation class"),
    ("DUO:0000001", "root class, not a consent code"),
    ("DUO:0000017", "root class, not a consent code"),
    ("NCTRL", "NCTRL (no use as control set) is a dbGaP/DUOS code, not a DUO class"),
    ("MDS", "not a DUO class"),
    ("DS", "DS needs a parameter: a MONDO disease id"),
    ("DS:", "DS needs a parameter"),
    ("DS:MONDO:9999999", "unknown MONDO term 'MONDO:9999999'"),
    ("DS:EFO:0001645", "DS needs a MONDO disease id"),
    ("DS:diabetes", "DS needs a MONDO disease id"),
    ("GS", "GS needs a parameter: a place"),
    ("GS:MONDO:0005015", "GS needs a place"),
    ("RS", "RS needs a parameter: a research topic"),
    ("MOR", "MOR needs a parameter: an ISO 8601 date"),
    ("MOR:31/01/2027", "MOR needs an ISO 8601 date"),
    ("MOR:2027-02-30", "MOR needs an ISO 8601 date"),
    ("TS", "TS needs a parameter: a number of months"),
    ("TS:0", "TS needs a positive whole number of months"),
    ("TS:-3", "TS needs a positive whole number of months"),
    ("TS:1.5", "TS needs a positive whole number of months"),
    ("TS:twelve", "TS needs a positive whole number of months"),
    ("COL", "COL needs a parameter"),
    ("COL:   ", "COL needs a parameter"),
    ("GRU:MONDO:0005015", "GRU takes no parameter"),
    ("NPU:yes", "NPU takes no parameter"),
    ("IRB:", "IRB takes no parameter"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_parse_errors(text, message):
    with pytest.raises(DuoError, match=_literal(message)):
        parse_code(text)


def test_duo_error_is_a_value_error():
    assert issubclass(DuoError, ValueError)


CODE_SETS_OK = [
    ["GRU"],
    ["NRES"],
    ["DS:MONDO:0005015", "DS:MONDO:0004979"],
    ["HMB", "IRB", "NPU", "TS:12", "MOR:2027-01-31"],
    ["POA", "NPUNCU"],
]

CODE_SETS_BAD = [
    (["IRB"], "exactly one primary permission", "got none"),
    (["GRU", "HMB"], "exactly one primary permission", "got GRU and HMB"),
    (["DS:MONDO:0005015", "HMB"], "exactly one primary permission", "got HMB and DS"),
    (["GRU", "NPU", "NPU"], "NPU is listed 2 times", ""),
    (["DS:MONDO:0005015", "DS:MONDO:0005015"], "DS:MONDO:0005015 is listed 2 times", ""),
    (["GRU", "TS:12", "TS:6"], "TS is listed 2 times with different parameters", ""),
]


@pytest.mark.parametrize("texts", CODE_SETS_OK)
def test_valid_code_sets(texts):
    codes = parse_dataset_codes(texts)
    assert [str(c) for c in codes] == texts


@pytest.mark.parametrize(("texts", "message", "detail"), CODE_SETS_BAD)
def test_invalid_code_sets(texts, message, detail):
    with pytest.raises(DuoError, match=_literal(message)) as caught:
        parse_dataset_codes(texts)
    assert detail in str(caught.value)


def test_empty_code_set():
    with pytest.raises(DuoError, match="got none"):
        validate_code_set([])


def test_codes_are_hashable_values():
    assert isinstance(parse_code("GRU"), ConsentCode)
    assert len({parse_code("GRU"), parse_code("DUO:0000042")}) == 1


def _literal(text: str) -> str:
    return re.escape(text)


def test_the_schema_check_is_real(beacon_validator):
    """A modifier whose id is not a CURIE must fail, which proves the remote $refs were resolved."""
    bad = {"duoDataUse": [{"id": "DUO:0000025", "version": DUO_VERSION, "modifiers": [{"id": "12"}]}]}
    assert not beacon_validator.is_valid(bad)
    assert not beacon_validator.is_valid({"duoDataUse": [{"id": "DUO:0000042"}]})  # version is required


@pytest.fixture(scope="module")
def beacon_validator():
    """dataUseConditions.json from the Beacon v2 default model, with its GitHub $refs served locally."""
    spec = Path(__file__).resolve().parents[2] / "spec" / "beacon-v2"
    remote = "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/"

    def retrieve(uri: str) -> Resource:
        if not uri.startswith(remote):
            raise LookupError(uri)
        return Resource.from_contents(json.loads((spec / uri.removeprefix(remote)).read_text()))

    schema_path = spec / "models/json/beacon-v2-default-model/common/dataUseConditions.json"
    schema = json.loads(schema_path.read_text())
    return Draft202012Validator(schema, registry=Registry(retrieve=retrieve))
