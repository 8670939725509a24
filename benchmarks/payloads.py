"""The request bodies the benchmark sends, built for "now" so that the data is fresh.

The warm workloads send one patient's body again and again (the same history, a fresh
hookInstance and token each time):

* ``small``: ``order-sign`` of an ixazomib 4 mg draft order for a patient who started
  ixazomib + lenalidomide + dexamethasone six months ago: 18 MedicationRequests (six 28-day
  cycles), weekly CBCs and creatinine, bilirubin, CrCl, weight, pain scores, CTCAE-graded
  toxicities, AdverseEvents, Conditions and an allergy. Every DATA_NEEDS key is prefetched
  (``procedures`` as an empty searchset Bundle); about 150 resources in all.
* ``large``: the same plus 2,000 Observations the rules do not use (sodium, potassium, glucose,
  ...), put into the ``labs`` Bundle as an EHR that over-fetches would.
* ``lab``: ``org.ixazomib-cds.lab-result`` with a new CBC in ``context.observations`` (a Bundle
  of type collection) and the ``small`` prefetch.

The real-traffic workloads send a different patient in every request, cycling through
``patients`` of them (each with its own ids, timestamps and values, so no two bodies and no two
resources are the same):

* ``distinct``: the ``small`` order-sign, one 6-month ixazomib history per patient;
* ``off-treatment``: the ``lab`` call for patients who take no ixazomib (metformin, lisinopril,
  atorvastatin; no myeloma), with the same kinds of lab history: what the lab-result hook sees
  for every new result of a hospital.

``history_body`` builds one body for any patient number and history length (the in-process
cold measurement uses 6-month and 4-year histories).

The values are unremarkable (normal counts, grade 1 toxicities, resolved events): the typical
call. Bodies carry ``HOOK_INSTANCE_PLACEHOLDER`` as ``hookInstance``; the load generator puts a
fresh UUID there for every request (``with_hook_instance`` does it in Python). No body names a
``fhirServer``: the service must never leave the machine during the benchmark.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from cds_service.rules.codes import LOINC, MEDDRA, NCIT, SNOMED
from cds_service.rules.data_needs import DATA_NEEDS
from cds_service.rules.prefetch_keys import (
    ADVERSE_EVENTS,
    ALLERGIES,
    CONDITIONS,
    LABS,
    MEDICATION_REQUESTS,
    PATIENT,
    PROCEDURES,
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
CYCLES_IN_FOUR_YEARS = 52  # 52 x 28 days = 1,456 days
UNUSED_OBSERVATIONS = 2000
ORDER_SIGN = "ixazomib-order-sign"
LAB_RESULT = "ixazomib-lab-result"
DISTINCT_WORKLOADS = ("distinct", "off-treatment")

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
# (RxNorm, display, mg, timing) of the off-treatment patients' medicines: none is ixazomib.
OTHER_MEDICINES = (
    ("861007", "metformin hydrochloride 500 MG Oral Tablet", 500, "daily"),
    ("314076", "lisinopril 10 MG Oral Tablet", 10, "daily"),
    ("617312", "atorvastatin 20 MG Oral Tablet", 20, "daily"),
)

LabCode = tuple[str, str, str, float, float]


@dataclass(frozen=True)
class Payload:
    """One workload of the benchmark: where it goes and the body (or bodies) it sends.

    A warm workload has one body (``patients == 1``); a real-traffic one has a body per
    patient, made by ``body_of(n)`` for n = 1 .. patients, and ``body`` is the first."""

    name: str
    service_id: str
    description: str
    body: JsonDict
    resources: int  # FHIR resources in one body (prefetch, draft orders, observations)
    patients: int = 1
    body_of: Callable[[int], JsonDict] | None = None

    @property
    def path(self) -> str:
        return f"/cds-services/{self.service_id}"

    def template(self) -> str:
        """The (first) body as JSON text, with the hookInstance placeholder left in."""
        return to_text(self.body)

    def templates(self) -> Iterator[str]:
        """Every body the workload cycles through, one patient after the other."""
        if self.body_of is None:
            yield self.template()
            return
        for number in range(1, self.patients + 1):
            yield to_text(self.body_of(number))


def to_text(body: JsonDict) -> str:
    """Compact JSON (what ``json.dumps(body, separators=(",", ":"))`` writes, 7x faster)."""
    return orjson.dumps(body).decode()


def with_hook_instance(template: str, hook_instance: str | None = None) -> bytes:
    return template.replace(HOOK_INSTANCE_PLACEHOLDER, hook_instance or str(uuid.uuid4())).encode()


@dataclass(frozen=True)
class PatientSpec:
    """Whose history a body carries. ``number`` None is the warm workloads' one patient (its
    ids and values as they always were); a number gives a patient of its own: its own id,
    resource ids, timestamps (minute of the hour) and values."""

    number: int | None = None
    cycles: int = CYCLES
    on_ixazomib: bool = True


def history_body(
    service_id: str, spec: PatientSpec, now: datetime, extra_labs: int = 0
) -> JsonDict:
    """One hook request: order-sign of a 4 mg ixazomib draft, or lab-result with a new CBC."""
    history = _History(now, spec)
    unused = history.unused_observations() if extra_labs else []
    prefetch = history.prefetch(extra_labs=unused[:extra_labs])
    context: JsonDict = {"userId": "Practitioner/bench-prac-1"} if service_id == ORDER_SIGN else {}
    context.update({"patientId": history.patient_id, "encounterId": "bench-enc-1"})
    if service_id == ORDER_SIGN:
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": history.draft_order()}],
        }
        hook = "order-sign"
    else:
        context["observations"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"fullUrl": f"{EHR_BASE}/Observation/{obs['id']}", "resource": obs}
                for obs in history.new_cbc()
            ],
        }
        hook = "org.ixazomib-cds.lab-result"
    return {
        "hook": hook,
        "hookInstance": HOOK_INSTANCE_PLACEHOLDER,
        "context": context,
        "prefetch": prefetch,
    }


def resources_in(body: JsonDict) -> int:
    """FHIR resources in a body: the prefetch's and the context's Bundles."""
    context = body["context"]
    in_context = sum(
        len(context[key]["entry"]) for key in ("draftOrders", "observations") if key in context
    )
    return _count(body["prefetch"]) + in_context


def build_payloads(
    now: datetime | None = None, patients: int = 1000, names: tuple[str, ...] | None = None
) -> dict[str, Payload]:
    """The workloads named (all by default); the real-traffic ones over ``patients`` patients."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    warm = PatientSpec()
    small = history_body(ORDER_SIGN, warm, now)
    large = history_body(ORDER_SIGN, warm, now, extra_labs=UNUSED_OBSERVATIONS)
    lab = history_body(LAB_RESULT, warm, now)
    new_results = len(lab["context"]["observations"]["entry"])

    def distinct(number: int) -> JsonDict:
        return history_body(ORDER_SIGN, PatientSpec(number), now)

    def off_treatment(number: int) -> JsonDict:
        return history_body(LAB_RESULT, PatientSpec(number, on_ixazomib=False), now)

    makers: dict[str, Callable[[], Payload]] = {
        "small": lambda: Payload(
            "small",
            ORDER_SIGN,
            "order-sign, 6 months of history, every prefetch key filled",
            small,
            resources_in(small),
        ),
        "large": lambda: Payload(
            "large",
            ORDER_SIGN,
            f"small + {UNUSED_OBSERVATIONS} unused Observations in the labs Bundle",
            large,
            resources_in(large),
        ),
        "lab": lambda: Payload(
            "lab",
            LAB_RESULT,
            f"lab-result with a new CBC ({new_results} Observations), small prefetch",
            lab,
            resources_in(lab),
        ),
        "distinct": lambda: Payload(
            "distinct",
            ORDER_SIGN,
            f"order-sign for {patients} distinct patients, 6 months of ixazomib history each",
            distinct(1),
            resources_in(distinct(1)),
            patients,
            distinct,
        ),
        "off-treatment": lambda: Payload(
            "off-treatment",
            LAB_RESULT,
            f"lab-result for {patients} distinct patients who take no ixazomib",
            off_treatment(1),
            resources_in(off_treatment(1)),
            patients,
            off_treatment,
        ),
    }
    return {name: make() for name, make in makers.items() if names is None or name in names}


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
    """``spec.cycles`` 28-day cycles of treatment of one patient, ending ``now``."""

    def __init__(self, now: datetime, spec: PatientSpec | None = None) -> None:
        spec = spec or PatientSpec()
        self.now = now
        self.spec = spec
        self.cycles = spec.cycles
        if spec.number is None:
            self.patient_id, self._prefix, self._shift, self._minute = PATIENT_ID, "", 0, 15
        else:
            self.patient_id = f"bench-pat-{spec.number:05d}"
            self._prefix = f"p{spec.number}-"
            self._shift = spec.number  # each patient its own run of values
            self._minute = spec.number % 60  # and its own times
        self.subject = _reference("Patient", self.patient_id)

    def _id(self, name: str) -> str:
        return self._prefix + name

    def _wobble(self, index: int, spread: float) -> float:
        return _wobble(index + self._shift, spread)

    # --- resources -------------------------------------------------------------------------

    def patient(self) -> JsonDict:
        return {
            "resourceType": "Patient",
            "id": self.patient_id,
            "identifier": [
                {
                    "system": "urn:oid:2.16.840.1.113883.19.5",
                    "value": f"MRN-{self.spec.number or 123:06d}",
                }
            ],
            "name": [{"family": "Benchmark", "given": ["Pat"]}],
            "gender": "male",
            "birthDate": f"{self.now.year - 67}-03-14",
        }

    def _when(self, days_ago: float, hour: int = 8) -> str:
        moment = (self.now - timedelta(days=days_ago)).replace(
            hour=hour, minute=self._minute, second=0
        )
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
            "id": self._id(request_id),
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
        if not self.spec.on_ixazomib:
            return self.other_medication_requests()
        orders: list[JsonDict] = []
        weekly = {"frequency": 1, "period": 1, "periodUnit": "wk"}
        daily = {"frequency": 1, "period": 1, "periodUnit": "d"}
        for cycle in range(self.cycles):
            days_ago = (self.cycles - cycle) * CYCLE_DAYS
            authored = self._when(days_ago, hour=10)
            status = "active" if cycle == self.cycles - 1 else "completed"
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

    def other_medication_requests(self) -> list[JsonDict]:
        """A patient on no ixazomib: a 28-day supply of each of OTHER_MEDICINES per cycle."""
        daily = {"frequency": 1, "period": 1, "periodUnit": "d"}
        orders: list[JsonDict] = []
        for cycle in range(self.cycles):
            days_ago = (self.cycles - cycle) * CYCLE_DAYS
            status = "active" if cycle == self.cycles - 1 else "completed"
            for rxnorm, display, dose_mg, _timing in OTHER_MEDICINES:
                orders.append(
                    self._medication_request(
                        f"rx{rxnorm}-c{cycle + 1}",
                        status,
                        rxnorm,
                        display,
                        dose_mg,
                        daily,
                        self._when(days_ago, hour=10),
                        bounds_days=CYCLE_DAYS,
                    )
                )
        return orders

    def draft_order(self) -> JsonDict:
        draft = self._medication_request(
            "bench-draft-ixa-c7" if self.spec.number is None else f"draft-ixa-c{self.cycles + 1}",
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
            "id": self._id(obs_id),
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
        weeks = self.cycles * CYCLE_DAYS // 7
        for week in range(weeks):
            days_ago = 1 + 7 * week
            labs.append(
                self.observation(f"anc-w{week}", ANC, 2.6 + self._wobble(week, 0.6), days_ago)
            )
            labs.append(
                self.observation(
                    f"plt-w{week}", PLATELETS, 190 + self._wobble(week + 3, 35), days_ago
                )
            )
            labs.append(
                self.observation(
                    f"crea-w{week}", CREATININE, 0.95 + self._wobble(week + 5, 0.12), days_ago
                )
            )
            if week % 2 == 0:
                labs.append(
                    self.observation(
                        f"bili-w{week}", BILIRUBIN, 0.6 + self._wobble(week + 7, 0.2), days_ago
                    )
                )
                weight: LabCode = ("29463-7", "Body weight", "kg", 50, 120)
                labs.append(
                    self.observation(
                        f"wt-w{week}", weight, 78 + self._wobble(week, 1.5), days_ago, "vital-signs"
                    )
                )
                labs.append(
                    self.observation(
                        f"crcl-w{week}", CRCL, 88 + self._wobble(week + 11, 6), days_ago
                    )
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
        span_days = self.cycles * CYCLE_DAYS
        for index, code in enumerate(UNUSED_LABS):
            low, high = code[3], code[4]
            middle, spread = (low + high) / 2, (high - low) / 3
            for n in range(per_code):
                days_ago = 0.5 + n * span_days / per_code
                found.append(
                    self.observation(
                        f"x{index}-{n}",
                        code,
                        middle + self._wobble(n + index, spread),
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
                "id": self._id(f"tox-grade-{code}"),
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
                "id": self._id(f"neuropathy-{n}"),
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
        suspect = self._first_order_id
        return [
            {
                "resourceType": "AdverseEvent",
                "id": self._id(f"ae-{code}"),
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
                "suspectEntity": [{"instance": _reference("MedicationRequest", suspect)}],
            }
            for code, display, days_ago, _grade in events
        ]

    @property
    def _first_order_id(self) -> str:
        first = "ixa-c1" if self.spec.on_ixazomib else f"rx{OTHER_MEDICINES[0][0]}-c1"
        return self._id(first)

    def conditions(self) -> list[JsonDict]:
        myeloma = ("109989006", "Multiple myeloma", 400)
        diabetes = ("44054006", "Diabetes mellitus type 2", 1800)
        conditions = (
            myeloma if self.spec.on_ixazomib else diabetes,
            ("38341003", "Hypertensive disorder", 3000),
            ("55822004", "Hyperlipidemia", 2500),
            ("267036007", "Dyspnea", 200),
        )
        return [
            {
                "resourceType": "Condition",
                "id": self._id(f"cond-{code}"),
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
                "id": self._id("allergy-penicillin"),
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
        hour, days_ago = max(0, min(self.now.hour - 1, 8)), 0
        if self.now.hour == 0:  # in the last hour: 23:xx yesterday, never in the future
            hour, days_ago = 23, 1
        # Each numbered patient its own values; the warm patient's stay as they always were.
        anc: float = 1.4
        platelets: float = 120
        if self.spec.number is not None:
            anc, platelets = anc + self._wobble(0, 0.3), platelets + self._wobble(1, 20)
        return [
            self.observation("new-anc", ANC, anc, days_ago, hour=hour),
            self.observation("new-plt", PLATELETS, platelets, days_ago, hour=hour),
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
