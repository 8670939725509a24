"""Patient, conditions, procedures, allergies and CTCAE-graded toxicities."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from enum import Enum
from typing import Any

from fhir.resources.R4B.adverseevent import AdverseEvent
from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure

from cds_service.rules.codes import (
    AE_GRADE_EXTENSIONS,
    AE_OUTCOME,
    CTCAE_GRADES,
    DIALYSIS_PROCEDURE_SNOMED,
    ESRD_ICD10,
    ESRD_SNOMED,
    HEMATOLOGIC_WORDS,
    ICD10CM,
    NCIT,
    NEUROPATHIC_PAIN_TERMS,
    NEUROPATHY_TERMS,
    PREGNANCY_CONDITION_ICD10_PREFIXES,
    PREGNANCY_CONDITION_SNOMED,
    PREGNANCY_STATUS_CODES,
    RASH_TERMS,
    SNOMED,
    SNOMED_PREGNANT,
)
from cds_service.rules.facts.labs import loinc_codes
from cds_service.rules.facts.orders import Drug, identify
from cds_service.rules.facts.reading import (
    Problems,
    as_instant,
    codes_in,
    codings,
    concept_text,
    reference_of,
    text_field,
    validate,
)
from cds_service.rules.inputs import JsonDict

# How far back a dialysis procedure still means "on dialysis". The label is silent.
DIALYSIS_LOOKBACK = timedelta(days=90)
# A positive pregnancy status older than a full term no longer says "pregnant now".
PREGNANCY_LOOKBACK = timedelta(days=280)


@dataclass(frozen=True)
class PatientFacts:
    birth_date: date | None
    sex: str | None  # "female" / "male" / other FHIR gender / None
    # A birth date with its year (and month) only, as sent: no exact age can be computed.
    partial_birth_date: str | None = None


@dataclass(frozen=True)
class Evidence:
    """A resource that supports a finding, in words for the card."""

    text: str
    reference: str
    at: datetime | None
    zone_assumed: bool = False


def read_patient(raw: JsonDict | None, zone: tzinfo, problems: Problems) -> PatientFacts:
    patient = validate(Patient, raw, zone, problems) if raw else None
    if patient is None:
        return PatientFacts(None, None)
    birth = patient.birthDate if isinstance(patient.birthDate, date) else None
    partial = patient.birthDate if isinstance(patient.birthDate, str) else None
    return PatientFacts(birth, patient.gender, partial)


def _status_code(concept: Any) -> str | None:
    found = codings(concept)
    return found[0][1] if found else None


def _condition_holds(condition: Condition) -> bool:
    """Active (or no status and no abatement) and neither refuted nor merely suspected."""
    clinical = _status_code(condition.clinicalStatus)
    verification = _status_code(condition.verificationStatus)
    if verification in {
        "refuted",
        "entered-in-error",
        "unconfirmed",
        "provisional",
        "differential",
    }:
        return False
    if clinical is None:
        return condition.abatementDateTime is None and condition.abatementString is None
    return clinical in {"active", "recurrence", "relapse"}


def renal_failure_evidence(
    conditions: list[JsonDict],
    procedures: list[JsonDict],
    now: datetime,
    zone: tzinfo,
    problems: Problems,
) -> list[Evidence]:
    """End-stage renal disease or dialysis, from Conditions and recent dialysis Procedures."""
    found: list[Evidence] = []
    for raw in conditions:
        code = raw.get("code")
        if not (codes_in(code, SNOMED) & ESRD_SNOMED or codes_in(code, ICD10CM) & ESRD_ICD10):
            continue
        condition = validate(Condition, raw, zone, problems)
        if condition is not None and _condition_holds(condition):
            at = as_instant(condition.onsetDateTime or condition.recordedDate, zone)
            name = concept_text(code) or "end-stage renal disease"
            found.append(Evidence(f"Condition: {name}", reference_of(raw), at))
    for raw in procedures:
        if not codes_in(raw.get("code"), SNOMED) & DIALYSIS_PROCEDURE_SNOMED:
            continue
        procedure = validate(Procedure, raw, zone, problems)
        if procedure is None or procedure.status not in {"completed", "in-progress"}:
            continue
        at = as_instant(
            procedure.performedDateTime
            or (procedure.performedPeriod.start if procedure.performedPeriod else None),
            zone,
        )
        if at is not None and now - at <= DIALYSIS_LOOKBACK:
            found.append(
                Evidence(
                    f"Procedure: {concept_text(raw.get('code')) or 'dialysis'}",
                    reference_of(raw),
                    at,
                    reference_of(raw) in problems.zone_assumed,
                )
            )
    return found


def pregnancy_evidence(
    observations: list[JsonDict],
    conditions: list[JsonDict],
    now: datetime,
    zone: tzinfo,
    problems: Problems,
) -> list[Evidence]:
    """Pregnancy now: the latest pregnancy status says pregnant, or an active Condition."""
    found: list[Evidence] = []
    statuses = [
        status
        for raw in observations
        if (status := _pregnancy_status(raw, zone, problems)) is not None
    ]
    if statuses:
        latest, pregnant, reference, zone_assumed = max(statuses)
        if pregnant and now - latest <= PREGNANCY_LOOKBACK:
            found.append(Evidence("Pregnancy status: pregnant", reference, latest, zone_assumed))
    for raw in conditions:
        code = raw.get("code")
        icd = codes_in(code, ICD10CM)
        if not (
            codes_in(code, SNOMED) & PREGNANCY_CONDITION_SNOMED
            or any(c.startswith(PREGNANCY_CONDITION_ICD10_PREFIXES) for c in icd)
        ):
            continue
        condition = validate(Condition, raw, zone, problems)
        if condition is not None and _condition_holds(condition):
            at = as_instant(condition.onsetDateTime or condition.recordedDate, zone)
            found.append(Evidence("Condition: pregnancy", reference_of(raw), at))
    return found


def _pregnancy_status(
    raw: JsonDict, zone: tzinfo, problems: Problems
) -> tuple[datetime, bool, str, bool] | None:
    """(when, pregnant, reference, zone assumed) of a pregnancy status Observation, or None."""
    if not loinc_codes(raw.get("code")) & PREGNANCY_STATUS_CODES:
        return None
    if text_field(raw, "status") not in {"final", "amended", "corrected"}:
        return None
    observation = validate(Observation, raw, zone, problems)
    if observation is None:
        return None
    at = as_instant(observation.effectiveDateTime or observation.issued, zone)
    if at is None:
        return None
    pregnant = SNOMED_PREGNANT in codes_in(observation.valueCodeableConcept, SNOMED)
    return at, pregnant, reference_of(raw), reference_of(raw) in problems.zone_assumed


def hypersensitivity_evidence(
    allergies: list[JsonDict], zone: tzinfo, problems: Problems
) -> list[Evidence]:
    found: list[Evidence] = []
    for raw in allergies:
        code = raw.get("code")
        text = concept_text(code)
        if identify(code).drug is not Drug.IXAZOMIB:  # by any code of the drug, or by name
            continue
        allergy = validate(AllergyIntolerance, raw, zone, problems)
        if allergy is None:
            continue
        if _status_code(allergy.verificationStatus) in {"refuted", "entered-in-error"}:
            continue
        if _status_code(allergy.clinicalStatus) in {"inactive", "resolved"}:
            continue
        at = as_instant(allergy.recordedDate or allergy.onsetDateTime, zone)
        found.append(Evidence(f"AllergyIntolerance: {text or 'ixazomib'}", reference_of(raw), at))
    return found


# --- toxicities -------------------------------------------------------------------------------


class Toxicity(Enum):
    NEUROPATHY = "peripheral neuropathy"
    RASH = "rash"
    NEUROPATHIC_PAIN = "neuropathic pain"
    OTHER = "other non-hematologic toxicity"


@dataclass(frozen=True)
class ToxicityFinding:
    toxicity: Toxicity
    term: str  # as recorded
    grade: int | None  # CTCAE grade 0-5; None when only a severity was recorded
    severity: str | None  # plain R4 AdverseEvent.severity (never decides a grade)
    ongoing: bool
    at: datetime | None
    reference: str
    attributed_to_ixazomib: bool | None  # None: not stated
    zone_assumed: bool


def toxicity_of(concept: Any) -> Toxicity | None:
    """The toxicity a term names; None for hematologic terms (judged from the counts)."""
    terms = set(codings(concept))
    text = concept_text(concept)
    if terms & NEUROPATHY_TERMS or ("neuropath" in text and "pain" not in text):
        return Toxicity.NEUROPATHY
    if terms & NEUROPATHIC_PAIN_TERMS or "neuralgia" in text or "neuropathic pain" in text:
        return Toxicity.NEUROPATHIC_PAIN
    if terms & RASH_TERMS or "rash" in text:
        return Toxicity.RASH
    if any(word in text for word in HEMATOLOGIC_WORDS):
        return None
    return Toxicity.OTHER


def _term_of(concept: Any, toxicity: Toxicity) -> str:
    """The toxicity's name, once: the concept's text, else its first coding display, lower case.

    Not ``concept_text``, which joins the text and every display for matching and so repeats
    the name on the card ("diarrhoea diarrhoea diarrhea") whenever the text and the displays of
    several code systems agree or differ only in spelling."""
    raw = concept if isinstance(concept, dict) else {}
    coding = raw.get("coding")
    coding = coding if isinstance(coding, list) else []
    for name in [raw.get("text"), *(c.get("display") for c in coding if isinstance(c, dict))]:
        if isinstance(name, str) and name.strip():
            return " ".join(name.split()).lower()
    return toxicity.value


def _grade_of_concept(concept: Any) -> int | None:
    for code in codes_in(concept, NCIT):
        if code in CTCAE_GRADES:
            return CTCAE_GRADES[code]
    return None


def _grade_extension(raw: Any) -> Any:
    """The valueCodeableConcept of an ae-grade extension anywhere in the resource."""
    if isinstance(raw, dict):
        url = raw.get("url")
        if isinstance(url, str) and url in AE_GRADE_EXTENSIONS and "valueCodeableConcept" in raw:
            return raw["valueCodeableConcept"]
        items: list[Any] = list(raw.values())
    elif isinstance(raw, list):
        items = raw
    else:
        return None
    for item in items:
        found = _grade_extension(item)
        if found is not None:
            return found
    return None


_RESOLVED_OUTCOMES = {"resolved", "resolvedWithSequelae", "fatal"}
_NOT_RELATED_WORDS = ("unrelated", "not related", "unlikely", "excluded")


def _attribution(
    event: AdverseEvent, ixazomib_references: AbstractSet[str], other_references: AbstractSet[str]
) -> bool | None:
    """Whether the event is attributed to ixazomib, from its suspectEntity list.

    True when a suspect names ixazomib (an ixazomib order or its Medication, or by name) and its
    causality does not say unrelated. False when it does, and when every suspect is known to be
    something else: another drug's order or Medication (``other_references``), or a name that is
    not ixazomib. An event that names lenalidomide alone is not ixazomib's to reduce. None when
    nothing is recorded, or a suspect cannot be identified (a reference to a resource the service
    does not read, such as a MedicationAdministration): it may be ixazomib, so the physician is
    asked rather than the reduction skipped."""
    stated: bool | None = None
    other_named = False
    unidentified = False
    for suspect in event.suspectEntity or []:
        # getattr: the models accept null even for required elements.
        instance = getattr(suspect, "instance", None)
        if instance is None:
            unidentified = True
            continue
        display = (instance.display or "").strip()
        text = f"{instance.reference or ''} {display}".lower()
        if instance.reference not in ixazomib_references and not (
            "ixazomib" in text or "ninlaro" in text
        ):
            if instance.reference in other_references or display:
                other_named = True
            else:
                unidentified = True
            continue
        stated = True
        for causality in suspect.causality or []:
            assessment = concept_text(causality.assessment)
            if any(word in assessment for word in _NOT_RELATED_WORDS):
                stated = False
    if stated is None and other_named and not unidentified:
        return False
    return stated


def read_adverse_event(
    raw: JsonDict,
    ixazomib_references: AbstractSet[str],
    zone: tzinfo,
    problems: Problems,
    other_references: AbstractSet[str] = frozenset(),
) -> ToxicityFinding | None:
    """``ixazomib_references``: the patient's ixazomib orders and their Medications;
    ``other_references``: orders (and their Medications) known to be of other drugs."""
    toxicity = toxicity_of(raw.get("event"))
    if toxicity is None or raw.get("actuality") == "potential":
        return None
    event = validate(AdverseEvent, raw, zone, problems)
    if event is None:
        return None
    outcome = next((c for s, c in codings(event.outcome) if s == AE_OUTCOME), None)
    return ToxicityFinding(
        toxicity=toxicity,
        term=_term_of(raw.get("event"), toxicity),
        grade=_grade_of_concept(_grade_extension(raw)),
        severity=_status_code(event.severity) or concept_text(event.severity) or None,
        ongoing=outcome not in _RESOLVED_OUTCOMES,  # no outcome: assume still present
        at=as_instant(event.date or event.detected or event.recordedDate, zone),
        reference=reference_of(raw),
        attributed_to_ixazomib=_attribution(event, ixazomib_references, other_references),
        zone_assumed=reference_of(raw) in problems.zone_assumed,
    )


def read_graded_observation(
    raw: JsonDict, zone: tzinfo, problems: Problems
) -> ToxicityFinding | None:
    """An Observation whose code is the toxicity term and whose value is the CTCAE grade."""
    if loinc_codes(raw.get("code")):  # labs, pain scores: not a toxicity term
        return None
    if text_field(raw, "status") not in {"final", "amended", "corrected"}:
        return None
    toxicity = toxicity_of(raw.get("code"))
    if toxicity is None:
        return None
    observation = validate(Observation, raw, zone, problems)
    if observation is None:
        return None
    grade = _grade_of_concept(observation.valueCodeableConcept)
    if (
        grade is None
        and observation.valueInteger is not None
        and 0 <= observation.valueInteger <= 5
    ):
        grade = observation.valueInteger
    if grade is None:
        problems.uninterpretable.append(f"{reference_of(raw)}: toxicity grade not readable")
        return None
    return ToxicityFinding(
        toxicity=toxicity,
        term=_term_of(raw.get("code"), toxicity),
        grade=grade,
        severity=None,
        ongoing=True,  # the latest finding of its kind is the current state (see gather)
        at=as_instant(observation.effectiveDateTime or observation.issued, zone),
        reference=reference_of(raw),
        attributed_to_ixazomib=None,
        zone_assumed=reference_of(raw) in problems.zone_assumed,
    )


# A Condition records that neuropathic pain is present, not a CTCAE grade. The decisions read
# ongoing graded findings (a grade of None would ask for the grade instead: severity-without-
# grade), so a Condition that holds is read as Grade 1, "present", and its term says so.
CONDITION_PAIN_GRADE = 1


def neuropathic_pain_conditions(
    conditions: list[JsonDict], zone: tzinfo, problems: Problems
) -> list[ToxicityFinding]:
    """Active, not refuted Conditions coded as neuropathic pain or neuralgia: ongoing
    "with pain" signals for the neuropathy rows of Table 3.

    By code only (SNOMED 247398009, NCIt C143703): a problem list keeps conditions for years,
    and text such as "trigeminal neuralgia" names pains that are not the neuropathy's."""
    found: list[ToxicityFinding] = []
    for raw in conditions:
        code = raw.get("code")
        if not set(codings(code)) & NEUROPATHIC_PAIN_TERMS:
            continue
        condition = validate(Condition, raw, zone, problems)
        if condition is None or not _condition_holds(condition):
            continue
        name = _term_of(code, Toxicity.NEUROPATHIC_PAIN)
        onset = condition.onsetPeriod.start if condition.onsetPeriod else None
        found.append(
            ToxicityFinding(
                toxicity=Toxicity.NEUROPATHIC_PAIN,
                term=f"{name} (active Condition; no CTCAE grade recorded, shown as Grade 1)",
                grade=CONDITION_PAIN_GRADE,
                severity=None,
                ongoing=True,
                at=as_instant(condition.onsetDateTime or onset or condition.recordedDate, zone),
                reference=reference_of(raw),
                attributed_to_ixazomib=None,
                zone_assumed=reference_of(raw) in problems.zone_assumed,
            )
        )
    return found
