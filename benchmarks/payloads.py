"""The three request bodies the benchmark sends, built for "now" so that the data is fresh.

* ``small``: ``order-sign`` of an ixazomib 4 mg draft order for a patient who started
  ixazomib + lenalidomide + dexamethasone six months ago: 18 MedicationRequests (six 28-day
  cycles), weekly CBCs and creatinine, bilirubin, CrCl, weight, pain scores, CTCAE-graded
  toxicities, AdverseEvents, Conditions and an allergy. Every DATA_NEEDS key is prefetched
  (``procedures`` as an empty searchset Bundle); about 150 resources in all.
* ``large``: the same plus 2,000 Observations the rules do not use (sodium, potassium, glucose,
  ...), put into the ``labs`` Bundle as an EHR that over-fetches would.
* ``lab``: ``org.ixazomib-cds.lab-result`` with a new CBC in ``context.observations`` (a Bundle
  of type collection) and the ``small`` prefetch.

The values are unremarkable (normal counts, grade 1 toxicities, resolved events): the typical
call. Bodies carry ``HOOK_INSTANCE_PLACEHOLDER`` as ``hookInstance``; the load generator puts a
fresh UUID there for every request (``with_hook_instance`` does it in Python). No body names a
``fhirServer``: the service must never leave the machine during the benchmark.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cds_service.rules.data_needs import (
    ADVERSE_EVENTS,
    ALLERGIES,
    CONDITIONS,
    DATA_NEEDS,
    LABS,
    LOINC,
    MEDDRA,
    MEDICATION_REQUESTS,
    NCIT,
    PATIENT,
    PROCEDURES,
    SNOMED,
    TOXICITY_GRADES,
    TOXICITY_TERM_OBSERVATIONS,
)

JsonDict = dict[str, Any]

HOOK_INSTANCE_PLACEHOLDER = "__HOOK_INSTANCE__"
PATIENT_ID = "bench-pat-1"
EHR_BASE = "https://ehr.example.org/fhir"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
AE_OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
AE_GRADE = "http://hl7.org/fhir/uv/ae-research-backport-ig/StructureDefinition/ae-grade"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CYCLE_DAYS = 28
CYCLES = 6
UNUSED_OBSERVATIONS = 2000

# Lab codes the rules read: (LOINC, display, UCUM unit, low, high) of the normal range.
ANC = ("751-8", "Neutrophils [#/volume] in Blood by Automated count", "10*3/uL", 1.8, 7.7)
PLATELETS = ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150, 400)
CREATININE = ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.7, 1.3)
BILIRUBIN = ("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL", 0.1, 1.2)
CRCL = (
    "2164-2",
    "Creatinine renal clearance in 24 hour Urine and Serum or Plasma",
    "mL/min",
    90,
    140,
)
# Codes an over-fetching EHR adds; none is in LAB_LOINC_CODES.
UNUSED_LABS = (
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 136, 145),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1),
    ("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", 98, 107),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 99),
    ("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", 7, 20),
    ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.6, 10.3),
    (
        "1742-6",
        "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        7,
        56,
    ),
    (
        "1920-8",
        "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        10,
        40,
    ),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 13.5, 17.5),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4.5, 11.0),
)

LabCode = tuple[str, str, str, float, float]


@dataclass(frozen=True)
class Payload:
    """One request body of the benchmark and where it goes."""

    name: str
    service_id: str
    description: str
    body: JsonDict
    resources: int  # FHIR resources in the body (prefetch, draft orders, observations)

    @property
    def path(self) -> str:
        return f"/cds-services/{self.service_id}"

    def template(self) -> str:
        """The body as JSON text, with the hookInstance placeholder left in."""
        return json.dumps(self.body, separators=(",", ":"))


def with_hook_instance(template: str, hook_instance: str | None = None) -> bytes:
    return template.replace(HOOK_INSTANCE_PLACEHOLDER, hook_instance or str(uuid.uuid4())).encode()


def build_payloads(now: datetime | None = None) -> dict[str, Payload]:
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    history = _History(now)
    small_prefetch = history.prefetch(extra_labs=[])
    large_prefetch = history.prefetch(extra_labs=history.unused_observations())
    draft = history.draft_order()
    draft_orders = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]}
    small = {
        "hook": "order-sign",
        "hookInstance": HOOK_INSTANCE_PLACEHOLDER,
        "context": {
            "userId": "Practitioner/bench-prac-1",
            "patientId": PATIENT_ID,
            "encounterId": "bench-enc-1",
            "draftOrders": draft_orders,
        },
        "prefetch": small_prefetch,
    }
    large = {**small, "prefetch": large_prefetch}
    new_cbc = history.new_cbc()
    lab = {
        "hook": "org.ixazomib-cds.lab-result",
        "hookInstance": HOOK_INSTANCE_PLACEHOLDER,
        "context": {
            "patientId": PATIENT_ID,
            "encounterId": "bench-enc-1",
            "observations": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [
                    {"fullUrl": f"{EHR_BASE}/Observation/{obs['id']}", "resource": obs}
                    for obs in new_cbc
                ],
            },
        },
        "prefetch": small_prefetch,
    }
    small_count = _count(small_prefetch) + 1
    return {
        "small": Payload(
            "small",
            "ixazomib-order-sign",
            "order-sign, 6 months of history, every prefetch key filled",
            small,
            small_count,
        ),
        "large": Payload(
            "large",
            "ixazomib-order-sign",
            f"small + {UNUSED_OBSERVATIONS} unused Observations in the labs Bundle",
            large,
            small_count + UNUSED_OBSERVATIONS,
        ),
        "lab": Payload(
            "lab",
            "ixazomib-lab-result",
            f"lab-result with a new CBC ({len(new_cbc)} Observations), small prefetch",
            lab,
            _count(small_prefetch) + len(new_cbc),
        ),
    }


def _count(prefetch: JsonDict) -> int:
    total = 0
    for value in prefetch.values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            total += len(value.get("entry", []))
        elif value is not None:
            total += 1
    return total


def _wobble(index: int, spread: float) -> float:
    """A deterministic value in [-spread, spread]: varied data without a random generator."""
    return spread * (((index * 7919) % 101) / 50.0 - 1.0)


def _reference(resource_type: str, resource_id: str) -> JsonDict:
    return {"reference": f"{resource_type}/{resource_id}"}


class _History:
    """Six months of treatment of one patient, ending ``now``."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.start = now - timedelta(days=CYCLES * CYCLE_DAYS)
        self.subject = _reference("Patient", PATIENT_ID)

    # --- resources -------------------------------------------------------------------------

    def patient(self) -> JsonDict:
        return {
            "resourceType": "Patient",
            "id": PATIENT_ID,
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN-000123"}],
            "name": [{"family": "Benchmark", "given": ["Pat"]}],
            "gender": "male",
            "birthDate": f"{self.now.year - 67}-03-14",
        }

    def _when(self, days_ago: float, hour: int = 8) -> str:
        moment = (self.now - timedelta(days=days_ago)).replace(hour=hour, minute=15, second=0)
        return moment.isoformat().replace("+00:00", "Z")

    def _medication_request(
        self,
        request_id: str,
        status: str,
        rxnorm: str,
        display: str,
        dose_mg: float,
        timing: JsonDict,
        authored: str,
        bounds_days: int | None = None,
    ) -> JsonDict:
        repeat = dict(timing)
        if bounds_days is not None:
            repeat["boundsDuration"] = {
                "value": bounds_days,
                "unit": "d",
                "system": UCUM,
                "code": "d",
            }
        return {
            "resourceType": "MedicationRequest",
            "id": request_id,
            "status": status,
            "intent": "order",
            "subject": self.subject,
            "encounter": _reference("Encounter", "bench-enc-1"),
            "authoredOn": authored,
            "requester": _reference("Practitioner", "bench-prac-1"),
            "medicationCodeableConcept": {
                "coding": [{"system": RXNORM, "code": rxnorm, "display": display}],
                "text": display,
            },
            "dosageInstruction": [
                {
                    "text": f"{dose_mg:g} mg by mouth",
                    "timing": {"repeat": repeat},
                    "route": {
                        "coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}]
                    },
                    "doseAndRate": [
                        {
                            "doseQuantity": {
                                "value": dose_mg,
                                "unit": "mg",
                                "system": UCUM,
                                "code": "mg",
                            }
                        }
                    ],
                }
            ],
        }

    def medication_requests(self) -> list[JsonDict]:
        orders: list[JsonDict] = []
        weekly = {"frequency": 1, "period": 1, "periodUnit": "wk"}
        daily = {"frequency": 1, "period": 1, "periodUnit": "d"}
        for cycle in range(CYCLES):
            days_ago = (CYCLES - cycle) * CYCLE_DAYS
            authored = self._when(days_ago, hour=10)
            status = "active" if cycle == CYCLES - 1 else "completed"
            n = cycle + 1
            orders.append(
                self._medication_request(
                    f"ixa-c{n}",
                    status,
                    "1723770",
                    "ixazomib 4 MG Oral Capsule",
                    4,
                    weekly,
                    authored,
                    bounds_days=21,
                )
            )
            orders.append(
                self._medication_request(
                    f"len-c{n}",
                    status,
                    "342369",
                    "lenalidomide",
                    25,
                    daily,
                    authored,
                    bounds_days=21,
                )
            )
            orders.append(
                self._medication_request(
                    f"dex-c{n}",
                    status,
                    "3264",
                    "dexamethasone",
                    40,
                    weekly,
                    authored,
                    bounds_days=28,
                )
            )
        return orders

    def draft_order(self) -> JsonDict:
        draft = self._medication_request(
            "bench-draft-ixa-c7",
            "draft",
            "1723770",
            "ixazomib 4 MG Oral Capsule",
            4,
            {"frequency": 1, "period": 1, "periodUnit": "wk"},
            self._when(0, hour=9),
            bounds_days=21,
        )
        draft["dispenseRequest"] = {
            "quantity": {"value": 3, "unit": "capsule"},
            "expectedSupplyDuration": {"value": 28, "unit": "d", "system": UCUM, "code": "d"},
        }
        return draft

    def observation(
        self,
        obs_id: str,
        code: LabCode,
        value: float,
        days_ago: float,
        category: str = "laboratory",
        hour: int = 8,
    ) -> JsonDict:
        loinc, display, unit, low, high = code
        return {
            "resourceType": "Observation",
            "id": obs_id,
            "status": "final",
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": category}]}],
            "code": {
                "coding": [{"system": LOINC, "code": loinc, "display": display}],
                "text": display,
            },
            "subject": self.subject,
            "effectiveDateTime": self._when(days_ago, hour),
            "issued": self._when(days_ago, hour + 2),
            "valueQuantity": {"value": round(value, 2), "unit": unit, "system": UCUM, "code": unit},
            "referenceRange": [
                {
                    "low": {"value": low, "unit": unit, "system": UCUM, "code": unit},
                    "high": {"value": high, "unit": unit, "system": UCUM, "code": unit},
                }
            ],
        }

    def labs(self) -> list[JsonDict]:
        """About 110 Observations the rules read, newest first (``_sort=-date``)."""
        labs: list[JsonDict] = []
        weeks = CYCLES * CYCLE_DAYS // 7
        for week in range(weeks):
            days_ago = 1 + 7 * week
            labs.append(self.observation(f"anc-w{week}", ANC, 2.6 + _wobble(week, 0.6), days_ago))
            labs.append(
                self.observation(f"plt-w{week}", PLATELETS, 190 + _wobble(week + 3, 35), days_ago)
            )
            labs.append(
                self.observation(
                    f"crea-w{week}", CREATININE, 0.95 + _wobble(week + 5, 0.12), days_ago
                )
            )
            if week % 2 == 0:
                labs.append(
                    self.observation(
                        f"bili-w{week}", BILIRUBIN, 0.6 + _wobble(week + 7, 0.2), days_ago
                    )
                )
                weight: LabCode = ("29463-7", "Body weight", "kg", 50, 120)
                labs.append(
                    self.observation(
                        f"wt-w{week}", weight, 78 + _wobble(week, 1.5), days_ago, "vital-signs"
                    )
                )
                labs.append(
                    self.observation(f"crcl-w{week}", CRCL, 88 + _wobble(week + 11, 6), days_ago)
                )
            if week % 4 == 0:
                pain: LabCode = (
                    "72514-3",
                    "Pain severity - 0-10 verbal numeric rating",
                    "{score}",
                    0,
                    10,
                )
                labs.append(self.observation(f"pain-w{week}", pain, 0, days_ago, "survey"))
        labs.sort(key=lambda obs: str(obs["effectiveDateTime"]), reverse=True)
        return labs

    def unused_observations(self) -> list[JsonDict]:
        """UNUSED_OBSERVATIONS chemistry and blood count results the rules never read."""
        found: list[JsonDict] = []
        per_code = UNUSED_OBSERVATIONS // len(UNUSED_LABS)
        span_days = CYCLES * CYCLE_DAYS
        for index, code in enumerate(UNUSED_LABS):
            low, high = code[3], code[4]
            middle, spread = (low + high) / 2, (high - low) / 3
            for n in range(per_code):
                days_ago = 0.5 + n * span_days / per_code
                found.append(
                    self.observation(
                        f"x{index}-{n}",
                        code,
                        middle + _wobble(n + index, spread),
                        days_ago,
                        hour=6 + n % 12,
                    )
                )
        return found

    def toxicity_grades(self) -> list[JsonDict]:
        grade1 = {
            "coding": [{"system": NCIT, "code": "C41338", "display": "Grade 1 Mild Adverse Event"}]
        }
        terms = (
            ("10028813", "Nausea", 150),
            ("10012735", "Diarrhoea", 90),
            ("10016256", "Fatigue", 40),
        )
        return [
            {
                "resourceType": "Observation",
                "id": f"tox-grade-{code}",
                "status": "final",
                "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "exam"}]}],
                "code": {"coding": [{"system": MEDDRA, "code": code, "display": display}]},
                "subject": self.subject,
                "effectiveDateTime": self._when(days_ago),
                "valueCodeableConcept": grade1,
            }
            for code, display, days_ago in terms
        ]

    def toxicity_term_observations(self) -> list[JsonDict]:
        return [
            {
                "resourceType": "Observation",
                "id": f"neuropathy-{n}",
                "status": "final",
                "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "exam"}]}],
                "code": {
                    "coding": [
                        {
                            "system": NCIT,
                            "code": "C143752",
                            "display": "Peripheral sensory neuropathy",
                        }
                    ]
                },
                "subject": self.subject,
                "effectiveDateTime": self._when(days_ago),
                "valueInteger": grade,
            }
            for n, (days_ago, grade) in enumerate(((60, 1), (32, 1), (4, 1)))
        ]

    def adverse_events(self) -> list[JsonDict]:
        events = (
            ("10028813", "Nausea", 150, 1),
            ("10012735", "Diarrhoea", 90, 1),
            ("10037868", "Rash", 120, 1),
            ("10016256", "Fatigue", 40, 1),
        )
        return [
            {
                "resourceType": "AdverseEvent",
                "id": f"ae-{code}",
                "extension": [
                    {
                        "url": AE_GRADE,
                        "valueCodeableConcept": {
                            "coding": [
                                {
                                    "system": NCIT,
                                    "code": "C41338",
                                    "display": "Grade 1 Mild Adverse Event",
                                }
                            ]
                        },
                    }
                ],
                "actuality": "actual",
                "event": {
                    "coding": [{"system": MEDDRA, "code": code, "display": display}],
                    "text": display,
                },
                "subject": self.subject,
                "date": self._when(days_ago),
                "outcome": {"coding": [{"system": AE_OUTCOME, "code": "resolved"}]},
                "suspectEntity": [{"instance": _reference("MedicationRequest", "ixa-c1")}],
            }
            for code, display, days_ago, _grade in events
        ]

    def conditions(self) -> list[JsonDict]:
        conditions = (
            ("109989006", "Multiple myeloma", 400),
            ("38341003", "Hypertensive disorder", 3000),
            ("55822004", "Hyperlipidemia", 2500),
            ("267036007", "Dyspnea", 200),
        )
        return [
            {
                "resourceType": "Condition",
                "id": f"cond-{code}",
                "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]},
                "code": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
                "subject": self.subject,
                "onsetDateTime": self._when(days_ago),
            }
            for code, display, days_ago in conditions
        ]

    def allergies(self) -> list[JsonDict]:
        return [
            {
                "resourceType": "AllergyIntolerance",
                "id": "allergy-penicillin",
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                            "code": "active",
                        }
                    ]
                },
                "code": {"coding": [{"system": RXNORM, "code": "70618", "display": "Penicillin"}]},
                "patient": self.subject,
            }
        ]

    def new_cbc(self) -> list[JsonDict]:
        """The lab-result hook's new results: ANC and platelets from this morning."""
        hour = max(0, min(self.now.hour - 1, 8))
        return [
            self.observation("new-anc", ANC, 1.4, 0, hour=hour),
            self.observation("new-plt", PLATELETS, 120, 0, hour=hour),
        ]

    # --- prefetch ----------------------------------------------------------------------------

    def prefetch(self, extra_labs: list[JsonDict]) -> JsonDict:
        by_key: dict[str, list[JsonDict]] = {
            MEDICATION_REQUESTS: self.medication_requests(),
            LABS: self.labs() + extra_labs,
            TOXICITY_GRADES: self.toxicity_grades(),
            TOXICITY_TERM_OBSERVATIONS: self.toxicity_term_observations(),
            ADVERSE_EVENTS: self.adverse_events(),
            CONDITIONS: self.conditions(),
            PROCEDURES: [],
            ALLERGIES: self.allergies(),
        }
        prefetch: JsonDict = {}
        for need in DATA_NEEDS:
            if need.key == PATIENT:
                prefetch[need.key] = self.patient()
            elif need.key in by_key:
                prefetch[need.key] = _searchset(by_key[need.key])
            else:  # a data need added later: an EHR that found nothing
                prefetch[need.key] = _searchset([])
        return prefetch


def _searchset(resources: list[JsonDict]) -> JsonDict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"{EHR_BASE}/{resource['resourceType']}/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
            for resource in resources
        ],
    }
