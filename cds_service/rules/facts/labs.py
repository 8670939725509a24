"""Laboratory values and vital signs, by LOINC code, converted exactly to one unit per kind.

Only results with status final, amended or corrected count. Preliminary results are not used
for decisions (a preliminary count can still change; the final one will fire the lab hook
again); registered, cancelled and entered-in-error results are ignored. A NEW result at the
lab-result hook that is not used for its status is named (``unused_new_result``), so that a
preliminary ANC of 200/mm3 never passes in silence, unless a counted new result of the same lab,
taken as late or later, is judged in its place (``overtaken``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from enum import Enum

from fhir.resources.R4B.observation import Observation

from cds_service.rules.codes import (
    ANC_CODES,
    BILIRUBIN_CODES,
    CRCL_CODES,
    CREATININE_CODES,
    EGFR_CODES,
    PAIN_SCORE_CODES,
    PLATELET_CODES,
    PREGNANCY_STATUS_CODES,
    WEIGHT_CODES,
)
from cds_service.rules.data_needs import LOINC
from cds_service.rules.facts.reading import (
    Problems,
    as_instant,
    codes_in,
    reference_of,
    text_field,
    validate,
)
from cds_service.rules.inputs import JsonDict
from cds_service.rules.units import Kind, convert

COUNTING_STATUSES = frozenset({"final", "amended", "corrected"})
# A result in one of these never was (not done, or recorded in error): nothing to name.
NO_RESULT_STATUSES = frozenset({"cancelled", "entered-in-error"})


class Lab(Enum):
    ANC = "ANC"
    PLATELETS = "platelets"
    BILIRUBIN = "total bilirubin"
    CREATININE = "creatinine"
    CRCL = "creatinine clearance"
    EGFR = "eGFR"
    WEIGHT = "body weight"
    PAIN_SCORE = "pain score"


_LAB_BY_CODE = {
    **dict.fromkeys(ANC_CODES, Lab.ANC),
    **dict.fromkeys(PLATELET_CODES, Lab.PLATELETS),
    **dict.fromkeys(BILIRUBIN_CODES, Lab.BILIRUBIN),
    **dict.fromkeys(CREATININE_CODES, Lab.CREATININE),
    **dict.fromkeys(CRCL_CODES, Lab.CRCL),
    **dict.fromkeys(EGFR_CODES, Lab.EGFR),
    **dict.fromkeys(WEIGHT_CODES, Lab.WEIGHT),
    **dict.fromkeys(PAIN_SCORE_CODES, Lab.PAIN_SCORE),
}
_KIND = {
    Lab.ANC: Kind.CELL_COUNT,
    Lab.PLATELETS: Kind.CELL_COUNT,
    Lab.BILIRUBIN: Kind.BILIRUBIN,
    Lab.CREATININE: Kind.CREATININE,
    Lab.CRCL: Kind.CLEARANCE,
    Lab.EGFR: Kind.EGFR,
    Lab.WEIGHT: Kind.WEIGHT,
}


@dataclass(frozen=True)
class LabValue:
    lab: Lab
    value: Decimal  # in the target unit of its kind (cells/uL, umol/L, mL/min, kg; score)
    sent: str  # value and unit as sent
    at: datetime
    reference: str
    zone_assumed: bool
    upper_limit: Decimal | None = None  # bilirubin only: referenceRange.high, same unit
    upper_limit_sent: str | None = None


def lab_of(raw: JsonDict) -> Lab | None:
    """Which lab a raw Observation is, by LOINC code (selection before validation)."""
    found = {
        _LAB_BY_CODE[code] for code in codes_in(raw.get("code"), LOINC) if code in _LAB_BY_CODE
    }
    return found.pop() if len(found) == 1 else None


def read_lab(raw: JsonDict, zone: tzinfo, problems: Problems) -> LabValue | None:
    lab = lab_of(raw)
    if lab is None or text_field(raw, "status") not in COUNTING_STATUSES:
        return None
    observation = validate(Observation, raw, zone, problems)
    if observation is None:
        return None
    reference = reference_of(raw)
    at = as_instant(
        observation.effectiveDateTime
        or observation.effectiveInstant
        or (observation.effectivePeriod.start if observation.effectivePeriod else None)
        or observation.issued,
        zone,
    )
    if at is None:
        problems.uninterpretable.append(f"{lab.value} {reference}: no date")
        return None
    zone_assumed = reference in problems.zone_assumed
    if lab is Lab.PAIN_SCORE:
        score: Decimal | None = (
            Decimal(observation.valueInteger) if observation.valueInteger is not None else None
        )
        if score is None and observation.valueQuantity is not None:
            score = observation.valueQuantity.value
        if score is None:
            return None
        return LabValue(lab, Decimal(score), str(score), at, reference, zone_assumed)
    quantity = observation.valueQuantity
    if quantity is None or quantity.value is None:
        if observation.dataAbsentReason is None:
            problems.uninterpretable.append(f"{lab.value} {reference}: no numeric value")
        return None
    sent = f"{quantity.comparator or ''}{quantity.value} {quantity.unit or quantity.code or ''}"
    if quantity.comparator:
        problems.uninterpretable.append(
            f"{lab.value} {reference} ({sent.strip()}, {at:%Y-%m-%d}): a bound, not a value"
        )
        return None
    value = convert(
        _KIND[lab], Decimal(quantity.value), quantity.code, quantity.system, quantity.unit
    )
    if value is None:
        problems.uninterpretable.append(
            f"{lab.value} {reference} ({sent.strip()}, {at:%Y-%m-%d}): unit "
            f"'{quantity.unit or quantity.code or 'none'}' cannot be converted exactly"
        )
        return None
    upper_limit = upper_limit_sent = None
    if lab is Lab.BILIRUBIN:
        upper_limit, upper_limit_sent = _upper_limit(observation, lab, reference, problems)
    return LabValue(
        lab, value.value, value.sent, at, reference, zone_assumed, upper_limit, upper_limit_sent
    )


def _upper_limit(
    observation: Observation, lab: Lab, reference: str, problems: Problems
) -> tuple[Decimal | None, str | None]:
    """referenceRange.high in the lab's target unit. Read for bilirubin only, the one lab whose
    limit a rule uses (the ULN): an unreadable range of any other lab would put a review card
    beside the real advice for a number nothing looks at."""
    for reference_range in observation.referenceRange or []:
        high = reference_range.high
        if high is None or high.value is None:
            continue
        converted = convert(_KIND[lab], Decimal(high.value), high.code, high.system, high.unit)
        if converted is None:
            problems.uninterpretable.append(
                f"{lab.value} {reference}: reference range unit "
                f"'{high.unit or high.code or 'none'}' cannot be converted exactly"
            )
            return None, None
        return converted.value, converted.sent
    return None, None


def unused_new_result(raw: JsonDict) -> str | None:
    """Why a new result of a kind the rules read is not used for its status (preliminary,
    registered, unknown or none), in words for the review card; None when it is used, never
    was a result (cancelled, entered-in-error) or is of a kind no rule reads.

    Read from the raw JSON, unvalidated: the text only names what was sent."""
    lab = lab_of(raw)
    if lab is not None:
        kind = lab.value
    elif codes_in(raw.get("code"), LOINC) & PREGNANCY_STATUS_CODES:
        kind = "pregnancy status"
    else:
        return None
    status = text_field(raw, "status")
    if status in COUNTING_STATUSES or status in NO_RESULT_STATUSES:
        return None
    stated = f"status {status}" if status else "no status"
    return (
        f"{kind} {reference_of(raw)} ({_value_sent(raw)}, {_when_sent(raw)}): {stated}; not used "
        "(only final, amended or corrected results count; the final result will be checked "
        "when it is filed)"
    )


def _scalar(value: object) -> str:
    return str(value) if isinstance(value, (str, int, float, Decimal)) else ""


def _value_sent(raw: JsonDict) -> str:
    quantity = raw.get("valueQuantity")
    if isinstance(quantity, dict):
        unit = _scalar(quantity.get("unit")) or _scalar(quantity.get("code"))
        value = f"{_scalar(quantity.get('comparator'))}{_scalar(quantity.get('value'))} {unit}"
        return value.strip() or "no value"
    concept = raw.get("valueCodeableConcept")
    if isinstance(concept, dict):
        coding = concept.get("coding")
        codings = [c for c in coding if isinstance(c, dict)] if isinstance(coding, list) else []
        names = [concept.get("text"), *(c.get("display") or c.get("code") for c in codings)]
        return next((_scalar(n) for n in names if _scalar(n)), "no value")
    for key in ("valueInteger", "valueString"):
        if _scalar(raw.get(key)):
            return _scalar(raw.get(key))
    return "no value"


def overtaken(raw: JsonDict, counted: Iterable[LabValue], zone: tzinfo) -> bool:
    """Whether a new result not used for its status is overtaken by a ``counted`` result of the
    same lab taken at the same time or later (a preliminary count filed in one Bundle with its
    final version, or with a later final draw). The rules judged that one, so naming the
    preliminary would ask for a review of data that was read. A preliminary taken after every
    counted result, or whose time cannot be read, is not overtaken: it is the latest word.

    Read from the raw JSON, unvalidated, with the times in the order ``read_lab`` takes them."""
    lab = lab_of(raw)
    taken = _instant_sent(raw, zone)
    if lab is None or taken is None:
        return False
    return any(value.lab is lab and value.at >= taken for value in counted)


def unused_latest_count(
    raw: JsonDict, counted: Iterable[LabValue], zone: tzinfo, since: datetime
) -> str | None:
    """Why a recorded ANC or platelet count that is not used for its status (preliminary) is
    named at an order hook: taken after ``since`` and after every counted result of its lab,
    it is the latest word on the count. None for anything else."""
    if text_field(raw, "status") in COUNTING_STATUSES:  # most results: one look, then done
        return None
    if lab_of(raw) not in (Lab.ANC, Lab.PLATELETS):
        return None
    why = unused_new_result(raw)
    taken = _instant_sent(raw, zone)
    if why is None or taken is None or taken < since or overtaken(raw, counted, zone):
        return None
    return why


def _instant_sent(raw: JsonDict, zone: tzinfo) -> datetime | None:
    """``_time_sent`` as an aware datetime (a naive one in ``zone``), or None if unreadable."""
    text = _time_sent(raw)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return as_instant(text, zone)  # a partial date ("2026", "2026-12"), else None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _time_sent(raw: JsonDict) -> str | None:
    period = raw.get("effectivePeriod")
    for value in (
        raw.get("effectiveDateTime"),
        raw.get("effectiveInstant"),
        period.get("start") if isinstance(period, dict) else None,
        raw.get("issued"),
    ):
        if isinstance(value, str) and value:
            return value
    return None


def _when_sent(raw: JsonDict) -> str:
    return _time_sent(raw) or "no date"
