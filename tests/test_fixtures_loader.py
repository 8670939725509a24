"""The scenario files and their loader: valid JSON, valid FHIR R4, complete CDS Hooks requests."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cds_assertions import IXAZOMIB_ACTIONS, LENALIDOMIDE_ACTIONS
from fhir.resources.R4B import get_fhir_model_class

from cds_service.fixtures import (
    DEVIATION_NAIVE_DATETIMES,
    DEVIATION_UNTYPED_BUNDLE,
    SCENARIO_DIR,
    Scenario,
    load_scenarios,
    shift_dates,
    with_zones,
)
from cds_service.rules.data_needs import DATA_NEEDS

RULES = {
    "hepatic-start-dose", "renal-start-dose", "platelets-below-30k", "anc-below-500",
    "new-cycle-gate", "rash-grade-2-3", "rash-grade-4", "neuropathy-grade-1-pain-or-2",
    "neuropathy-grade-2-pain-or-3", "neuropathy-grade-4", "other-toxicity-grade-3-4",
    "overdose", "dose-not-labelled", "dose-level-due", "strong-cyp3a-inducer", "pregnancy",
    "hypersensitivity", "cbc-missing", "data-uninterpretable", "data-unavailable",
    "severity-without-grade",
}  # fmt: skip

SERVICES = {
    "ixazomib-order-sign",
    "ixazomib-order-select",
    "ixazomib-lab-result",
    "ixazomib-patient-view",
}

FILES = sorted(SCENARIO_DIR.glob("*.json"))
SCENARIOS = load_scenarios()
BY_ID = {s.id: s for s in SCENARIOS}


def validate(resource: dict[str, Any]) -> None:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_there_are_scenarios() -> None:
    assert len(FILES) >= 45
    assert len(SCENARIOS) == len(FILES)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_file_is_well_formed(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["id"] == path.stem
    assert set(data) >= {"id", "title", "label", "service", "now", "context", "resources"}
    assert data["service"] in SERVICES
    assert data["now"].endswith("Z")
    for card in data.get("expectedCards", []):
        assert card["indicator"] in {"info", "warning", "critical"}
    for expectation in data["expected"] + data.get("optional", []):
        rules = (
            expectation["rule"] if isinstance(expectation["rule"], list) else [expectation["rule"]]
        )
        assert set(rules) <= RULES, rules
        if "ixazomib" in expectation:
            action = expectation["ixazomib"]["action"]
            actions = action if isinstance(action, list) else [action]
            assert set(actions) <= IXAZOMIB_ACTIONS, actions
            dose = expectation["ixazomib"].get("doseMg")
            assert dose in (None, 2.3, 3, 4), dose
        if "lenalidomide" in expectation:
            assert expectation["lenalidomide"]["action"] in LENALIDOMIDE_ACTIONS
            assert expectation["lenalidomide"].get("doseMg") in (None, 25, 20, 15, 10, 5, 2.5)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_resources_are_valid_fhir_r4(scenario: Scenario) -> None:
    resources = scenario.resources + scenario.context_resources()
    for bundle_key in ("draftOrders", "observations"):
        if bundle_key in scenario.context:
            bundle = dict(scenario.context[bundle_key])
            if "type" not in bundle:
                assert DEVIATION_UNTYPED_BUNDLE in scenario.deviations
                bundle["type"] = "collection"  # the rest of the Bundle must still conform
            resources.append(bundle)
    for resource in resources:
        if DEVIATION_NAIVE_DATETIMES in scenario.deviations:
            resource = with_zones(resource)  # Epic style: everything else must still conform
        validate(resource)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_resources_belong_to_the_patient(scenario: Scenario) -> None:
    keys = [(r["resourceType"], r["id"]) for r in scenario.resources]
    assert len(keys) == len(set(keys)), "duplicate resource ids"
    patients = [r for r in scenario.resources if r["resourceType"] == "Patient"]
    assert [p["id"] for p in patients] == [scenario.patient_id]
    for resource in scenario.resources + scenario.context_resources():
        reference = (resource.get("subject") or resource.get("patient") or {}).get("reference")
        if resource["resourceType"] not in ("Patient", "Medication"):
            assert reference == f"Patient/{scenario.patient_id}", resource["id"]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_context_matches_the_hook(scenario: Scenario) -> None:
    context = scenario.context
    assert context["patientId"] == scenario.patient_id
    if scenario.service == "ixazomib-lab-result":
        bundle = context["observations"]
        assert bundle["type"] == "collection"
        assert all(e["resource"]["resourceType"] == "Observation" for e in bundle["entry"])
        assert bundle["entry"]
    elif scenario.service == "ixazomib-patient-view":
        assert set(context) <= {"userId", "patientId", "encounterId"}
        assert context["userId"].startswith("Practitioner/")
    else:
        assert context["userId"].startswith("Practitioner/")
        drafts = [
            e["resource"]
            for e in context["draftOrders"]["entry"]
            if e["resource"]["resourceType"] == "MedicationRequest"
        ]
        assert drafts
        assert all(d["status"] == "draft" for d in drafts)
        if scenario.service == "ixazomib-order-select":
            ids = {f"MedicationRequest/{d['id']}" for d in drafts}
            assert set(context["selections"]) <= ids


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_cds_request_is_complete(scenario: Scenario) -> None:
    request = scenario.cds_request(fhir_server="http://127.0.0.1:9/fhir")
    assert request["hook"] == scenario.hook
    uuid.UUID(request["hookInstance"])
    assert request["context"] == scenario.context
    assert request["fhirServer"] == "http://127.0.0.1:9/fhir"
    assert request["fhirAuthorization"]["token_type"] == "Bearer"
    prefetch = request["prefetch"]
    assert set(prefetch) == {need.key for need in DATA_NEEDS}
    for need in DATA_NEEDS:
        value = prefetch[need.key]
        if need.key in scenario.prefetch_failures:
            assert value["resourceType"] == "OperationOutcome"
        elif need.query.startswith("Patient/"):
            assert value["resourceType"] == "Patient"
            assert value["id"] == scenario.patient_id
        else:
            assert value["resourceType"] == "Bundle"
            assert value["type"] == "searchset"
            assert all(e["resource"]["resourceType"] == need.resource_type for e in value["entry"])
            validate(with_zones(value))
    json.dumps(request)  # serialisable as it is
    assert "prefetch" not in scenario.cds_request(prefetch=False)
    assert "fhirServer" not in scenario.cds_request()


def test_prefetch_follows_the_queries() -> None:
    scenario = BY_ID["pn-g3-obs-integer-grade"]
    prefetch = scenario.prefetch()
    labs = [e["resource"] for e in prefetch["labs"]["entry"]]
    assert labs, "the CBCs are in the labs key"
    dates = [r["effectiveDateTime"] for r in labs]
    assert dates == sorted(dates, reverse=True), "_sort=-date"
    assert all(r["code"]["coding"][0]["system"] == "http://loinc.org" for r in labs)
    graded = [e["resource"]["id"] for e in prefetch["toxicityObservations"]["entry"]]
    assert graded == ["pn-g3-obs-integer-grade-pn"]
    assert prefetch["toxicityGrades"]["entry"] == []  # integer grade: not a value-concept hit
    procedures = BY_ID["ren-dialysis-procedure"].prefetch()["procedures"]
    assert len(procedures["entry"]) == 2


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_transaction_bundle(scenario: Scenario) -> None:
    bundle = scenario.transaction_bundle()
    validate(with_zones(bundle))
    assert bundle["type"] == "transaction"
    assert len(bundle["entry"]) == len(scenario.resources)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["request"] == {
            "method": "PUT",
            "url": f"{resource['resourceType']}/{resource['id']}",
        }


def test_dates_are_shifted_to_now() -> None:
    now = datetime(2031, 1, 1, 12, 0, tzinfo=UTC)
    scenario = load_scenarios(now=now)[0]
    assert scenario.now == now
    original = json.loads(SCENARIO_DIR.joinpath("cbc-stale-8-days.json").read_text())
    shifted = next(s for s in load_scenarios(now=now) if s.id == "cbc-stale-8-days")
    cbc = next(r for r in shifted.resources if r["id"] == "cbc-stale-8-days-plt-now")
    taken = datetime.fromisoformat(cbc["effectiveDateTime"].replace("Z", "+00:00"))
    assert now - taken == timedelta(days=8)
    assert original["now"] == "2026-03-10T09:00:00Z"


def test_shift_keeps_formats() -> None:
    delta = timedelta(days=10, hours=3)
    source = {
        "a": "2026-03-10T09:00:00Z",
        "b": "2026-03-10T09:00:00",
        "c": "2026-03-10T09:00:00.123+02:00",
        "d": "1959-08-15",
        "e": ["2026-03-10T23:30"],
        "id": "anc-2026-03-10",
        "n": 3,
    }
    assert shift_dates(source, delta) == {
        "a": "2026-03-20T12:00:00Z",
        "b": "2026-03-20T12:00:00",
        "c": "2026-03-20T12:00:00.123+02:00",
        "d": "1959-08-25",
        "e": ["2026-03-21T02:30"],
        "id": "anc-2026-03-10",
        "n": 3,
    }


def test_patient_age_survives_the_shift() -> None:
    # Cockcroft-Gault scenarios depend on the age: birthdays are months away from "now".
    for now in (datetime(2026, 3, 10, 9, tzinfo=UTC), datetime(2027, 8, 1, tzinfo=UTC)):
        scenario = next(s for s in load_scenarios(now=now) if s.id == "ren-cg-female")
        birth = datetime.fromisoformat(scenario.read(f"Patient/{scenario.patient_id}")["birthDate"])  # type: ignore[index]
        today = scenario.now.date()
        age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
        assert age == 70


def test_scenarios_ship_inside_the_package() -> None:
    """The scenario files are package data (``ixazomib-cds load-fixtures`` works installed);
    none may be left beside the generator, where the installed loader would never see them."""
    repository = Path(__file__).resolve().parents[1]
    assert repository / "cds_service" / "scenarios" == SCENARIO_DIR
    assert not list((repository / "fhir_fixtures").rglob("*.json"))


def test_each_fixture_patient_is_told_apart_in_a_patient_picker() -> None:
    """A picker shows name and birth date: each fixture patient's first given name is its
    scenario id, so no two of them look alike."""
    labels = []
    for scenario in SCENARIOS:
        (patient,) = [r for r in scenario.resources if r["resourceType"] == "Patient"]
        name = patient["name"][0]
        assert name["given"][0] == scenario.id
        labels.append((" ".join([*name["given"], name["family"]]), patient.get("birthDate")))
    assert len(set(labels)) == len(labels)
