"""Small FHIR R4 resources and hook calls for the rules tests (numbers as Decimal)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from cds_assertions import IXAZOMIB_ACTIONS

from cds_service.rules import RuleSettings
from cds_service.rules.inputs import (
    HOOK_LAB_RESULT,
    HOOK_ORDER_SIGN,
    HOOK_PATIENT_VIEW,
    HookCall,
    JsonDict,
    PatientRecord,
)
from cds_service.services import SERVICES

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
AE_GRADE = "http://hl7.org/fhir/uv/ae-research-backport-ig/StructureDefinition/ae-grade"
GRADE_CODES = {1: "C41338", 2: "C41339", 3: "C41340", 4: "C41337", 5: "C48275"}
IXAZOMIB = "1723735"
IXAZOMIB_4MG = "1723770"
NINLARO_4MG = "1723772"
LENALIDOMIDE = "342369"
ANC = "751-8"
PLATELETS = "777-3"

_ids = itertools.count(1)


def when(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat()


def concept(system: str, code: str, display: str = "") -> JsonDict:
    coding: JsonDict = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def order(
    code: str = IXAZOMIB,
    dose: Any = 4,
    unit: str = "mg",
    status: str = "draft",
    days_ago: float = 0,
    id: str | None = None,
    timing: JsonDict | None = None,
    medication: JsonDict | None = None,
) -> JsonDict:
    """A MedicationRequest; ``medication`` replaces medicationCodeableConcept when given."""
    dosage: JsonDict = {
        "timing": timing
        or {
            "repeat": {
                "frequency": 1,
                "period": 1,
                "periodUnit": "wk",
                "boundsPeriod": {"start": when(days_ago)},
            }
        },
    }
    if dose is not None:
        dosage["doseAndRate"] = [
            {
                "doseQuantity": {
                    "value": Decimal(str(dose)),
                    "unit": unit,
                    "system": UCUM,
                    "code": unit,
                }
            }
        ]
    resource: JsonDict = {
        "resourceType": "MedicationRequest",
        "id": id or f"mr{next(_ids)}",
        "status": status,
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": when(days_ago),
        "dosageInstruction": [dosage],
    }
    resource.update(medication or {"medicationCodeableConcept": concept(RXNORM, code)})
    return resource


def lab(
    code: str,
    value: Any,
    unit: str,
    days_ago: float,
    status: str = "final",
    system: str | None = UCUM,
    high: JsonDict | None = None,
    id: str | None = None,
    effective: str | None = None,
) -> JsonDict:
    quantity: JsonDict = {"value": Decimal(str(value)), "unit": unit}
    if system:
        quantity.update({"system": system, "code": unit})
    resource: JsonDict = {
        "resourceType": "Observation",
        "id": id or f"obs{next(_ids)}",
        "status": status,
        "code": concept(LOINC, code),
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": effective or when(days_ago),
        "valueQuantity": quantity,
    }
    if high is not None:
        resource["referenceRange"] = [{"high": high}]
    return resource


def anc(per_mm3: Any, days_ago: float, **kwargs: Any) -> JsonDict:
    """ANC given in 10*3/uL (per_mm3 / 1000)."""
    return lab(ANC, Decimal(str(per_mm3)) / 1000, "10*3/uL", days_ago, **kwargs)


def platelets(per_mm3: Any, days_ago: float, **kwargs: Any) -> JsonDict:
    return lab(PLATELETS, Decimal(str(per_mm3)) / 1000, "10*3/uL", days_ago, **kwargs)


def good_cbc(days_ago: float = 1) -> list[JsonDict]:
    return [anc(2000, days_ago), platelets(200000, days_ago)]


def patient(birth: str = "1955-01-01", gender: str = "male") -> JsonDict:
    return {"resourceType": "Patient", "id": "p1", "birthDate": birth, "gender": gender}


def adverse_event(
    term: JsonDict,
    grade: int | None,
    days_ago: float = 2,
    outcome: str = "ongoing",
    severity: str | None = None,
    suspect: str | None = None,
    related: bool = True,
) -> JsonDict:
    resource: JsonDict = {
        "resourceType": "AdverseEvent",
        "id": f"ae{next(_ids)}",
        "actuality": "actual",
        "subject": {"reference": "Patient/p1"},
        "event": term,
        "date": when(days_ago),
        "outcome": concept("http://terminology.hl7.org/CodeSystem/adverse-event-outcome", outcome),
    }
    if grade is not None:
        resource["extension"] = [
            {"url": AE_GRADE, "valueCodeableConcept": concept(NCIT, GRADE_CODES[grade])}
        ]
    if severity is not None:
        resource["severity"] = concept(
            "http://terminology.hl7.org/CodeSystem/adverse-event-severity", severity
        )
    if suspect is not None:
        assessment = "Related" if related else "Unrelated"
        resource["suspectEntity"] = [
            {
                "instance": {"reference": suspect},
                "causality": [{"assessment": {"text": assessment}}],
            }
        ]
    return resource


NEUROPATHY = concept(NCIT, "C143752", "Peripheral sensory neuropathy")
RASH = concept(NCIT, "C143799", "Rash maculo-papular")
NEURALGIA = concept(NCIT, "C143703", "Neuralgia")
DIARRHEA = concept(NCIT, "C143272", "Diarrhea")


def record(
    history: list[JsonDict] | None = None,
    labs: list[JsonDict] | None = None,
    **others: list[JsonDict],
) -> PatientRecord:
    resources = {
        "patient": [patient()],
        "medicationRequests": history or [],
        "labs": labs if labs is not None else good_cbc(),
        "toxicityGrades": [],
        "toxicityObservations": [],
        "adverseEvents": [],
        "conditions": [],
        "procedures": [],
        "allergies": [],
    }
    resources.update(others)
    return PatientRecord(resources=resources)


def sign(
    draft: JsonDict | list[JsonDict],
    rec: PatientRecord,
    settings: RuleSettings | None = None,
    hook: str = HOOK_ORDER_SIGN,
    selections: list[str] | None = None,
) -> list[JsonDict]:
    drafts = draft if isinstance(draft, list) else [draft]
    call = HookCall(
        hook=hook,
        service_id="ixazomib-order-sign",
        hook_instance="h1",
        patient_id="p1",
        now=NOW,
        draft_orders=drafts,
        selections=selections or [],
    )
    service = SERVICES.for_hook(hook)
    cards = service.render(service.decide(call, rec, settings or RuleSettings()))
    assert_contract(cards)
    return cards


def lab_result(
    new: list[JsonDict], rec: PatientRecord, settings: RuleSettings | None = None
) -> list[JsonDict]:
    call = HookCall(
        hook=HOOK_LAB_RESULT,
        service_id="ixazomib-lab-result",
        hook_instance="h2",
        patient_id="p1",
        now=NOW,
        new_observations=new,
    )
    service = SERVICES.for_hook(HOOK_LAB_RESULT)
    cards = service.render(service.decide(call, rec, settings or RuleSettings()))
    assert_contract(cards)
    return cards


def patient_view(rec: PatientRecord, settings: RuleSettings | None = None) -> list[JsonDict]:
    """The patient-view answer; a course card that advises is held to the contract."""
    call = HookCall(
        hook=HOOK_PATIENT_VIEW,
        service_id="ixazomib-patient-view",
        hook_instance="h3",
        patient_id="p1",
        now=NOW,
    )
    service = SERVICES.for_hook(HOOK_PATIENT_VIEW)
    cards = service.render(service.decide(call, rec, settings or RuleSettings()))
    assert len(cards) <= 1, "patient-view answers one course card at most"
    assert_contract([c for c in cards if "extension" in c])
    return cards


def recommendation(card: JsonDict) -> JsonDict:
    found: JsonDict = card["extension"]["org.ixazomib-cds.recommendation"]
    return found


def by_rule(cards: list[JsonDict], rule: str) -> list[JsonDict]:
    return [c for c in cards if recommendation(c)["rule"] == rule]


def one(cards: list[JsonDict], rule: str) -> JsonDict:
    found = by_rule(cards, rule)
    assert len(found) == 1, f"{rule}: {[recommendation(c)['rule'] for c in cards]}"
    return found[0]


def rules_of(cards: list[JsonDict]) -> list[str]:
    return sorted(recommendation(c)["rule"] for c in cards)


def assert_contract(cards: list[JsonDict]) -> None:
    """Every card as service-contract.md and CDS Hooks 2.0 require."""

    def no_nulls_or_empties(value: Any, where: str) -> None:
        assert value is not None, where
        if isinstance(value, (list, dict, str)):
            assert len(value) > 0, f"empty at {where}"
        if isinstance(value, dict):
            for key, item in value.items():
                no_nulls_or_empties(item, f"{where}.{key}")
        if isinstance(value, list):
            for index, item in enumerate(value):
                no_nulls_or_empties(item, f"{where}[{index}]")
        assert not isinstance(value, float), f"float at {where}"

    keys = []
    for card in cards:
        no_nulls_or_empties(card, "card")
        assert len(card["summary"]) < 140
        assert card["indicator"] in {"info", "warning", "critical"}
        assert card["uuid"]
        assert card["source"]["url"].startswith("https://dailymed")
        assert card["source"]["label"].startswith("NINLARO (ixazomib) US prescribing")
        assert all({"system", "code", "display"} <= set(r) for r in card["overrideReasons"])
        rec = recommendation(card)
        assert rec["ixazomib"]["action"] in IXAZOMIB_ACTIONS
        for drug in ("ixazomib", "lenalidomide"):
            if drug in rec and "doseMg" in rec[drug] and drug == "ixazomib":
                assert rec[drug]["doseMg"] in (Decimal("2.3"), 3, 4)
        if "suggestions" in card:
            assert card["selectionBehavior"] == "at-most-one"
            for suggestion in card["suggestions"]:
                assert suggestion["uuid"]
                assert suggestion["actions"]
        action = rec["ixazomib"]["action"]
        if action in {"reduce", "start-reduced", "correct-dose"} and "suggestions" in card:
            (suggestion,) = card["suggestions"]
            (update,) = suggestion["actions"]
            assert update["type"] == "update"
            quantity = update["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
            assert quantity == {
                "value": rec["ixazomib"]["doseMg"],
                "unit": "mg",
                "system": UCUM,
                "code": "mg",
            }
        keys.append((rec["rule"], repr(rec), card["summary"]))
    assert len(keys) == len(set(keys)), "duplicate cards"
