"""Writes cds_service/scenarios/*.json: the clinical scenarios, built from the label.

The JSON files are what the tests read; this script is how they were written, so that the
patients' records stay consistent (cycles every 28 days, CBCs on day 1 of each cycle, the
dose history agreeing with the toxicity history). Run it from the repository root:

    .venv/bin/python fhir_fixtures/build_scenarios.py

Every date is written relative to NOW (2026-03-10T09:00:00Z); the loader shifts it to the real
time of the test run. Each scenario's ``label`` names the label row it exercises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

J = dict[str, Any]

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
# The scenarios ship with the package (``ixazomib-cds load-fixtures`` works installed).
OUT = Path(__file__).resolve().parent.parent / "cds_service" / "scenarios"

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
MEDDRA = "http://terminology.hl7.org/CodeSystem/mdr"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
AE_OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
AE_SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
AE_CAUSALITY = "http://terminology.hl7.org/CodeSystem/adverse-event-causality-assess"
COND_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VERIFY = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
GRADE_BACKPORT = "http://hl7.org/fhir/uv/ae-research-backport-ig/StructureDefinition/ae-grade"
GRADE_R5 = "http://hl7.org/fhir/uv/ae-research-ig/StructureDefinition/ae-grade"

GRADE_CODES = {1: "C41338", 2: "C41339", 3: "C41340", 4: "C41337", 5: "C48275"}

IXA_INGREDIENT = ("1723735", "ixazomib")
IXA_CAPSULE = {"2.3": "1723757", "3": "1723765", "4": "1723770"}
NINLARO_CAPSULE = {"2.3": "1723763", "3": "1723767", "4": "1723772"}

SERVICE_SIGN = "ixazomib-order-sign"
SERVICE_SELECT = "ixazomib-order-select"
SERVICE_LAB = "ixazomib-lab-result"
SERVICE_VIEW = "ixazomib-patient-view"

PRACTITIONER = "Practitioner/onc-hartmann"


def ts(day: float, naive: bool = False) -> str:
    """NOW + ``day`` days as a FHIR dateTime (UTC ``Z``, or without zone, Epic style)."""
    moment = NOW + timedelta(days=day)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text if naive else text + "Z"


def fmt_num(value: float | int) -> float | int:
    return int(value) if float(value).is_integer() else value


def dose_key(dose: float) -> str:
    return format(dose, "g")


# ------------------------------------------------------------------------------ resources


def patient(pid: str, gender: str, age: int, name: tuple[str, str]) -> J:
    # Birthday on 15 August: about five months from NOW, so the age never straddles it.
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.9999.1", "value": f"MRN-{pid}"}],
        "active": True,
        # The first given name is the scenario id: in a client's patient picker each of the
        # many fixture patients says which scenario it is (names and birth dates repeat).
        "name": [{"use": "official", "family": name[0], "given": [pid, name[1]]}],
        "gender": gender,
        "birthDate": f"{NOW.year - age - 1}-08-15",
    }


@dataclass
class Lab:
    code: str
    display: str
    unit_code: str | None
    unit_display: str
    low: float | None
    high: float | None


LABS: dict[str, Lab] = {
    "anc": Lab(
        "751-8", "Neutrophils [#/volume] in Blood by Automated count", "10*9/L", "10*9/L", 1.5, 8.0
    ),
    "plt": Lab(
        "777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", "10*3/uL", 150, 400
    ),
    "bili": Lab(
        "1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 0.2, 1.2
    ),
    "bili-umol": Lab(
        "14631-6", "Bilirubin.total [Moles/volume] in Serum or Plasma", "umol/L", "umol/L", 3, 21
    ),
    "creat": Lab(
        "2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 0.7, 1.3
    ),
    "creat-umol": Lab(
        "14682-9", "Creatinine [Moles/volume] in Serum or Plasma", "umol/L", "umol/L", 62, 115
    ),
    "crcl": Lab(
        "2164-2",
        "Creatinine renal clearance in 24 hour Urine and Serum or Plasma",
        "mL/min",
        "mL/min",
        90,
        140,
    ),
    "egfr": Lab(
        "98979-8",
        "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, "
        "Plasma or Blood by Creatinine-based formula (CKD-EPI 2021)",
        "mL/min/{1.73_m2}",
        "mL/min/1.73m2",
        60,
        None,
    ),
    "anc-manual": Lab(
        "753-4", "Neutrophils [#/volume] in Blood by Manual count", "10*9/L", "10*9/L", 1.5, 8.0
    ),
    "crcl-cg": Lab(
        "35591-7",
        "Creatinine renal clearance predicted by Cockcroft-Gault formula",
        "mL/min",
        "mL/min",
        90,
        140,
    ),
    "weight": Lab("29463-7", "Body weight", "kg", "kg", None, None),
    "weight-lb": Lab("29463-7", "Body weight", "[lb_av]", "lb", None, None),
}

CBC_UNIT_FACTORS = {  # value in 10*9/L times factor = value in the unit
    "10*9/L": 1,
    "10*3/uL": 1,
    "/uL": 1000,
    "/mm3": 1000,
}


def obs(
    oid: str,
    pid: str,
    kind: str,
    value: float,
    day: float,
    *,
    unit_code: str | None = "default",
    unit_display: str | None = None,
    status: str = "final",
    ref: bool = True,
    naive: bool = False,
    unit_system: bool = True,
) -> J:
    lab = LABS[kind]
    code = lab.unit_code if unit_code == "default" else unit_code
    display = unit_display or code or lab.unit_display
    factor = CBC_UNIT_FACTORS.get(code or "", 1) if kind.startswith(("anc", "plt")) else 1
    quantity: J = {"value": fmt_num(value), "unit": display}
    if code is not None and unit_system:
        quantity["system"] = UCUM
        quantity["code"] = code
    category = "vital-signs" if kind.startswith("weight") else "laboratory"
    resource: J = {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "category": [{"coding": [{"system": OBS_CAT, "code": category}]}],
        "code": {
            "coding": [{"system": LOINC, "code": lab.code, "display": lab.display}],
            "text": lab.display,
        },
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": ts(day, naive),
        "issued": ts(day + 0.05),  # an instant: a zone is mandatory, even at Epic
        "valueQuantity": quantity,
    }
    if ref and (lab.low is not None or lab.high is not None):
        rng: J = {}
        unit = {"unit": display, "system": UCUM, "code": code} if code else {"unit": display}
        if lab.low is not None:
            rng["low"] = {"value": fmt_num(round(lab.low * factor, 6)), **unit}
        if lab.high is not None:
            rng["high"] = {"value": fmt_num(round(lab.high * factor, 6)), **unit}
        resource["referenceRange"] = [rng]
    return resource


def cbc(pid: str, tag: str, day: float, anc: float, plt: float, naive: bool = False) -> list[J]:
    """ANC in 10*9/L and platelets in 10*3/uL, drawn together."""
    return [
        obs(f"{pid}-anc-{tag}", pid, "anc", anc, day, naive=naive),
        obs(f"{pid}-plt-{tag}", pid, "plt", plt, day, naive=naive),
    ]


def codeable(system: str, code: str, display: str, text: str | None = None) -> J:
    concept: J = {"coding": [{"system": system, "code": code, "display": display}]}
    if text:
        concept["text"] = text
    return concept


def ixa_concept(dose: float | None, style: str = "ingredient") -> J:
    if style == "ninlaro" and dose is not None:
        k = dose_key(dose)
        return codeable(
            RXNORM,
            NINLARO_CAPSULE[k],
            f"Ninlaro {k} MG Oral Capsule",
            f"NINLARO (ixazomib) {k} mg capsule",
        )
    if style == "capsule" and dose is not None and dose_key(dose) in IXA_CAPSULE:
        k = dose_key(dose)
        return codeable(
            RXNORM, IXA_CAPSULE[k], f"ixazomib {k} MG Oral Capsule", f"ixazomib {k} mg capsule"
        )
    return codeable(RXNORM, IXA_INGREDIENT[0], "ixazomib", "ixazomib (NINLARO)")


def weekly_timing(
    start_day: float, frequency: int = 1, period: int = 1, unit: str = "wk", naive: bool = False
) -> J:
    return {
        "repeat": {
            "boundsPeriod": {"start": ts(start_day, naive), "end": ts(start_day + 21, naive)},
            "frequency": frequency,
            "period": period,
            "periodUnit": unit,
        },
        "code": {"text": "Days 1, 8 and 15 of a 28-day cycle"}
        if unit == "wk" and frequency == 1
        else {"text": f"{frequency} time(s) per {period} {unit}"},
    }


def dosage(text: str, dose: float, timing: J, unit: str = "mg") -> J:
    return {
        "sequence": 1,
        "text": text,
        "timing": timing,
        "route": codeable(SNOMED, "26643006", "Oral route"),
        "doseAndRate": [
            {
                "type": codeable(
                    "http://terminology.hl7.org/CodeSystem/dose-rate-type", "ordered", "Ordered"
                ),
                "doseQuantity": {
                    "value": fmt_num(dose),
                    "unit": unit,
                    "system": UCUM,
                    "code": unit,
                },
            }
        ],
    }


def med_request(
    mid: str,
    pid: str,
    day: float,
    status: str,
    medication: J,
    dose_text: str,
    dose: float,
    timing: J,
    supply_days: int = 28,
    naive: bool = False,
) -> J:
    resource: J = {
        "resourceType": "MedicationRequest",
        "id": mid,
        "status": status,
        "intent": "order",
        **medication,
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": ts(day - 1, naive),
        "requester": {"reference": PRACTITIONER},
        "dosageInstruction": [dosage(dose_text, dose, timing)],
        "dispenseRequest": {
            "expectedSupplyDuration": {
                "value": supply_days,
                "unit": "days",
                "system": UCUM,
                "code": "d",
            },
        },
    }
    return resource


def ixa_order(
    mid: str,
    pid: str,
    day: float,
    dose: float,
    status: str,
    *,
    style: str = "capsule",
    frequency: int = 1,
    period: int = 1,
    unit: str = "wk",
    medication: J | None = None,
    naive: bool = False,
) -> J:
    med = (
        medication
        if medication is not None
        else {"medicationCodeableConcept": ixa_concept(dose, style)}
    )
    if unit == "wk" and frequency == 1:
        text = (
            f"{fmt_num(dose)} mg by mouth once weekly on days 1, 8 and 15 of a 28-day cycle, "
            "on an empty stomach"
        )
    elif unit == "d":
        text = f"{fmt_num(dose)} mg by mouth once daily"
    else:
        text = f"{fmt_num(dose)} mg by mouth {frequency} times a week"
    request = med_request(
        mid,
        pid,
        day,
        status,
        med,
        text,
        dose,
        weekly_timing(day, frequency, period, unit, naive),
        naive=naive,
    )
    request["dispenseRequest"]["quantity"] = {
        "value": 3,
        "unit": "capsule",
        "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
        "code": "CAP",
    }
    return request


def len_order(mid: str, pid: str, day: float, dose: float, status: str) -> J:
    timing = {
        "repeat": {
            "boundsPeriod": {"start": ts(day), "end": ts(day + 20)},
            "frequency": 1,
            "period": 1,
            "periodUnit": "d",
        },
        "code": {"text": "Days 1-21 of a 28-day cycle"},
    }
    med = {
        "medicationCodeableConcept": codeable(
            RXNORM, "342369", "lenalidomide", f"lenalidomide {fmt_num(dose)} mg capsule"
        )
    }
    return med_request(
        mid,
        pid,
        day,
        status,
        med,
        f"{fmt_num(dose)} mg by mouth once daily on days 1-21 of a 28-day cycle",
        dose,
        timing,
    )


def dex_order(mid: str, pid: str, day: float, status: str) -> J:
    timing = {
        "repeat": {
            "boundsPeriod": {"start": ts(day), "end": ts(day + 22)},
            "frequency": 1,
            "period": 1,
            "periodUnit": "wk",
        },
        "code": {"text": "Days 1, 8, 15 and 22 of a 28-day cycle"},
    }
    med = {
        "medicationCodeableConcept": codeable(
            RXNORM, "3264", "dexamethasone", "dexamethasone 4 mg tablet"
        )
    }
    return med_request(
        mid,
        pid,
        day,
        status,
        med,
        "40 mg by mouth once weekly with food on days 1, 8, 15 and 22",
        40,
        timing,
    )


def other_med(
    mid: str, pid: str, day: float, status: str, code: str, name: str, dose: float, per_day: int = 1
) -> J:
    timing = {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}}
    med = {"medicationCodeableConcept": codeable(RXNORM, code, name, f"{name} {fmt_num(dose)} mg")}
    return med_request(
        mid,
        pid,
        day,
        status,
        med,
        f"{fmt_num(dose)} mg by mouth daily",
        dose,
        timing,
        supply_days=30,
    )


def condition(
    cid: str, pid: str, system: str, code: str, display: str, day: float, status: str = "active"
) -> J:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": codeable(COND_CLINICAL, status, status.capitalize()),
        "verificationStatus": codeable(COND_VERIFY, "confirmed", "Confirmed"),
        "category": [
            codeable(
                "http://terminology.hl7.org/CodeSystem/condition-category",
                "problem-list-item",
                "Problem List Item",
            )
        ],
        "code": codeable(system, code, display, display),
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": ts(day),
        "recordedDate": ts(day),
    }


def myeloma(pid: str) -> J:
    return condition(f"{pid}-mm", pid, SNOMED, "109989006", "Multiple myeloma", -400)


TERMS: dict[str, list[tuple[str, str, str]]] = {
    "neuropathy": [
        (NCIT, "C143752", "Peripheral sensory neuropathy"),
        (MEDDRA, "10034620", "Peripheral sensory neuropathy"),
        (SNOMED, "302226006", "Peripheral nerve disease"),
    ],
    "rash": [
        (NCIT, "C143799", "Rash maculo-papular"),
        (MEDDRA, "10037868", "Rash maculo-papular"),
        (SNOMED, "247471006", "Maculopapular eruption"),
    ],
    "neuralgia": [(NCIT, "C143703", "Neuralgia"), (SNOMED, "247398009", "Neuropathic pain")],
    "diarrhea": [(MEDDRA, "10012735", "Diarrhoea"), (SNOMED, "62315008", "Diarrhea")],
}


def adverse_event(
    aid: str,
    pid: str,
    term: str,
    day: float,
    grade: int | None,
    *,
    outcome: str = "ongoing",
    grade_url: str = GRADE_BACKPORT,
    severity: str | None = None,
    suspect: str | None = None,
    causality: str = "Probably-Likely",
) -> J:
    resource: J = {"resourceType": "AdverseEvent", "id": aid}
    if grade is not None:
        resource["extension"] = [
            {
                "url": grade_url,
                "valueCodeableConcept": codeable(
                    NCIT, GRADE_CODES[grade], f"Grade {grade} Adverse Event"
                ),
            }
        ]
    resource.update(
        {
            "actuality": "actual",
            "event": {
                "coding": [{"system": s, "code": c, "display": d} for s, c, d in TERMS[term]],
                "text": TERMS[term][0][2],
            },
            "subject": {"reference": f"Patient/{pid}"},
            "date": ts(day),
            "detected": ts(day),
            "recordedDate": ts(day + 0.1),
            "outcome": codeable(AE_OUTCOME, outcome, outcome),
            "recorder": {"reference": PRACTITIONER},
        }
    )
    if severity is not None:
        resource["severity"] = codeable(AE_SEVERITY, severity, severity.capitalize())
    if suspect is not None:
        resource["suspectEntity"] = [
            {
                "instance": {"reference": f"MedicationRequest/{suspect}"},
                "causality": [{"assessment": codeable(AE_CAUSALITY, causality, causality)}],
            }
        ]
    return resource


def grade_obs(oid: str, pid: str, term: str, day: float, grade: int, coded: bool) -> J:
    system, code, display = TERMS[term][0]
    resource: J = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [{"system": OBS_CAT, "code": "exam"}]}],
        "code": {
            "coding": [{"system": system, "code": code, "display": display}],
            "text": f"{display} (CTCAE v4.03 grade)",
        },
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": ts(day),
        "performer": [{"reference": PRACTITIONER}],
    }
    if coded:
        resource["valueCodeableConcept"] = codeable(
            NCIT, GRADE_CODES[grade], f"Grade {grade} Adverse Event"
        )
    else:
        resource["valueInteger"] = grade
    return resource


def pain_score(oid: str, pid: str, day: float, score: int) -> J:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [{"system": OBS_CAT, "code": "survey"}]}],
        "code": codeable(
            LOINC, "72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported"
        ),
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": ts(day),
        "valueQuantity": {"value": score, "unit": "{score}", "system": UCUM, "code": "{score}"},
    }


def procedure(prid: str, pid: str, code: str, display: str, day: float) -> J:
    return {
        "resourceType": "Procedure",
        "id": prid,
        "status": "completed",
        "code": codeable(SNOMED, code, display, display),
        "subject": {"reference": f"Patient/{pid}"},
        "performedPeriod": {"start": ts(day), "end": ts(day + 0.17)},
    }


# -------------------------------------------------------------------------------- records


@dataclass
class Cycle:
    day: float
    ixa: float
    len: float = 25
    status: str = "completed"


@dataclass
class Record:
    """A patient with myeloma, optionally on ixazomib-lenalidomide-dexamethasone."""

    pid: str
    gender: str = "male"
    age: int = 66
    name: tuple[str, str] = ("Okafor", "Daniel")
    cycles: list[Cycle] = field(default_factory=list)
    resources: list[J] = field(default_factory=list)
    style: str = "capsule"

    def build(self) -> list[J]:
        out = [patient(self.pid, self.gender, self.age, self.name), myeloma(self.pid)]
        for n, cycle in enumerate(self.cycles, start=1):
            out.append(
                ixa_order(
                    f"{self.pid}-ixa-c{n}",
                    self.pid,
                    cycle.day,
                    cycle.ixa,
                    cycle.status,
                    style=self.style,
                )
            )
            out.append(
                len_order(f"{self.pid}-len-c{n}", self.pid, cycle.day, cycle.len, cycle.status)
            )
            out.append(dex_order(f"{self.pid}-dex-c{n}", self.pid, cycle.day, cycle.status))
        return out + self.resources

    def last_ixa_id(self) -> str:
        return f"{self.pid}-ixa-c{len(self.cycles)}"


def on_treatment(
    n_cycles: int = 4, ixa: float = 4, len_: float = 25, current: str = "active"
) -> list[Cycle]:
    """``n_cycles`` cycles every 28 days, the last one started 27 days ago (so the draft is the
    next cycle); the last is ``current``, the others completed."""
    first = -27 - 28 * (n_cycles - 1)
    cycles = [Cycle(first + 28 * i, ixa, len_) for i in range(n_cycles)]
    cycles[-1].status = current
    return cycles


def good_labs(pid: str, day: float = -1, tag: str = "now") -> list[J]:
    return [
        *cbc(pid, tag, day, 3.1, 212),
        obs(f"{pid}-bili-{tag}", pid, "bili", 0.6, day),
        obs(f"{pid}-creat-{tag}", pid, "creat", 0.9, day),
        obs(f"{pid}-weight-{tag}", pid, "weight", 78.4, day),
    ]


def history_cbcs(pid: str, cycles: list[Cycle]) -> list[J]:
    """Normal day-1 CBCs for past cycles (the current one's CBC is the scenario's)."""
    out: list[J] = []
    for n, cycle in enumerate(cycles, start=1):
        out += cbc(pid, f"c{n}d1", cycle.day - 1, 2.8, 190)
    return out


def draft_bundle(*orders: J, extra: list[J] | None = None, with_type: bool = True) -> J:
    bundle: J = {"resourceType": "Bundle"}
    if with_type:
        bundle["type"] = "collection"
    bundle["entry"] = [{"resource": o} for o in [*orders, *(extra or [])]]
    return bundle


def draft_ixa(pid: str, dose: float = 4, **kwargs: Any) -> J:
    kwargs.setdefault("style", "ingredient")
    return ixa_order(f"{pid}-ixa-draft", pid, 1, dose, "draft", **kwargs)


def draft_len(pid: str, dose: float = 25) -> J:
    order = len_order(f"{pid}-len-draft", pid, 1, dose, "draft")
    return order


# ------------------------------------------------------------------------------ scenarios

SCENARIOS: list[J] = []


def rec(
    rule: str | list[str],
    ixa: str | list[str] | None = None,
    dose: float | None = None,
    len_: str | None = None,
    len_dose: float | None = None,
    **extra: Any,
) -> J:
    out: J = {"rule": rule}
    if ixa is not None:
        out["ixazomib"] = {"action": ixa}
        if dose is not None:
            out["ixazomib"]["doseMg"] = fmt_num(dose)
    if len_ is not None:
        out["lenalidomide"] = {"action": len_}
        if len_dose is not None:
            out["lenalidomide"]["doseMg"] = fmt_num(len_dose)
    out.update(extra)
    return out


def add(
    sid: str,
    title: str,
    label: str,
    record: Record,
    expected: list[J],
    *,
    service: str = SERVICE_SIGN,
    drafts: list[J] | None = None,
    draft_extra: list[J] | None = None,
    new_obs: list[J] | None = None,
    optional: list[J] | None = None,
    allow_extra_review: bool = False,
    prefetch_failures: dict[str, str] | None = None,
    with_type: bool = True,
    send_fhir_server: bool = True,
    expected_cards: list[J] | None = None,
) -> None:
    pid = record.pid
    context: J = {"userId": PRACTITIONER, "patientId": pid, "encounterId": f"{pid}-enc"}
    if service in (SERVICE_SIGN, SERVICE_SELECT):
        orders = drafts if drafts is not None else [draft_ixa(pid)]
        context["draftOrders"] = draft_bundle(*orders, extra=draft_extra, with_type=with_type)
        if service == SERVICE_SELECT:
            context["selections"] = [f"MedicationRequest/{orders[0]['id']}"]
    elif service == SERVICE_VIEW:
        pass  # patient-view: userId, patientId and encounterId only
    else:
        context["observations"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": o} for o in new_obs or []],
        }
    scenario: J = {
        "id": sid,
        "title": title,
        "label": label,
        "service": service,
        "now": ts(0),
        "context": context,
        "resources": record.build(),
        "expected": expected,
    }
    if expected_cards is not None:
        scenario["expectedCards"] = expected_cards
    if optional:
        scenario["optional"] = optional
    if allow_extra_review:
        scenario["allowExtraReview"] = True
    if prefetch_failures:
        scenario["prefetchFailures"] = prefetch_failures
    if not with_type:
        scenario["deviations"] = ["draftOrders-bundle-without-type"]
    if not send_fhir_server:
        scenario["fhirServer"] = False
    SCENARIOS.append(scenario)


GATE = rec("new-cycle-gate", ["hold", "review"])


def medication(mid: str, dose: float, product: bool = True) -> J:
    k = dose_key(dose)
    return {
        "resourceType": "Medication",
        "id": mid,
        "code": ixa_concept(dose, "ninlaro" if product else "capsule"),
        "form": codeable(SNOMED, "385049006", "Capsule"),
        "ingredient": [
            {
                "itemCodeableConcept": codeable(RXNORM, "1723734", "ixazomib citrate"),
                "isActive": True,
                "strength": {
                    "numerator": {
                        "value": fmt_num(dose),
                        "unit": "mg",
                        "system": UCUM,
                        "code": "mg",
                    },
                    "denominator": {
                        "value": 1,
                        "unit": "capsule",
                        "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
                        "code": "CAP",
                    },
                },
            }
        ]
        if k
        else [],
    }


def naive(
    pid: str,
    *,
    gender: str = "male",
    age: int = 66,
    bili: J | bool | None = True,
    creat: J | bool | None = True,
    weight: J | bool | None = True,
    extra: list[J] | None = None,
    name: tuple[str, str] = ("Lindqvist", "Maria"),
) -> Record:
    """Newly diagnosed, no ixazomib yet; normal CBC, bilirubin, creatinine, weight (each
    replaceable by a given Observation, or left out with None)."""
    record = Record(pid, gender=gender, age=age, name=name)
    record.resources += cbc(pid, "now", -1, 3.4, 240)
    defaults = {
        "bili": obs(f"{pid}-bili-now", pid, "bili", 0.7, -1),
        "creat": obs(f"{pid}-creat-now", pid, "creat", 0.9, -1),
        "weight": obs(f"{pid}-weight-now", pid, "weight", 74, -1),
    }
    for key, given in (("bili", bili), ("creat", creat), ("weight", weight)):
        if given is True:
            record.resources.append(defaults[key])
        elif isinstance(given, dict):
            record.resources.append(given)
    record.resources += extra or []
    return record


def treated_record(
    pid: str, cycles: list[Cycle], extra: list[J] | None = None, labs: bool = True, **kwargs: Any
) -> Record:
    record = Record(pid, cycles=cycles, **kwargs)
    record.resources += history_cbcs(pid, cycles)
    if labs:
        record.resources += good_labs(pid)
    record.resources += extra or []
    return record


def strip_zones(value: Any, key: str = "") -> Any:
    """Epic style: dateTimes without a zone (instants such as ``issued`` keep theirs)."""
    if isinstance(value, dict):
        return {k: strip_zones(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_zones(v, key) for v in value]
    if (
        isinstance(value, str)
        and key != "issued"
        and len(value) == 20
        and value.endswith("Z")
        and value[10] == "T"
    ):
        return value[:-1]
    return value


HEP = "Label 2.4 / 8.6 hepatic impairment starting dose"
REN = "Label 2.5 / 8.7 renal impairment starting dose"
PLT = "Table 3: platelet count < 30,000/mm3"
ANC = "Table 3: ANC < 500/mm3"
RASH23 = "Table 3: rash Grade 2 or 3"
PN = "Table 3: peripheral neuropathy"
OTHER = "Table 3: other non-hematologic toxicity Grade 3 or 4"
GATE_LABEL = "Label 2.2: criteria before each new cycle"
DOSING = "Label 2.1 / 2.3 dosing, Table 2 dose levels; overdose (10)"
START_REDUCED = rec("hepatic-start-dose", "start-reduced", 3)
RENAL_REDUCED = rec("renal-start-dose", "start-reduced", 3)


def hepatic() -> None:
    def bili(pid: str, value: float, kind: str = "bili", ref: bool = True) -> J:
        return obs(f"{pid}-bili-now", pid, kind, value, -1, ref=ref)

    pid = "hep-moderate"
    add(
        pid,
        "Moderate hepatic impairment (bilirubin 2.4 mg/dL = 2.0 x ULN 1.2): start at 3 mg",
        HEP,
        naive(pid, bili=bili(pid, 2.4)),
        [START_REDUCED],
    )
    pid = "hep-severe"
    add(
        pid,
        "Severe hepatic impairment (bilirubin 4.1 mg/dL = 3.4 x ULN 1.2): start at 3 mg",
        HEP,
        naive(pid, bili=bili(pid, 4.1)),
        [START_REDUCED],
    )
    pid = "hep-mild"
    add(
        pid,
        "Mild hepatic impairment (bilirubin 1.6 mg/dL = 1.33 x ULN): no change, no card",
        HEP,
        naive(pid, bili=bili(pid, 1.6)),
        [],
    )
    pid = "hep-boundary-1-5x"
    add(
        pid,
        "Bilirubin exactly 1.5 x ULN (1.8 mg/dL, ULN 1.2) is mild: no card (exact "
        "decimal comparison)",
        HEP,
        naive(pid, bili=bili(pid, 1.8)),
        [],
    )
    pid = "hep-moderate-no-range"
    add(
        pid,
        "Bilirubin 2.5 mg/dL without a reference range: moderate for any usual assumed "
        "ULN (1.0-1.3 mg/dL); start at 3 mg and say which ULN was assumed",
        HEP,
        naive(pid, bili=bili(pid, 2.5, ref=False)),
        [START_REDUCED],
    )
    pid = "hep-mild-no-range"
    add(
        pid,
        "Bilirubin 1.1 mg/dL without a reference range: mild for any usual assumed ULN; "
        "no start-dose card (a review about the assumed ULN is tolerated)",
        HEP,
        naive(pid, bili=bili(pid, 1.1, ref=False)),
        [],
        allow_extra_review=True,
    )
    pid = "hep-moderate-umol"
    add(
        pid,
        "Moderate hepatic impairment in SI units (bilirubin 51 umol/L, ULN 21 umol/L = "
        "2.4 x ULN): start at 3 mg",
        HEP,
        naive(pid, bili=bili(pid, 51, "bili-umol")),
        [START_REDUCED],
    )
    pid = "hep-moderate-draft-3mg"
    add(
        pid,
        "Moderate hepatic impairment and the draft is already 3 mg: nothing to change",
        HEP,
        naive(pid, bili=bili(pid, 2.4)),
        [],
        drafts=[draft_ixa(pid, 3)],
    )
    pid = "hep-moderate-order-select"
    add(
        pid,
        "Moderate hepatic impairment at order-select: start at 3 mg",
        HEP,
        naive(pid, bili=bili(pid, 2.4)),
        [START_REDUCED],
        service=SERVICE_SELECT,
    )
    pid = "hep-already-started"
    cycles = on_treatment(3)
    record = treated_record(
        pid,
        cycles,
        labs=False,
        extra=[
            *cbc(pid, "now", -1, 2.9, 188),
            obs(f"{pid}-bili-baseline", pid, "bili", 2.4, cycles[0].day - 5),
            bili(pid, 2.3),
            obs(f"{pid}-creat-now", pid, "creat", 0.9, -1),
            obs(f"{pid}-weight-now", pid, "weight", 70, -1),
        ],
    )
    add(
        pid,
        "Moderate hepatic impairment since baseline but ixazomib was started at 4 mg three "
        "cycles ago: the start-dose rule no longer applies",
        HEP,
        record,
        [],
        allow_extra_review=True,
    )


def medication_forms() -> None:
    def record(pid: str, extra: list[J] | None = None) -> Record:
        return naive(pid, bili=obs(f"{pid}-bili-now", pid, "bili", 2.4, -1), extra=extra)

    pid = "med-contained"
    order = draft_ixa(pid, 4, medication={"medicationReference": {"reference": "#ninlaro"}})
    contained = medication("ninlaro", 4)
    order = {
        "resourceType": "MedicationRequest",
        "id": order["id"],
        "contained": [contained],
        **{k: v for k, v in order.items() if k not in ("resourceType", "id")},
    }
    add(
        pid,
        "Ixazomib ordered as medicationReference to a contained Medication (Ninlaro 4 mg "
        "capsule) in moderate hepatic impairment: start at 3 mg",
        HEP,
        record(pid),
        [START_REDUCED],
        drafts=[order],
    )

    pid = "med-in-bundle"
    med = medication(f"{pid}-ninlaro4", 4)
    order = draft_ixa(
        pid, 4, medication={"medicationReference": {"reference": f"Medication/{med['id']}"}}
    )
    add(
        pid,
        "Ixazomib ordered as medicationReference to a Medication sent in the draftOrders "
        "Bundle (Epic style, Bundle without type): start at 3 mg",
        HEP,
        record(pid),
        [START_REDUCED],
        drafts=[order],
        draft_extra=[med],
        with_type=False,
    )

    pid = "med-on-server"
    med = medication(f"{pid}-ninlaro4", 4)
    order = draft_ixa(
        pid, 4, medication={"medicationReference": {"reference": f"Medication/{med['id']}"}}
    )
    add(
        pid,
        "Ixazomib ordered as medicationReference to a Medication held only on the FHIR "
        "server (must be read from fhirServer): start at 3 mg",
        HEP,
        record(pid, [med]),
        [START_REDUCED],
        drafts=[order],
    )

    pid = "med-product-code"
    add(
        pid,
        "Ixazomib ordered by product code (RxNorm 1723772 Ninlaro 4 mg capsule): start at "
        "3 mg, and the suggestion switches the product to Ninlaro 3 mg (1723767)",
        HEP,
        record(pid),
        [rec("hepatic-start-dose", "start-reduced", 3, suggestedProductCode="1723767")],
        drafts=[draft_ixa(pid, 4, style="ninlaro")],
    )


def renal() -> None:
    def creat(pid: str, value: float, kind: str = "creat") -> J:
        return obs(f"{pid}-creat-now", pid, kind, value, -1)

    def weight(pid: str, value: float, kind: str = "weight") -> J:
        return obs(f"{pid}-weight-now", pid, kind, value, -1)

    pid = "ren-crcl-measured"
    add(
        pid,
        "Measured 24-h creatinine clearance 25 mL/min (Cockcroft-Gault would give 43): "
        "the measured value wins; start at 3 mg",
        REN,
        naive(
            pid,
            creat=creat(pid, 1.9),
            weight=weight(pid, 80),
            extra=[obs(f"{pid}-crcl", pid, "crcl", 25, -2)],
        ),
        [RENAL_REDUCED],
    )
    pid = "ren-cg-mgdl"
    add(
        pid,
        "Cockcroft-Gault from creatinine 2.1 mg/dL, 78-year-old man, 60 kg: CrCl 24.6 "
        "mL/min; start at 3 mg",
        REN,
        naive(pid, age=78, creat=creat(pid, 2.1), weight=weight(pid, 60)),
        [RENAL_REDUCED],
    )
    pid = "ren-cg-umol"
    add(
        pid,
        "Cockcroft-Gault from creatinine 186 umol/L (2.10 mg/dL), 78-year-old man, 60 kg: "
        "CrCl 24.6 mL/min; start at 3 mg",
        REN,
        naive(pid, age=78, creat=creat(pid, 186, "creat-umol"), weight=weight(pid, 60)),
        [RENAL_REDUCED],
    )
    pid = "ren-cg-weight-lb"
    add(
        pid,
        "Cockcroft-Gault with weight in [lb_av] (132.3 lb = 60.0 kg), creatinine 2.1 "
        "mg/dL, 78-year-old man: CrCl 24.6 mL/min; start at 3 mg",
        REN,
        naive(pid, age=78, creat=creat(pid, 2.1), weight=weight(pid, 132.3, "weight-lb")),
        [RENAL_REDUCED],
    )
    pid = "ren-cg-female"
    add(
        pid,
        "Cockcroft-Gault female factor: 70-year-old woman, 58 kg, creatinine 1.6 mg/dL: "
        "35.2 x 0.85 = 29.96 mL/min < 30; start at 3 mg",
        REN,
        naive(pid, gender="female", age=70, creat=creat(pid, 1.6), weight=weight(pid, 58)),
        [RENAL_REDUCED],
    )
    pid = "ren-cg-male-same-values"
    add(
        pid,
        "The same values in a 70-year-old man: CrCl 35.2 mL/min, no adjustment",
        REN,
        naive(pid, age=70, creat=creat(pid, 1.6), weight=weight(pid, 58)),
        [],
    )
    pid = "ren-cg-moderate"
    add(
        pid,
        "Moderate renal impairment (Cockcroft-Gault 45.7 mL/min): no adjustment",
        REN,
        naive(pid, creat=creat(pid, 1.8), weight=weight(pid, 80)),
        [],
    )
    pid = "ren-egfr-fallback"
    add(
        pid,
        "No weight, so no Cockcroft-Gault: eGFR 22 mL/min/1.73m2 is the labelled fallback; "
        "start at 3 mg (a review naming the fallback is tolerated)",
        REN,
        naive(
            pid, creat=creat(pid, 2.6), weight=None, extra=[obs(f"{pid}-egfr", pid, "egfr", 22, -1)]
        ),
        [RENAL_REDUCED],
        allow_extra_review=True,
    )
    for sid, system, code, display in (
        ("ren-esrd-snomed", SNOMED, "46177005", "End-stage renal disease"),
        ("ren-esrd-icd10-n18-6", ICD10CM, "N18.6", "End stage renal disease"),
        ("ren-dialysis-icd10-z99-2", ICD10CM, "Z99.2", "Dependence on renal dialysis"),
    ):
        add(
            sid,
            f"{display} ({code}) on the problem list, no creatinine in this EHR: start at "
            "3 mg (a review about the missing creatinine is tolerated)",
            REN,
            naive(
                sid, creat=None, extra=[condition(f"{sid}-ckd", sid, system, code, display, -700)]
            ),
            [RENAL_REDUCED],
            allow_extra_review=True,
        )
    pid = "ren-dialysis-procedure"
    add(
        pid,
        "Haemodialysis procedure two days ago, no creatinine and no problem-list entry: "
        "start at 3 mg (a review about the missing creatinine is tolerated)",
        REN,
        naive(
            pid,
            creat=None,
            extra=[
                procedure(f"{pid}-hd-1", pid, "302497006", "Hemodialysis", -2),
                procedure(f"{pid}-hd-2", pid, "302497006", "Hemodialysis", -4),
            ],
        ),
        [RENAL_REDUCED],
        allow_extra_review=True,
    )

    esrd = [("ESRD", SNOMED, "46177005", "End-stage renal disease")]
    for sid, draft, expected, title in (
        (
            "ren-started-3mg-draft-3mg",
            3,
            [],
            "ESRD patient started at 3 mg three cycles ago; next cycle ordered at 3 mg: nothing "
            "to say (the start-dose rule does not apply once started)",
        ),
        (
            "ren-started-3mg-draft-4mg",
            4,
            [rec("dose-level-due", "correct-dose", 3)],
            "ESRD patient started at 3 mg; next cycle ordered at 4 mg: correct to the 3 mg level "
            "the history says is due",
        ),
    ):
        record = treated_record(
            sid,
            on_treatment(3, ixa=3),
            extra=[condition(f"{sid}-ckd", sid, s, c, d, -700) for _, s, c, d in esrd],
        )
        add(
            sid,
            title,
            "Table 2 dose levels; label 2.5",
            record,
            expected,
            drafts=[draft_ixa(sid, draft)],
        )


def dosing() -> None:
    for sid, dose, kwargs, title in (
        ("order-8mg", 8, {}, "8 mg weekly is an overdose: correct to 4 mg"),
        (
            "order-twice-weekly",
            4,
            {"frequency": 2},
            "4 mg twice weekly is more than one dose a week (overdose): correct to once weekly",
        ),
        ("order-daily", 4, {"unit": "d"}, "4 mg daily is an overdose: correct to once weekly"),
    ):
        add(
            sid,
            title,
            DOSING,
            naive(sid),
            [rec("overdose", "correct-dose", 4)],
            drafts=[draft_ixa(sid, dose, **kwargs)],
        )
    sid = "order-5mg"
    add(
        sid,
        "5 mg weekly is above 4 mg (overdose) and not a capsule strength: correct to 4 mg",
        DOSING,
        naive(sid),
        [rec("overdose", "correct-dose", 4)],
        optional=[rec("dose-not-labelled", "correct-dose", 4)],
        drafts=[draft_ixa(sid, 5)],
    )
    sid = "order-8mg-order-select"
    add(
        sid,
        "8 mg weekly caught at order-select: correct to 4 mg",
        DOSING,
        naive(sid),
        [rec("overdose", "correct-dose", 4)],
        drafts=[draft_ixa(sid, 8)],
        service=SERVICE_SELECT,
    )
    sid = "order-2mg"
    add(
        sid,
        "2 mg is not a labelled dose level (nothing below 2.3 mg): correct the dose "
        "(which level is the prescriber's call, so no dose is asserted)",
        DOSING,
        naive(sid),
        [rec("dose-not-labelled", "correct-dose")],
        drafts=[draft_ixa(sid, 2)],
    )
    sid = "order-3mg-when-4-due"
    add(
        sid,
        "Treated at 4 mg without any toxicity, next cycle ordered at 3 mg: the history says "
        "4 mg is due (correct-dose 4, or review: the label leaves an unexplained reduction to "
        "the prescriber)",
        "Table 2 dose levels",
        treated_record(sid, on_treatment(3)),
        [rec("dose-level-due", ["correct-dose", "review"])],
        drafts=[draft_ixa(sid, 3)],
    )


def regimen_misc() -> None:
    sid = "normal-regimen"
    add(
        sid,
        "Cycle 5 of ixazomib-lenalidomide-dexamethasone, good labs, order set at labelled "
        "doses: no advice cards",
        "Label 2.1 regimen; 2.2 new-cycle criteria met",
        treated_record(sid, on_treatment(4)),
        [],
        drafts=[draft_ixa(sid, 4), draft_len(sid), dex_order(f"{sid}-dex-draft", sid, 1, "draft")],
    )
    sid = "normal-first-cycle"
    add(
        sid,
        "First cycle, normal organ function and counts: no advice cards",
        "Label 2.1",
        naive(sid),
        [],
    )
    sid = "lenalidomide-only-draft"
    add(
        sid,
        "Only a lenalidomide order is being signed: the service says nothing",
        "Service scope",
        treated_record(sid, on_treatment(4)),
        [],
        drafts=[draft_len(sid)],
    )


def cyp3a_pregnancy_allergy() -> None:
    sid = "cyp3a-rifampin"
    add(
        sid,
        "Active rifampin (RxNorm 9384), a strong CYP3A inducer: review",
        "Label 7 drug interactions",
        treated_record(
            sid,
            on_treatment(3),
            extra=[other_med(f"{sid}-rif", sid, -10, "active", "9384", "rifampin", 600)],
        ),
        [rec("strong-cyp3a-inducer", "review")],
    )
    sid = "cyp3a-carbamazepine"
    add(
        sid,
        "Active carbamazepine (RxNorm 2002), a strong CYP3A inducer: review",
        "Label 7 drug interactions",
        naive(
            sid,
            extra=[other_med(f"{sid}-cbz", sid, -90, "active", "2002", "carbamazepine", 200, 2)],
        ),
        [rec("strong-cyp3a-inducer", "review")],
    )
    sid = "cyp3a-rifampin-stopped"
    add(
        sid,
        "Rifampin completed seven months ago: no interaction",
        "Label 7 drug interactions",
        treated_record(
            sid,
            on_treatment(3),
            extra=[other_med(f"{sid}-rif", sid, -210, "completed", "9384", "rifampin", 600)],
        ),
        [],
    )
    preg = codeable(LOINC, "82810-3", "Pregnancy status")

    def preg_obs(pid: str, code: str, display: str) -> J:
        return {
            "resourceType": "Observation",
            "id": f"{pid}-preg",
            "status": "final",
            "category": [{"coding": [{"system": OBS_CAT, "code": "social-history"}]}],
            "code": preg,
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": ts(-1),
            "valueCodeableConcept": codeable(SNOMED, code, display),
        }

    woman = {"gender": "female", "age": 38, "name": ("Moreau", "Claire")}
    sid = "pregnancy-observation"
    add(
        sid,
        "Pregnancy status 'Pregnant' (LOINC 82810-3 = SNOMED 77386006): stop the regimen",
        "Label 5.x embryo-fetal toxicity, 8.1; lenalidomide contraindicated in pregnancy",
        treated_record(
            sid, on_treatment(2), extra=[preg_obs(sid, "77386006", "Pregnant")], **woman
        ),
        [rec("pregnancy", "discontinue", len_="discontinue")],
    )
    sid = "pregnancy-condition"
    add(
        sid,
        "Pregnancy on the problem list (SNOMED 77386006): stop the regimen",
        "Label 8.1; lenalidomide contraindicated in pregnancy",
        naive(
            sid,
            gender="female",
            age=34,
            extra=[condition(f"{sid}-preg", sid, SNOMED, "77386006", "Pregnancy", -20)],
        ),
        [rec("pregnancy", "discontinue", len_="discontinue")],
    )
    sid = "pregnancy-not-pregnant"
    add(
        sid,
        "Pregnancy status 'Not pregnant' (SNOMED 60001007): no card",
        "Label 8.1",
        treated_record(
            sid, on_treatment(2), extra=[preg_obs(sid, "60001007", "Not pregnant")], **woman
        ),
        [],
    )
    sid = "hypersensitivity"
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": f"{sid}-ixa",
        "clinicalStatus": codeable(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"
        ),
        "verificationStatus": codeable(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
            "confirmed",
            "Confirmed",
        ),
        "type": "allergy",
        "category": ["medication"],
        "criticality": "high",
        "code": codeable(RXNORM, "1723735", "ixazomib", "ixazomib (NINLARO)"),
        "patient": {"reference": f"Patient/{sid}"},
        "recordedDate": ts(-40),
        "reaction": [
            {
                "manifestation": [codeable(SNOMED, "126485001", "Urticaria")],
                "severity": "moderate",
                "onset": ts(-41),
            }
        ],
    }
    add(
        sid,
        "Documented hypersensitivity to ixazomib: warn (US label lists no "
        "contraindication; EU SmPC contraindicates it)",
        "Label 4 / EU SmPC 4.3",
        treated_record(sid, on_treatment(2), extra=[allergy]),
        [rec("hypersensitivity", "review")],
    )


def cbc_freshness() -> None:
    def rec_(pid: str, extra: list[J], hist: bool = True) -> Record:
        cycles = on_treatment(3)
        record = Record(pid, cycles=cycles)
        if hist:
            record.resources += history_cbcs(pid, cycles)
        record.resources += [
            obs(f"{pid}-bili-now", pid, "bili", 0.6, -1),
            obs(f"{pid}-creat-now", pid, "creat", 0.9, -1),
            obs(f"{pid}-weight-now", pid, "weight", 81, -1),
            *extra,
        ]
        return record

    label = "Label 2.2 / 5.1 monitoring: CBC before each cycle"
    sid = "cbc-stale-8-days"
    add(
        sid,
        "Last CBC 8 days old: review (the new-cycle counts are not known)",
        label,
        rec_(sid, cbc(sid, "now", -8, 3.0, 200)),
        [rec("cbc-missing", "review")],
    )
    sid = "cbc-missing"
    add(
        sid,
        "No CBC at all on record: review",
        label,
        rec_(sid, [], hist=False),
        [rec("cbc-missing", "review")],
    )
    sid = "cbc-6-9-days"
    add(
        sid,
        "CBC 6.9 days old (within 7 days) and normal: no card",
        label,
        rec_(sid, cbc(sid, "now", -6.9, 3.0, 200)),
        [],
    )
    sid = "cbc-platelets-stale"
    add(
        sid,
        "ANC from yesterday but the last platelet count is 8 days old: review",
        label,
        rec_(
            sid,
            [
                obs(f"{sid}-anc-now", sid, "anc", 2.7, -1),
                obs(f"{sid}-plt-old", sid, "plt", 190, -8),
            ],
        ),
        [rec("cbc-missing", "review")],
    )
    sid = "lab-entered-in-error-ignored"
    add(
        sid,
        "Newest platelet count 15 x10^3/uL is entered-in-error; the valid one from two days "
        "ago is 205: no card",
        label,
        rec_(
            sid,
            [
                *cbc(sid, "now", -2, 3.0, 205),
                obs(f"{sid}-plt-error", sid, "plt", 15, -0.5, status="entered-in-error"),
            ],
        ),
        [],
    )


def gate() -> None:
    def record(pid: str, anc: J, plt: J, extra: list[J] | None = None) -> Record:
        r = treated_record(
            pid,
            on_treatment(4),
            labs=False,
            extra=[
                anc,
                plt,
                obs(f"{pid}-bili-now", pid, "bili", 0.6, -1),
                obs(f"{pid}-creat-now", pid, "creat", 1.0, -1),
                obs(f"{pid}-weight-now", pid, "weight", 77, -1),
                *(extra or []),
            ],
        )
        return r

    sid = "gate-anc-800"
    add(
        sid,
        "New cycle with ANC 0.8 x10^9/L (< 1,000/mm3): the cycle waits",
        GATE_LABEL,
        record(
            sid,
            obs(f"{sid}-anc-now", sid, "anc", 0.8, -1),
            obs(f"{sid}-plt-now", sid, "plt", 160, -1),
        ),
        [rec("new-cycle-gate", "hold")],
    )
    sid = "gate-platelets-60k"
    add(
        sid,
        "New cycle with platelets 60 x10^3/uL (< 75,000/mm3): the cycle waits",
        GATE_LABEL,
        record(
            sid,
            obs(f"{sid}-anc-now", sid, "anc", 2.2, -1),
            obs(f"{sid}-plt-now", sid, "plt", 60, -1),
        ),
        [rec("new-cycle-gate", "hold")],
    )
    sid = "gate-boundaries"
    add(
        sid,
        "ANC exactly 1,000/mm3 (unit /mm3) and platelets exactly 75 x10^9/L: the criteria "
        "are met (>=), no card",
        GATE_LABEL,
        record(
            sid,
            obs(f"{sid}-anc-now", sid, "anc", 1000, -1, unit_code="/mm3"),
            obs(f"{sid}-plt-now", sid, "plt", 75, -1, unit_code="10*9/L"),
        ),
        [],
    )
    sid = "gate-platelets-22k"
    add(
        sid,
        "Next cycle ordered while platelets are 22 x10^3/uL: withhold ixazomib and lenalidomide",
        PLT,
        record(
            sid,
            obs(f"{sid}-anc-now", sid, "anc", 2.0, -1),
            obs(f"{sid}-plt-now", sid, "plt", 22, -1),
        ),
        [rec("platelets-below-30k", "hold", len_="hold")],
        optional=[rec("new-cycle-gate", "hold")],
    )
    sid = "gate-anc-400"
    add(
        sid,
        "Next cycle ordered while ANC is 0.4 x10^9/L: withhold ixazomib and lenalidomide",
        ANC,
        record(
            sid,
            obs(f"{sid}-anc-now", sid, "anc", 0.4, -1),
            obs(f"{sid}-plt-now", sid, "plt", 150, -1),
        ),
        [rec("anc-below-500", "hold", len_="hold")],
        optional=[rec("new-cycle-gate", "hold")],
    )

    # Epic style: no zones on dateTimes, medicationReference into the Bundle, Bundle untyped.
    sid = "epic-naive-datetimes-gate"
    r = record(
        sid, obs(f"{sid}-anc-now", sid, "anc", 0.8, -1), obs(f"{sid}-plt-now", sid, "plt", 180, -1)
    )
    med = medication(f"{sid}-ninlaro4", 4)
    order = draft_ixa(
        sid, 4, medication={"medicationReference": {"reference": f"Medication/{med['id']}"}}
    )
    before = len(SCENARIOS)
    add(
        sid,
        "Epic style: dateTimes without time zone, medicationReference to a Medication in "
        "the untyped draftOrders Bundle; ANC 0.8 x10^9/L at a new cycle: the cycle waits",
        GATE_LABEL,
        r,
        [rec("new-cycle-gate", "hold")],
        drafts=[order],
        draft_extra=[med],
        with_type=False,
    )
    SCENARIOS[before] = strip_zones(SCENARIOS[before])
    SCENARIOS[before]["now"] = ts(0)
    SCENARIOS[before]["deviations"] = [
        "dateTime-without-zone",
        "draftOrders-bundle-without-type",
    ]


def heme() -> None:
    """Lab-result hook: withhold at a new count below threshold, and on recovery alternate the
    reduction between lenalidomide (first) and ixazomib (second), per Table 3."""
    normal = {"anc": 2.3, "plt": 175}

    def pair(pid: str, kind: str, tag: str, day: float, value: float) -> list[J]:
        other = "plt" if kind == "anc" else "anc"
        return [
            obs(f"{pid}-{kind}-{tag}", pid, kind, value, day),
            obs(f"{pid}-{other}-{tag}", pid, other, normal[other], day),
        ]

    def record(
        pid: str,
        kind: str,
        cycles: list[Cycle],
        episodes: list[tuple[float, float]],
        extra: list[J] | None = None,
    ) -> Record:
        """``episodes``: (day, value) counts drawn besides the day-1 CBCs."""
        r = Record(pid, cycles=cycles, name=("Haddad", "Samir"))
        r.resources += history_cbcs(pid, cycles)
        for day, value in episodes:
            r.resources += pair(pid, kind, f"d{abs(round(day))}", day, value)
        r.resources += [
            obs(f"{pid}-bili-c", pid, "bili", 0.7, cycles[-1].day - 1),
            obs(f"{pid}-creat-c", pid, "creat", 1.0, cycles[-1].day - 1),
            obs(f"{pid}-weight-c", pid, "weight", 72, cycles[-1].day - 1),
        ]
        r.resources += extra or []
        return r

    def new(pid: str, kind: str, value: float, **kwargs: Any) -> list[J]:
        other = "plt" if kind == "anc" else "anc"
        return [
            obs(f"{pid}-{kind}-new", pid, kind, value, -0.1, **kwargs),
            obs(f"{pid}-{other}-new", pid, other, normal[other], -0.1),
        ]

    def four(
        ixa: tuple[float, ...] = (4, 4, 4, 4),
        len_: tuple[float, ...] = (25, 25, 25, 25),
        current: str = "active",
    ) -> list[Cycle]:
        cycles = on_treatment(len(ixa), current=current)
        for cycle, i, le in zip(cycles, ixa, len_, strict=True):
            cycle.ixa, cycle.len = i, le
        return cycles

    for kind, label, rule, low, onset_value, recovered in (
        ("plt", PLT, "platelets-below-30k", 24.0, 23.0, 48.0),
        ("anc", ANC, "anc-below-500", 0.42, 0.38, 1.3),
    ):
        name = "platelets" if kind == "plt" else "anc"
        unit = "x10^3/uL" if kind == "plt" else "x10^9/L"
        hold = rec(rule, "hold", len_="hold")
        # Episode A (first occurrence, recovered; lenalidomide then reduced to 20 mg).
        ep_a = [
            (-70, low),
            (-67, low + (3 if kind == "plt" else 0.05)),
            (-63, 85 if kind == "plt" else 1.9),
        ]
        sid = f"lab-{name}-1st-onset"
        add(
            sid,
            f"First {name} count below threshold ({low} {unit}) during cycle 4: withhold "
            "ixazomib and lenalidomide",
            label,
            record(sid, kind, four(), [(-13, normal[kind])]),
            [hold],
            service=SERVICE_LAB,
            new_obs=new(sid, kind, low),
        )
        sid = f"lab-{name}-1st-recovery"
        add(
            sid,
            f"Recovery ({recovered} {unit}) after the FIRST episode: lenalidomide at its next "
            "lower dose (20 mg), ixazomib at its most recent dose (4 mg)"
            + (
                " - the label, not the seed translation that reduces ixazomib first"
                if kind == "anc"
                else ""
            ),
            label,
            record(sid, kind, four(current="on-hold"), [(-13, normal[kind]), (-4, onset_value)]),
            [rec(rule, "resume", 4, len_="reduce", len_dose=20)],
            service=SERVICE_LAB,
            new_obs=new(sid, kind, recovered),
        )
        sid = f"lab-{name}-recovery-at-threshold"
        boundary_unit = "/uL" if kind == "anc" else "10*3/uL"
        boundary_value = 500 if kind == "anc" else 30
        add(
            sid,
            f"Recovery to exactly the threshold ({boundary_value} {boundary_unit}) after the "
            "first episode counts as recovered (>=): resume ixazomib 4 mg, reduce lenalidomide",
            label,
            record(sid, kind, four(current="on-hold"), [(-13, normal[kind]), (-4, onset_value)]),
            [rec(rule, "resume", 4, len_="reduce", len_dose=20)],
            service=SERVICE_LAB,
            new_obs=new(sid, kind, boundary_value, unit_code=boundary_unit),
        )
        sid = f"lab-{name}-2nd-onset"
        add(
            sid,
            f"Second {name} episode (first one recovered in cycle 2, lenalidomide since "
            "20 mg): withhold both again",
            label,
            record(sid, kind, four(len_=(25, 25, 20, 20)), [*ep_a, (-13, normal[kind])]),
            [hold],
            service=SERVICE_LAB,
            new_obs=new(sid, kind, onset_value),
        )
        sid = f"lab-{name}-2nd-recovery"
        add(
            sid,
            "Recovery after the SECOND episode: ixazomib at the next lower dose (3 mg), "
            "lenalidomide at its most recent dose (20 mg)",
            label,
            record(
                sid,
                kind,
                four(len_=(25, 25, 20, 20), current="on-hold"),
                [*ep_a, (-13, normal[kind]), (-4, onset_value)],
            ),
            [rec(rule, "reduce", 3, len_="resume", len_dose=20)],
            service=SERVICE_LAB,
            new_obs=new(sid, kind, recovered),
        )
        sid = f"lab-{name}-3rd-recovery"
        cycles = on_treatment(5, current="on-hold")
        for cycle, i, le in zip(cycles, (4, 4, 4, 3, 3), (25, 25, 20, 20, 20), strict=True):
            cycle.ixa, cycle.len = i, le
        episodes = [
            (-98, low),
            (-91, 85 if kind == "plt" else 1.9),
            (-70, low),
            (-63, 92 if kind == "plt" else 2.1),
            (-13, normal[kind]),
            (-4, onset_value),
        ]
        add(
            sid,
            "Recovery after the THIRD episode (lenalidomide reduced after the first, "
            "ixazomib to 3 mg after the second): alternate back, lenalidomide to 15 mg, "
            "ixazomib resumes at 3 mg",
            label,
            record(sid, kind, cycles, episodes),
            [rec(rule, "resume", 3, len_="reduce", len_dose=15)],
            service=SERVICE_LAB,
            new_obs=new(sid, kind, recovered),
        )

    # Discontinue: the next ixazomib level would be below 2.3 mg.
    sid = "lab-platelets-2nd-recovery-at-2-3mg"
    cycles = on_treatment(4, current="on-hold")
    for cycle, i, le in zip(cycles, (3, 3, 2.3, 2.3), (25, 25, 25, 20), strict=True):
        cycle.ixa, cycle.len = i, le
    extra = [
        obs(f"{sid}-bili-baseline", sid, "bili", 2.4, cycles[0].day - 5),
        adverse_event(
            f"{sid}-pn", sid, "neuropathy", -70, 3, outcome="resolved", suspect=f"{sid}-ixa-c2"
        ),
    ]
    add(
        sid,
        "Started at 3 mg (moderate hepatic impairment), reduced to 2.3 mg after Grade 3 "
        "neuropathy; recovery after a SECOND platelet episode owes an ixazomib reduction below "
        "2.3 mg: discontinue ixazomib",
        PLT + "; Table 2 (nothing below 2.3 mg)",
        record(sid, "plt", cycles, [(-45, 25), (-38, 90), (-13, 170), (-4, 21)], extra),
        [rec("platelets-below-30k", "discontinue")],
        service=SERVICE_LAB,
        new_obs=new(sid, "plt", 55),
    )

    sid = "lab-anc-1st-after-platelet-episode"
    cycles = on_treatment(4, current="on-hold")
    for cycle, le in zip(cycles, (25, 25, 20, 20), strict=True):
        cycle.len = le
    r = record(
        sid,
        "plt",
        cycles,
        [(-70, 24), (-67, 26), (-63, 85), (-13, 170)],
        extra=pair(sid, "anc", "d4", -4, 0.35),
    )
    add(
        sid,
        "First ANC episode after an earlier platelet episode: occurrences are counted per "
        "Table 3 row, so this is the FIRST ANC occurrence: lenalidomide next lower (15 mg), "
        "ixazomib resumes at 4 mg",
        ANC,
        r,
        [rec("anc-below-500", "resume", 4, len_="reduce", len_dose=15)],
        service=SERVICE_LAB,
        new_obs=new(sid, "anc", 1.4),
    )

    # Units and boundaries (first onset unless stated).
    def onset(
        sid: str,
        title: str,
        kind: str,
        value: float,
        expected: list[J],
        label: str,
        allow_review: bool = False,
        on_server: bool = False,
        **kwargs: Any,
    ) -> None:
        new_obs = new(sid, kind, value, **kwargs)
        r = record(sid, kind, four(), [(-13, normal[kind])])
        if on_server:
            r.resources += new_obs
        add(
            sid,
            title,
            label,
            r,
            expected,
            service=SERVICE_LAB,
            new_obs=new_obs,
            allow_extra_review=allow_review,
        )

    onset(
        "lab-anc-exactly-500",
        "ANC exactly 0.5 x10^9/L = 500/mm3 is NOT below 500 (exact decimal arithmetic): no card",
        "anc",
        0.5,
        [],
        ANC,
    )
    onset(
        "lab-anc-450-per-mm3",
        "ANC 450 /mm3: withhold both",
        "anc",
        450,
        [rec("anc-below-500", "hold", len_="hold")],
        ANC,
        unit_code="/mm3",
    )
    onset(
        "lab-anc-499-per-uL",
        "ANC 499 /uL: withhold both",
        "anc",
        499,
        [rec("anc-below-500", "hold", len_="hold")],
        ANC,
        unit_code="/uL",
    )
    onset(
        "lab-platelets-exactly-30",
        "Platelets exactly 30 x10^3/uL = 30,000/mm3 are NOT below 30,000: no card",
        "plt",
        30,
        [],
        PLT,
    )
    onset(
        "lab-platelets-29000-per-uL",
        "Platelets 29,000 /uL: withhold both",
        "plt",
        29000,
        [rec("platelets-below-30k", "hold", len_="hold")],
        PLT,
        unit_code="/uL",
    )
    onset(
        "lab-platelets-display-x10e3",
        "Platelets 25 with display unit 'x10E3/uL' and UCUM code 10*3/uL: withhold both",
        "plt",
        25,
        [rec("platelets-below-30k", "hold", len_="hold")],
        PLT,
        unit_display="x10E3/uL",
    )
    onset(
        "lab-platelets-unit-k-per-ul",
        "Platelets 25 'K/uL' sent as a UCUM code (kelvin per "
        "microlitre): the unit is not read, nothing is guessed: review, no hold",
        "plt",
        25,
        [rec("data-uninterpretable", "review")],
        "Label units note: a unit that cannot be interpreted exactly is reported",
        allow_review=True,
        unit_code="K/uL",
    )
    onset(
        "lab-platelets-1st-onset-also-on-server",
        "The new platelet count (24) is also already "
        "on the FHIR server with the same id: one episode, withhold both",
        "plt",
        24,
        [rec("platelets-below-30k", "hold", len_="hold")],
        PLT,
        on_server=True,
    )

    sid = "lab-no-ixazomib-history"
    r = Record(sid, name=("Brandt", "Ilse"))
    r.resources += [
        len_order(f"{sid}-len-c1", sid, -20, 25, "active"),
        dex_order(f"{sid}-dex-c1", sid, -20, "active"),
    ]
    r.resources += cbc(sid, "d10", -10, 2.5, 180)
    add(
        sid,
        "Platelets 20 x10^3/uL in a patient who never had ixazomib: the ixazomib service "
        "says nothing",
        "Service scope (docs/lab-result-hook.md)",
        r,
        [],
        service=SERVICE_LAB,
        new_obs=[
            obs(f"{sid}-plt-new", sid, "plt", 20, -0.1),
            obs(f"{sid}-anc-new", sid, "anc", 2.1, -0.1),
        ],
    )


def toxicities() -> None:
    def record(pid: str, extra: list[J], cycles: list[Cycle] | None = None) -> Record:
        return treated_record(
            pid, cycles or on_treatment(4), extra=extra, name=("Nakamura", "Kenji")
        )

    def cyc(
        ixa: tuple[float, ...] = (4, 4, 4, 4),
        len_: tuple[float, ...] = (25, 25, 25, 25),
        current: str = "active",
    ) -> list[Cycle]:
        cycles = on_treatment(len(ixa), current=current)
        for cycle, i, le in zip(cycles, ixa, len_, strict=True):
            cycle.ixa, cycle.len = i, le
        return cycles

    g12 = "neuropathy-grade-1-pain-or-2"
    g23 = "neuropathy-grade-2-pain-or-3"
    opt_gate = [GATE]

    def ae(pid: str, term: str, grade: int | None, day: float = -10, **kw: Any) -> J:
        kw.setdefault("suspect", f"{pid}-ixa-c4")
        return adverse_event(f"{pid}-ae-{term}-{abs(round(day))}", pid, term, day, grade, **kw)

    sid = "pn-g1-with-neuralgia"
    add(
        sid,
        "Peripheral neuropathy Grade 1 with a concurrent Grade 1 neuralgia event (pain): "
        "withhold ixazomib, resume at the same dose when <= Grade 1 without pain",
        PN,
        record(sid, [ae(sid, "neuropathy", 1), ae(sid, "neuralgia", 1)]),
        [rec(g12, "hold")],
    )
    sid = "pn-g1-with-pain-score"
    add(
        sid,
        "Peripheral neuropathy Grade 1 with pain score 4/10 (LOINC 72514-3): withhold ixazomib",
        PN,
        record(sid, [ae(sid, "neuropathy", 1), pain_score(f"{sid}-pain", sid, -1, 4)]),
        [rec(g12, "hold")],
    )
    sid = "pn-g1-no-pain"
    add(
        sid,
        "Peripheral neuropathy Grade 1, pain score 0: continue, no card",
        PN,
        record(sid, [ae(sid, "neuropathy", 1), pain_score(f"{sid}-pain", sid, -1, 0)]),
        [],
    )
    sid = "pn-g2-backport-extension"
    add(
        sid,
        "Peripheral neuropathy Grade 2 (AE, backport-IG grade extension): withhold ixazomib",
        PN,
        record(sid, [ae(sid, "neuropathy", 2)]),
        [rec(g12, "hold")],
        optional=opt_gate,
    )
    sid = "pn-g2-obs-coded-grade"
    add(
        sid,
        "Peripheral neuropathy Grade 2 as an Observation (NCIt C143752) with coded grade "
        "C41339: withhold ixazomib",
        PN,
        record(sid, [grade_obs(f"{sid}-pn", sid, "neuropathy", -3, 2, coded=True)]),
        [rec(g12, "hold")],
        optional=opt_gate,
    )
    sid = "pn-g2-with-pain"
    add(
        sid,
        "Peripheral neuropathy Grade 2 with Grade 2 neuralgia: withhold ixazomib, resume "
        "at the next lower dose",
        PN,
        record(sid, [ae(sid, "neuropathy", 2), ae(sid, "neuralgia", 2)]),
        [rec(g23, "hold")],
        optional=opt_gate,
    )
    sid = "pn-g3-obs-integer-grade"
    add(
        sid,
        "Peripheral neuropathy Grade 3 as an Observation with valueInteger 3: withhold "
        "ixazomib (Grade 3 neuropathy is its own row, not 'other toxicity')",
        PN,
        record(sid, [grade_obs(f"{sid}-pn", sid, "neuropathy", -3, 3, coded=False)]),
        [rec(g23, "hold")],
        optional=opt_gate,
    )
    sid = "pn-g4-r5-extension"
    add(
        sid,
        "Peripheral neuropathy Grade 4 (R5 AE-research IG grade extension): discontinue "
        "the regimen",
        PN,
        record(sid, [ae(sid, "neuropathy", 4, grade_url=GRADE_R5)]),
        [rec("neuropathy-grade-4", "discontinue", len_="discontinue")],
    )
    sid = "pn-g2-resolved"
    add(
        sid,
        "Grade 2 neuropathy now resolved (outcome resolved); next cycle at the same 4 mg: "
        "no hold (a resume-at-4-mg card is tolerated)",
        PN,
        record(sid, [ae(sid, "neuropathy", 2, -20, outcome="resolved")]),
        [],
        optional=[rec(g12, "resume", 4)],
    )
    sid = "pn-obs-grade-back-to-0"
    add(
        sid,
        "Neuropathy graded 2 two weeks ago (Observation) and 0 yesterday: recovered, no "
        "hold (a resume card is tolerated)",
        PN,
        record(
            sid,
            [
                grade_obs(f"{sid}-pn-1", sid, "neuropathy", -14, 2, coded=False),
                grade_obs(f"{sid}-pn-2", sid, "neuropathy", -1, 0, coded=False),
            ],
        ),
        [],
        optional=[rec(g12, "resume", 4)],
    )
    sid = "pn-g3-resolved-reduction-owed"
    add(
        sid,
        "Grade 3 neuropathy resolved while ixazomib was held at 4 mg; next cycle ordered at "
        "4 mg: the next lower dose (3 mg) is owed now",
        PN + "; Table 2",
        record(sid, [ae(sid, "neuropathy", 3, -20, outcome="resolved")], cyc(current="on-hold")),
        [rec(["dose-level-due", g23], "reduce", 3)],
    )
    sid = "pn-reduced-earlier-draft-4mg"
    add(
        sid,
        "Reduced to 3 mg two cycles ago after Grade 3 neuropathy; next cycle ordered at 4 mg: "
        "correct to the 3 mg level due",
        "Table 2 dose levels (track the level)",
        record(
            sid,
            [ae(sid, "neuropathy", 3, -75, outcome="resolved", suspect=f"{sid}-ixa-c2")],
            cyc(ixa=(4, 4, 3, 3)),
        ),
        [rec("dose-level-due", "correct-dose", 3)],
    )
    sid = "pn-severity-only"
    add(
        sid,
        "Neuropathy AE with R4 severity 'severe' and no CTCAE grade: ask for the grade; never "
        "a Grade 4 discontinuation",
        "Label grading by CTCAE v4.03; R4 severity is not a grade",
        record(sid, [ae(sid, "neuropathy", None, severity="severe")]),
        [rec("severity-without-grade", "review")],
        optional=[rec([g12, g23], ["hold", "review"]), GATE],
        allow_extra_review=True,
    )

    sid = "rash-g2-first"
    add(
        sid,
        "First Grade 2 maculo-papular rash: withhold lenalidomide only (ixazomib not "
        "restricted by this row)",
        RASH23,
        record(sid, [ae(sid, "rash", 2, -6)]),
        [rec("rash-grade-2-3", len_="hold")],
        optional=opt_gate,
    )
    sid = "rash-g3-recurrence"
    add(
        sid,
        "Grade 3 rash RECURS (a Grade 2 rash in cycle 2 resolved; lenalidomide since 20 mg): "
        "withhold ixazomib and lenalidomide",
        RASH23,
        record(
            sid,
            [
                ae(sid, "rash", 2, -70, outcome="resolved", suspect=f"{sid}-len-c2"),
                ae(sid, "rash", 3, -6),
            ],
            cyc(len_=(25, 25, 20, 20)),
        ),
        [rec("rash-grade-2-3", "hold", len_="hold")],
        optional=opt_gate,
    )
    sid = "rash-g4"
    add(
        sid,
        "Grade 4 rash (R5 IG grade extension): discontinue the regimen",
        "Table 3: rash Grade 4",
        record(sid, [ae(sid, "rash", 4, -3, grade_url=GRADE_R5)]),
        [rec("rash-grade-4", "discontinue", len_="discontinue")],
    )

    sid = "other-diarrhea-g3"
    add(
        sid,
        "Grade 3 diarrhoea attributed to ixazomib, ongoing: withhold ixazomib",
        OTHER,
        record(sid, [ae(sid, "diarrhea", 3, -4)]),
        [rec("other-toxicity-grade-3-4", "hold")],
        optional=opt_gate,
    )
    sid = "other-diarrhea-g4-obs"
    add(
        sid,
        "Grade 4 diarrhoea recorded as an Observation (MedDRA term, coded grade C41337): "
        "withhold ixazomib (Grade 4 other toxicity is not a discontinuation row)",
        OTHER,
        record(sid, [grade_obs(f"{sid}-dia", sid, "diarrhea", -2, 4, coded=True)]),
        [rec("other-toxicity-grade-3-4", "hold")],
        optional=opt_gate,
    )
    sid = "other-diarrhea-g2"
    add(
        sid,
        "Grade 2 diarrhoea: no Table 3 action, but at a new cycle label 2.2 wants non-"
        "hematologic toxicity back to Grade 1 or baseline, at the prescriber's discretion: review",
        OTHER + "; label 2.2 (prescriber's discretion)",
        record(sid, [ae(sid, "diarrhea", 2, -4)]),
        [rec("new-cycle-gate", "review")],
    )
    sid = "other-g3-resolved-attributable"
    add(
        sid,
        "Grade 3 diarrhoea attributed to ixazomib has resolved while held at 4 mg; next "
        "cycle ordered at 4 mg: resume at the next lower dose (3 mg)",
        OTHER + "; Table 2",
        record(sid, [ae(sid, "diarrhea", 3, -15, outcome="resolved")], cyc(current="on-hold")),
        [rec(["dose-level-due", "other-toxicity-grade-3-4"], "reduce", 3)],
    )

    sid = "rash-g4-resolved"
    add(
        sid,
        "Grade 4 rash three weeks ago, now resolved: the regimen stays discontinued (Grade 4 "
        "has no resumption row)",
        "Table 3: rash Grade 4",
        record(sid, [ae(sid, "rash", 4, -21, outcome="resolved")]),
        [rec("rash-grade-4", "discontinue", len_="discontinue")],
    )
    sid = "pn-g3-now-g2"
    add(
        sid,
        "Peripheral neuropathy Grade 3 ten days ago, Grade 2 now (graded Observations): still "
        "the Grade 3 row, withhold until Grade 1, then one level lower",
        PN,
        record(
            sid,
            [
                grade_obs(f"{sid}-pn-1", sid, "neuropathy", -10, 3, coded=True),
                grade_obs(f"{sid}-pn-2", sid, "neuropathy", -2, 2, coded=True),
            ],
        ),
        [rec(g23, "hold")],
        optional=opt_gate,
    )
    sid = "rash-recorded-twice"
    add(
        sid,
        "One rash recorded twice (Grade 2 AE, then a Grade 3 AE while the first is still "
        "open): one first occurrence, withhold lenalidomide only",
        "Table 3: rash Grade 2 or 3",
        record(sid, [ae(sid, "rash", 2, -8), ae(sid, "rash", 3, -3)]),
        [rec("rash-grade-2-3", "resume", 4, len_="hold")],
        optional=opt_gate,
    )
    sid = "other-g3-resolved-no-attribution"
    add(
        sid,
        "Grade 3 diarrhoea resolved, no attribution recorded: the dose on resumption depends "
        "on whether ixazomib caused it: review",
        OTHER,
        record(sid, [ae(sid, "diarrhea", 3, -15, outcome="resolved", suspect=None)]),
        [rec("other-toxicity-grade-3-4", "review")],
        allow_extra_review=True,
    )

    sid = "data-unavailable-adverse-events"
    add(
        sid,
        "The AdverseEvent search failed (prefetch OperationOutcome, server 503): say the "
        "toxicity history was not considered",
        "Service contract: never a silent pass",
        record(sid, []),
        [rec("data-unavailable", "review")],
        allow_extra_review=True,
        prefetch_failures={"adverseEvents": "AdverseEvent search failed: HTTP 503"},
    )


def more() -> None:
    """Variants that separate a right reading of the label from a plausible wrong one."""
    # Hepatic, SI units without a reference range: the assumed ULN must be in the same unit.
    for sid, value, expected, title in (
        (
            "hep-moderate-umol-no-range",
            45,
            [START_REDUCED],
            "Bilirubin 45 umol/L (2.63 mg/dL) without a reference range: moderate for any usual "
            "assumed ULN; start at 3 mg",
        ),
        (
            "hep-mild-umol-no-range",
            20,
            [],
            "Bilirubin 20 umol/L (1.17 mg/dL) without a reference range: mild for any usual "
            "assumed ULN; no start-dose card",
        ),
    ):
        add(
            sid,
            title,
            HEP,
            naive(sid, bili=obs(f"{sid}-bili-now", sid, "bili-umol", value, -1, ref=False)),
            expected,
            allow_extra_review=True,
        )

    # Renal: a reported Cockcroft-Gault CrCl wins; eGFR is only a fallback; resolved ESRD.
    sid = "ren-crcl-cg-reported"
    add(
        sid,
        "Reported Cockcroft-Gault CrCl 28 mL/min (LOINC 35591-7) while creatinine and "
        "weight would give 56: the reported clearance is used; start at 3 mg",
        REN,
        naive(
            sid,
            creat=obs(f"{sid}-creat-now", sid, "creat", 1.4, -1),
            weight=obs(f"{sid}-weight-now", sid, "weight", 80, -1),
            extra=[obs(f"{sid}-crcl", sid, "crcl-cg", 28, -1)],
        ),
        [RENAL_REDUCED],
    )
    sid = "ren-egfr-ignored-when-cg-possible"
    add(
        sid,
        "eGFR 25 mL/min/1.73m2 but Cockcroft-Gault can be computed (60-year-old man, 90 kg, "
        "creatinine 1.3 mg/dL: 76.9 mL/min): eGFR is only a fallback; no card",
        REN,
        naive(
            sid,
            age=60,
            creat=obs(f"{sid}-creat-now", sid, "creat", 1.3, -1),
            weight=obs(f"{sid}-weight-now", sid, "weight", 90, -1),
            extra=[obs(f"{sid}-egfr", sid, "egfr", 25, -1)],
        ),
        [],
    )
    sid = "ren-esrd-resolved-after-transplant"
    add(
        sid,
        "ESRD on the problem list as RESOLVED (kidney transplant), creatinine now 1.0 mg/dL "
        "(CrCl 76): no adjustment",
        REN,
        naive(
            sid,
            creat=obs(f"{sid}-creat-now", sid, "creat", 1.0, -1),
            extra=[
                condition(
                    f"{sid}-ckd",
                    sid,
                    SNOMED,
                    "46177005",
                    "End-stage renal disease",
                    -1500,
                    status="resolved",
                )
            ],
        ),
        [],
    )

    # Platelets: counts before ixazomib started are not occurrences; later normal counts
    # after a recovered episode say nothing; amended results count; entered-in-error do not.
    sid = "lab-platelets-pre-treatment-low-not-counted"
    cycles = on_treatment(4, current="on-hold")
    r = Record(sid, cycles=cycles, name=("Osei", "Ama"))
    r.resources += history_cbcs(sid, cycles)
    r.resources += cbc(sid, "dx", cycles[0].day - 20, 1.9, 20)  # at diagnosis, before C1
    r.resources += cbc(sid, "d13", -13, 2.2, 170) + cbc(sid, "d4", -4, 2.0, 24)
    add(
        sid,
        "Platelets were 20 x10^3/uL at diagnosis, before ixazomib: not an occurrence. "
        "Recovery after the first on-treatment episode: lenalidomide reduced, ixazomib 4 mg",
        PLT,
        r,
        [rec("platelets-below-30k", "resume", 4, len_="reduce", len_dose=20)],
        service=SERVICE_LAB,
        new_obs=cbc(sid, "new", -0.1, 2.3, 52),
    )
    sid = "lab-platelets-normal-after-recovered-episode"
    cycles = on_treatment(4)
    cycles[2].len = cycles[3].len = 20
    r = Record(sid, cycles=cycles, name=("Osei", "Kofi"))
    r.resources += history_cbcs(sid, cycles)
    r.resources += cbc(sid, "d70", -70, 2.0, 24) + cbc(sid, "d63", -63, 2.1, 85)
    r.resources += cbc(sid, "d13", -13, 2.2, 160)
    add(
        sid,
        "A normal platelet count long after an episode that has already recovered (and "
        "lenalidomide already reduced): nothing new to say",
        PLT,
        r,
        [],
        service=SERVICE_LAB,
        new_obs=cbc(sid, "new", -0.1, 2.4, 171),
    )
    for sid, status, expected in (
        ("lab-platelets-amended", "amended", [rec("platelets-below-30k", "hold", len_="hold")]),
        ("lab-platelets-new-entered-in-error", "entered-in-error", []),
    ):
        cycles = on_treatment(4)
        r = Record(sid, cycles=cycles, name=("Weber", "Jonas"))
        r.resources += history_cbcs(sid, cycles) + cbc(sid, "d13", -13, 2.2, 160)
        add(
            sid,
            f"New platelet count 22 x10^3/uL with status '{status}'"
            + (": withhold both" if expected else ": ignored, no card"),
            PLT,
            r,
            expected,
            service=SERVICE_LAB,
            new_obs=[
                obs(f"{sid}-plt-new", sid, "plt", 22, -0.1, status=status),
                obs(f"{sid}-anc-new", sid, "anc", 2.2, -0.1),
            ],
        )
    sid = "lab-anc-manual-count"
    cycles = on_treatment(4)
    r = Record(sid, cycles=cycles, name=("Weber", "Lena"))
    r.resources += history_cbcs(sid, cycles) + cbc(sid, "d13", -13, 2.2, 160)
    add(
        sid,
        "Manual ANC (LOINC 753-4) 0.3 x10^9/L: withhold both",
        ANC,
        r,
        [rec("anc-below-500", "hold", len_="hold")],
        service=SERVICE_LAB,
        new_obs=[
            obs(f"{sid}-anc-new", sid, "anc-manual", 0.3, -0.1),
            obs(f"{sid}-plt-new", sid, "plt", 150, -0.1),
        ],
    )
    sid = "lab-anc-unit-percent"
    cycles = on_treatment(4)
    r = Record(sid, cycles=cycles, name=("Weber", "Paul"))
    r.resources += history_cbcs(sid, cycles) + cbc(sid, "d13", -13, 2.2, 160)
    add(
        sid,
        "ANC code 751-8 sent with value 35 and unit % (a differential percentage, not a "
        "count): not interpretable as a count; review, no hold",
        "Label units note: a unit that cannot be interpreted exactly is reported",
        r,
        [rec("data-uninterpretable", "review")],
        service=SERVICE_LAB,
        allow_extra_review=True,
        new_obs=[
            obs(f"{sid}-anc-new", sid, "anc", 35, -0.1, unit_code="%", ref=False),
            obs(f"{sid}-plt-new", sid, "plt", 150, -0.1),
        ],
    )

    # Rash recurrence resolved: the ixazomib reduction is owed now.
    sid = "rash-recurrence-resolved-reduction-owed"
    cycles = on_treatment(4, current="on-hold")
    cycles[2].len = cycles[3].len = 20
    r = treated_record(
        sid,
        cycles,
        extra=[
            adverse_event(
                f"{sid}-rash-1", sid, "rash", -70, 2, outcome="resolved", suspect=f"{sid}-len-c2"
            ),
            adverse_event(
                f"{sid}-rash-2", sid, "rash", -12, 3, outcome="resolved", suspect=f"{sid}-ixa-c4"
            ),
        ],
    )
    add(
        sid,
        "Second Grade 2-3 rash has resolved while both drugs were held; next cycle ordered "
        "at 4 mg: ixazomib at the next lower dose (3 mg)",
        RASH23 + "; Table 2",
        r,
        [rec(["dose-level-due", "rash-grade-2-3"], "reduce", 3)],
    )
    # Other toxicity not attributable to ixazomib: resume at the same dose.
    sid = "other-g3-resolved-not-attributable"
    r = treated_record(
        sid,
        on_treatment(4, current="on-hold"),
        extra=[
            adverse_event(
                f"{sid}-dia",
                sid,
                "diarrhea",
                -15,
                3,
                outcome="resolved",
                suspect=f"{sid}-ixa-c4",
                causality="Unlikely",
            )
        ],
    )
    add(
        sid,
        "Grade 3 diarrhoea resolved, causality to ixazomib assessed 'Unlikely': the label "
        "reduces only if attributable, so 4 mg stands (a resume or review card is tolerated)",
        OTHER,
        r,
        [],
        optional=[rec(["dose-level-due", "other-toxicity-grade-3-4"], ["resume", "review"])],
    )

    # Doses in capsules of a product: the strength comes from the product code.
    def capsules(sid: str, count: int) -> J:
        order = draft_ixa(sid, 4, style="ninlaro")
        order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] = {
            "value": count,
            "unit": "capsule",
            "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
            "code": "CAP",
        }
        order["dosageInstruction"][0]["text"] = (
            f"{count} capsule(s) by mouth once weekly on days 1, 8 and 15"
        )
        return order

    sid = "order-1-capsule-ninlaro-4mg"
    add(
        sid,
        "Dose written as 1 capsule of Ninlaro 4 mg (RxNorm 1723772) = 4 mg: no card",
        DOSING,
        naive(sid),
        [],
        drafts=[capsules(sid, 1)],
    )
    sid = "order-2-capsules-ninlaro-4mg"
    add(
        sid,
        "Dose written as 2 capsules of Ninlaro 4 mg = 8 mg weekly: overdose, correct to 4 mg",
        DOSING,
        naive(sid),
        [rec("overdose", "correct-dose", 4)],
        drafts=[capsules(sid, 2)],
    )
    sid = "order-8mg-when-3mg-due"
    add(
        sid,
        "8 mg ordered for a patient whose due level is 3 mg (started reduced for ESRD): "
        "overdose; the labelled dose for this patient is 3 mg, not 4",
        DOSING + "; Table 2",
        treated_record(
            sid,
            on_treatment(3, ixa=3),
            extra=[
                condition(f"{sid}-ckd", sid, SNOMED, "46177005", "End-stage renal disease", -700)
            ],
        ),
        [rec("overdose", "correct-dose", 3)],
        optional=[rec("dose-level-due", "correct-dose", 3)],
        drafts=[draft_ixa(sid, 8)],
    )

    # Interactions: an inducer ordered together with the cycle; another FDA-list inducer.
    sid = "cyp3a-rifampin-in-draft"
    add(
        sid,
        "Rifampin ordered in the same order set as ixazomib: review",
        "Label 7",
        naive(sid),
        [rec("strong-cyp3a-inducer", "review")],
        drafts=[
            draft_ixa(sid, 4),
            other_med(f"{sid}-rif-draft", sid, 1, "draft", "9384", "rifampin", 600),
        ],
    )
    sid = "cyp3a-apalutamide"
    add(
        sid,
        "Active apalutamide (RxNorm 1999574, on FDA's strong-inducer list): review",
        "Label 7 (FDA list of strong CYP3A inducers)",
        treated_record(
            sid,
            on_treatment(2),
            extra=[other_med(f"{sid}-apa", sid, -30, "active", "1999574", "apalutamide", 240)],
        ),
        [rec("strong-cyp3a-inducer", "review")],
    )
    sid = "hypersensitivity-entered-in-error"
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": f"{sid}-ixa",
        "verificationStatus": codeable(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
            "entered-in-error",
            "Entered in Error",
        ),
        "type": "allergy",
        "category": ["medication"],
        "code": codeable(RXNORM, "1723735", "ixazomib"),
        "patient": {"reference": f"Patient/{sid}"},
        "recordedDate": ts(-40),
    }
    add(
        sid,
        "An ixazomib allergy entry marked entered-in-error: no card",
        "Label 4 / SmPC 4.3",
        treated_record(sid, on_treatment(2), extra=[allergy]),
        [],
    )

    # The Medication behind medicationReference cannot be read (no fhirServer was sent).
    sid = "med-on-server-unreachable"
    med = medication(f"{sid}-ninlaro4", 4)
    order = draft_ixa(
        sid,
        4,
        medication={
            "medicationReference": {
                "reference": f"Medication/{med['id']}",
                "display": "NINLARO 4 mg capsule",
            }
        },
    )
    add(
        sid,
        "medicationReference to a server Medication, but no fhirServer was sent: the order "
        "cannot be checked; say so (review), never a silent pass (judgement: which rule id)",
        "Service contract: review when data are unavailable",
        naive(sid, bili=obs(f"{sid}-bili-now", sid, "bili", 2.4, -1), extra=[med]),
        [rec(["data-unavailable", "data-uninterpretable"], "review")],
        drafts=[order],
        allow_extra_review=True,
        send_fhir_server=False,
    )


def patient_view() -> None:
    """patient-view: one course card for a patient on ixazomib (info unless something is due
    now: a hold in force, a reduction or discontinuation owed), none for anyone else."""
    label = "patient-view course card: Table 2 dose levels, Table 3, label 2.1 / 2.2"

    def course(pid: str, cycles: list[Cycle], counts: list[tuple[float, float]]) -> Record:
        """Cycles with normal day-1 CBCs and chemistry, and platelet counts (day, 10*3/uL)
        drawn besides them."""
        record = Record(pid, cycles=cycles, name=("Moreau", "Claire"), gender="female")
        record.resources += history_cbcs(pid, cycles)
        record.resources += good_labs(pid, day=-2)
        for day, value in counts:
            record.resources.append(obs(f"{pid}-plt-d{abs(round(day))}", pid, "plt", value, day))
        return record

    # Four cycles 28 days apart, the current one begun 10 days ago (day 11). Platelets < 30,000
    # twice: the 1st recovery lowered lenalidomide 25 -> 20 mg, the 2nd ixazomib 4 -> 3 mg;
    # each was ordered at the next cycle.
    reduced = [Cycle(-94, 4, 25), Cycle(-66, 4, 20), Cycle(-38, 3, 20), Cycle(-10, 3, 20, "active")]
    episodes = [(-80, 25), (-74, 80), (-52, 27), (-45, 90)]
    add(
        "pv-reduction-history",
        "On ixazomib 3 mg after two platelet episodes (lenalidomide 25 -> 20 mg after the 1st, "
        "ixazomib 4 -> 3 mg after the 2nd, both ordered): one info course card, no advice",
        label,
        course("pv-reduction-history", reduced, episodes),
        [],
        service=SERVICE_VIEW,
        expected_cards=[{"indicator": "info"}],
    )
    held = [Cycle(-38, 4, 25), Cycle(-10, 4, 25, "active")]
    add(
        "pv-hold-in-force",
        "Platelets 22,000/mm3 yesterday, mid-cycle: the hold is in force until platelets >= "
        "30,000/mm3 (Table 3 withholds ixazomib and lenalidomide): critical course card",
        label,
        course("pv-hold-in-force", held, [(-1, 22)]),
        [rec("platelets-below-30k", "hold", len_="hold")],
        service=SERVICE_VIEW,
        expected_cards=[{"indicator": "critical"}],
    )
    # The 2nd episode recovered after the current cycle's 4 mg order began: 3 mg is due and no
    # order has it.
    owed = [Cycle(-66, 4, 25), Cycle(-38, 4, 20), Cycle(-10, 4, 20, "active")]
    add(
        "pv-reduction-owed",
        "The 2nd platelet episode recovered 3 days ago, after the current 4 mg order began: the "
        "next doses are due at 3 mg and no order has it (warning, reduce)",
        label,
        course("pv-reduction-owed", owed, [(-60, 25), (-55, 80), (-8, 26), (-3, 85)]),
        [rec("platelets-below-30k", "reduce", 3)],
        service=SERVICE_VIEW,
        expected_cards=[{"indicator": "warning"}],
    )
    # Started at 3 mg; four platelet episodes: lenalidomide 25 -> 20, ixazomib 3 -> 2.3,
    # lenalidomide 20 -> 15, and the 4th (recovered 3 days ago) owes ixazomib a level below
    # 2.3 mg.
    lowest = [
        Cycle(-150, 3, 25),
        Cycle(-122, 3, 20),
        Cycle(-94, 2.3, 20),
        Cycle(-66, 2.3, 15),
        Cycle(-38, 2.3, 15),
        Cycle(-10, 2.3, 15, "active"),
    ]
    four = [
        (-145, 25),
        (-140, 80),
        (-115, 27),
        (-110, 85),
        (-88, 26),
        (-84, 90),
        (-8, 24),
        (-3, 88),
    ]
    add(
        "pv-discontinue-owed",
        "Started at 3 mg, reduced to 2.3 mg after the 2nd platelet episode; the 4th episode "
        "recovered 3 days ago and owes ixazomib a level below 2.3 mg: discontinuation owed "
        "(critical)",
        label,
        course("pv-discontinue-owed", lowest, four),
        [rec("platelets-below-30k", "discontinue")],
        service=SERVICE_VIEW,
        expected_cards=[{"indicator": "critical"}],
    )
    add(
        "pv-not-on-ixazomib",
        "A patient with myeloma who has never had ixazomib: patient-view is silent (no card)",
        label,
        naive("pv-not-on-ixazomib"),
        [],
        service=SERVICE_VIEW,
        expected_cards=[],
    )
    ended = [Cycle(-150, 4, 25), Cycle(-122, 4, 25)]
    add(
        "pv-ixazomib-ended",
        "Ixazomib ended four months ago (last order completed, none active or on hold, none "
        "begun within two cycles): off ixazomib, patient-view is silent",
        label,
        course("pv-ixazomib-ended", ended, []),
        [],
        service=SERVICE_VIEW,
        expected_cards=[],
    )
    unreadable = course("pv-data-unreadable", held, [])
    unreadable.resources.append(
        obs(
            "pv-data-unreadable-plt-odd",
            "pv-data-unreadable",
            "plt",
            20,
            -1,
            unit_code=None,
            unit_display="cells/hpf",
        )
    )
    add(
        "pv-data-unreadable",
        "Yesterday's platelet count is in a unit that is not a count per volume (cells/hpf): "
        "not read, never guessed; the course card names it and asks for review (info: nothing "
        "is known to be due now)",
        label,
        unreadable,
        [rec("data-uninterpretable", "review")],
        service=SERVICE_VIEW,
        expected_cards=[{"indicator": "info"}],
    )
    add(
        "pv-adverse-events-unavailable",
        "The adverse events could be neither prefetched nor fetched: the course card names the "
        "missing data (review); the rest of the course is shown",
        label,
        course("pv-adverse-events-unavailable", held, []),
        [rec("data-unavailable", "review")],
        service=SERVICE_VIEW,
        prefetch_failures={"adverseEvents": "AdverseEvent search failed at the EHR"},
        expected_cards=[{"indicator": "info"}],
    )


def main() -> None:
    for builder in (
        hepatic,
        medication_forms,
        renal,
        dosing,
        regimen_misc,
        cyp3a_pregnancy_allergy,
        cbc_freshness,
        gate,
        heme,
        toxicities,
        more,
        patient_view,
    ):
        builder()
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    ids = [s["id"] for s in SCENARIOS]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise SystemExit(f"duplicate scenario ids: {sorted(duplicates)}")
    for scenario in SCENARIOS:
        path = OUT / f"{scenario['id']}.json"
        path.write_text(json.dumps(scenario, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(SCENARIOS)} scenarios to {OUT}")


if __name__ == "__main__":
    main()
