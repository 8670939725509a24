"""Medication orders: which drug, which dose (mg), how often, from when.

An order names its drug through ``medicationCodeableConcept`` or ``medicationReference``
(a contained ``#id`` Medication, or one the data layer resolved into
``PatientRecord.medications``). RxNorm product codes carry the ixazomib capsule strength.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from enum import Enum
from typing import Any

from fhir.resources.R4B.medication import Medication
from fhir.resources.R4B.medicationrequest import MedicationRequest

from cds_service.rules.codes import (
    DEXAMETHASONE_CODES,
    IXAZOMIB_CODES,
    IXAZOMIB_INGREDIENT_CODES,
    IXAZOMIB_PRODUCT_STRENGTH,
    LENALIDOMIDE_CODES,
    RXNORM,
    STRONG_CYP3A_INDUCER_NAMES,
    STRONG_CYP3A_INDUCERS,
)
from cds_service.rules.facts.reading import (
    Problems,
    as_instant,
    as_list,
    codes_in,
    codings,
    concept_text,
    dict_field,
    reference_of,
    validate,
)
from cds_service.rules.inputs import JsonDict
from cds_service.rules.units import Kind, convert


class Drug(Enum):
    IXAZOMIB = "ixazomib"
    LENALIDOMIDE = "lenalidomide"
    DEXAMETHASONE = "dexamethasone"
    OTHER = "other"


# Where the product code that carries the strength sits, so a suggestion can switch it.
CODE_IN_CONCEPT = "medicationCodeableConcept"
CODE_IN_CONTAINED = "contained"
CODE_ELSEWHERE = "referenced"  # a Medication outside the order: the order itself is updated


@dataclass(frozen=True)
class MedicationOrder:
    reference: str  # "MedicationRequest/<id>"
    raw: JsonDict  # the order as sent, for update suggestions
    drug: Drug
    status: str
    starts: datetime | None  # dosage bounds start, else authoredOn
    dose_mg: Decimal | None
    dose_sent: str  # the dose as written on the order, for the card
    dose_problem: str | None  # why the dose could not be read exactly
    doses_per_week: Decimal | None  # None: the order gives no frequency
    dose_count: int | None  # timing.repeat.count (or countMax): doses the order gives in all
    strength_mg: Decimal | None  # ixazomib mg per capsule: product code, else ingredient strength
    product_code: str | None  # the ixazomib product (RxNorm) the order names, if any
    product_code_at: str | None  # CODE_IN_* when coded by ixazomib product
    name: str  # lower-case text of the medication concept
    inducer: str | None  # the strong CYP3A inducer the order is for, if any
    zone_assumed: bool


_PER_WEEK_BY_PERIOD_UNIT = {
    "s": Decimal(604800),
    "min": Decimal(10080),
    "h": Decimal(168),
    "d": Decimal(7),
    "wk": Decimal(1),
    "mo": Decimal(7) / Decimal(30),
    "a": Decimal(7) / Decimal(365),
}
# HL7 v3 GTSAbbreviation timing codes -> doses per week.
_PER_WEEK_BY_TIMING_CODE = {
    "QD": Decimal(7),
    "AM": Decimal(7),
    "PM": Decimal(7),
    "BED": Decimal(7),
    "BID": Decimal(14),
    "TID": Decimal(21),
    "QID": Decimal(28),
    "QOD": Decimal("3.5"),
    "Q4H": Decimal(42),
    "Q6H": Decimal(28),
    "Q8H": Decimal(21),
    "WK": Decimal(1),
    "QW": Decimal(1),
    "MO": Decimal(7) / Decimal(30),
}
_CAPSULE_UNITS = {"{capsule}", "capsule", "capsules", "cap", "caps", "{cap}", "{caps}"}


def _medication_concept(
    order: JsonDict, medications: dict[str, JsonDict], zone: tzinfo, problems: Problems
) -> tuple[Any, str, Decimal | None]:
    """The coded medication of an order, where it sits (CODE_IN_*), and the ixazomib strength
    per capsule a Medication states in its ingredient (None when it states none)."""
    if "medicationCodeableConcept" in order:
        return dict_field(order, "medicationCodeableConcept"), CODE_IN_CONCEPT, None
    reference = dict_field(order, "medicationReference").get("reference")
    if not isinstance(reference, str):
        return None, CODE_ELSEWHERE, None
    if reference.startswith("#"):
        medication, code_at = _contained(order, reference[1:]), CODE_IN_CONTAINED
    else:
        medication, code_at = medications.get(reference), CODE_ELSEWHERE
    if medication is None:
        return None, code_at, None
    code, strength = _medication_code(medication, zone, problems)
    return code, code_at, strength


def _contained(order: JsonDict, local_id: str) -> JsonDict | None:
    resources = order.get("contained")
    for resource in resources if isinstance(resources, list) else []:
        if isinstance(resource, dict) and resource.get("id") == local_id:
            return resource
    return None


def _medication_code(
    medication: JsonDict, zone: tzinfo, problems: Problems
) -> tuple[Any, Decimal | None]:
    """(code with its ingredients' codings, ixazomib mg per capsule) of a Medication.

    The codes are read from the JSON as sent (``_raw_medication_concept``), so a Medication
    that is not valid FHIR (its problem is recorded and shown) still names its drug: an
    ixazomib order is checked, never taken for another drug's in silence. The strength is
    read only from a valid one."""
    parsed = validate(Medication, medication, zone, problems)
    code = _raw_medication_concept(medication)
    if parsed is None:
        return code, None
    strength = next(
        (
            mg_per_capsule
            for ingredient in parsed.ingredient or []
            if ingredient.itemCodeableConcept
            and codes_in(ingredient.itemCodeableConcept.model_dump(mode="python"), RXNORM)
            & IXAZOMIB_INGREDIENT_CODES
            and (mg_per_capsule := _per_capsule_mg(ingredient.strength)) is not None
        ),
        None,
    )
    return code or {"coding": []}, strength


def _per_capsule_mg(ratio: Any) -> Decimal | None:
    """mg per one capsule from an ingredient strength Ratio (4 mg / 1 capsule), exactly."""
    if ratio is None or ratio.numerator is None or ratio.numerator.value is None:
        return None
    per = ratio.denominator
    if per is None or per.value is None or Decimal(per.value) != 1:
        return None
    if {(per.code or "").lower(), (per.unit or "").lower()}.isdisjoint(_CAPSULE_UNITS | {"1"}):
        return None
    amount = ratio.numerator
    converted = convert(Kind.DOSE, Decimal(amount.value), amount.code, amount.system, amount.unit)
    return converted.value if converted is not None else None


def _drug_of(rxnorm: set[str]) -> Drug:
    if rxnorm & IXAZOMIB_CODES:
        return Drug.IXAZOMIB
    if rxnorm & LENALIDOMIDE_CODES:
        return Drug.LENALIDOMIDE
    if rxnorm & DEXAMETHASONE_CODES:
        return Drug.DEXAMETHASONE
    return Drug.OTHER


_SAINT = re.compile(r"\bsaint\b")
_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")


def _name_key(text: str) -> str:
    """Text folded for name matching: lower case, "saint" as "st", and nothing but letters and
    digits. Free text spells a name many ways ("St. Johns Wort", "St John\u2019s wort" with a
    typographic apostrophe, "Saint John's-wort", "St Johnswort"): all fold to "stjohnswort"."""
    return _NOT_LETTER_OR_DIGIT.sub("", _SAINT.sub("st", text.lower()))


# Folded name -> the name the card shows.
_INDUCER_NAME_KEYS = {_name_key(name): name for name in STRONG_CYP3A_INDUCER_NAMES}


def _inducer_of(rxnorm: set[str], name: str) -> str | None:
    for code in rxnorm:
        if code in STRONG_CYP3A_INDUCERS:
            return STRONG_CYP3A_INDUCERS[code]
    # Text fallback (documented): orders coded locally still name the drug. A substring of the
    # folded text, as before folding, so "fosphenytoin" still names phenytoin.
    key = _name_key(name)
    return next((shown for folded, shown in _INDUCER_NAME_KEYS.items() if folded in key), None)


def _doses_per_week(timing: Any) -> Decimal | None:
    if timing is None:
        return None
    repeat = timing.repeat
    if repeat is not None and repeat.dayOfWeek:
        per_day = Decimal(repeat.frequency or 1) if repeat.periodUnit == "d" else Decimal(1)
        return Decimal(len(repeat.dayOfWeek)) * per_day
    if repeat is not None and repeat.period and repeat.periodUnit in _PER_WEEK_BY_PERIOD_UNIT:
        frequency = Decimal(repeat.frequencyMax or repeat.frequency or 1)
        return frequency * _PER_WEEK_BY_PERIOD_UNIT[repeat.periodUnit] / Decimal(repeat.period)
    for coding in timing.code.coding or [] if timing.code else []:
        if coding.code and coding.code.upper() in _PER_WEEK_BY_TIMING_CODE:
            return _PER_WEEK_BY_TIMING_CODE[coding.code.upper()]
    return None


def _dose_count(timing: Any) -> int | None:
    repeat = timing.repeat if timing is not None else None
    if repeat is None:
        return None
    count = repeat.countMax or repeat.count
    return int(count) if count is not None else None


def _dose(dosage: Any, strength: Decimal | None) -> tuple[Decimal | None, str, str | None]:
    """(dose in mg, dose as written, problem) of the first dose of a dosage instruction."""
    quantity = None
    for dose_and_rate in (dosage.doseAndRate or []) if dosage else []:
        if dose_and_rate.doseQuantity is not None:
            quantity = dose_and_rate.doseQuantity
            break
        if dose_and_rate.doseRange is not None:
            return None, "a dose range", "the dose is a range, not one dose"
    if quantity is None or quantity.value is None:
        return None, "no dose", "the order states no dose"
    value = Decimal(quantity.value)
    sent = f"{value} {quantity.unit or quantity.code or ''}".strip()
    if quantity.comparator:
        return None, sent, f"the dose has a comparator ({quantity.comparator})"
    unit_words = {(quantity.code or "").lower(), (quantity.unit or "").lower()}
    if unit_words & _CAPSULE_UNITS:
        if strength is None:
            return None, sent, "the dose is in capsules but the capsule strength is not coded"
        return value * strength, sent, None
    converted = convert(Kind.DOSE, value, quantity.code, quantity.system, quantity.unit)
    if converted is None:
        return None, sent, f"the dose unit '{quantity.unit or quantity.code}' is not a mass unit"
    return converted.value, sent, None


def read_order(
    raw: JsonDict, medications: dict[str, JsonDict], zone: tzinfo, problems: Problems
) -> MedicationOrder | None:
    order = validate(MedicationRequest, raw, zone, problems)
    if order is None:
        return None
    concept, code_at, ingredient_strength = _medication_concept(raw, medications, zone, problems)
    rxnorm = codes_in(concept, RXNORM)
    name = concept_text(concept)
    drug = _drug_of(rxnorm)
    product = next((c for c in rxnorm if c in IXAZOMIB_PRODUCT_STRENGTH), None)
    strength = IXAZOMIB_PRODUCT_STRENGTH[product] if product else ingredient_strength
    dosage = order.dosageInstruction[0] if order.dosageInstruction else None
    dose_mg, dose_sent, dose_problem = _dose(dosage, strength)
    timing = dosage.timing if dosage else None
    bounds = timing.repeat.boundsPeriod if timing and timing.repeat else None
    starts = as_instant(bounds.start if bounds else None, zone) or as_instant(
        order.authoredOn, zone
    )
    return MedicationOrder(
        reference=reference_of(raw),
        raw=raw,
        drug=drug,
        status=str(order.status),
        starts=starts,
        dose_mg=dose_mg,
        dose_sent=dose_sent,
        dose_problem=dose_problem,
        doses_per_week=_doses_per_week(timing),
        dose_count=_dose_count(timing),
        strength_mg=strength,
        product_code=product,
        product_code_at=code_at if product else None,
        name=name,
        inducer=_inducer_of(rxnorm, name),
        zone_assumed=reference_of(raw) in problems.zone_assumed,
    )


def _raw_concept(order: JsonDict, medications: dict[str, JsonDict]) -> Any:
    """The medication concept straight from the JSON, for selecting before validating."""
    if "medicationCodeableConcept" in order:
        return dict_field(order, "medicationCodeableConcept")
    reference = dict_field(order, "medicationReference").get("reference")
    if not isinstance(reference, str):
        return None
    if reference.startswith("#"):
        medication = _contained(order, reference[1:])
    else:
        medication = medications.get(reference)
    return _raw_medication_concept(medication) if isinstance(medication, dict) else None


def _raw_medication_concept(medication: JsonDict) -> JsonDict | None:
    """A Medication's code with its ingredients' codings, from the JSON as sent (any shape:
    this also names the drug of a Medication that is not valid FHIR). The ingredients name
    the drug too: a compounded or uncoded product may code only them."""
    code = dict_field(medication, "code")
    codings = [c for c in as_list(code.get("coding")) if isinstance(c, dict)]
    for ingredient in as_list(medication.get("ingredient")):
        item = ingredient.get("itemCodeableConcept") if isinstance(ingredient, dict) else None
        if isinstance(item, dict):
            codings += [c for c in as_list(item.get("coding")) if isinstance(c, dict)]
    if "code" not in medication and not codings:
        return None
    return {**code, "coding": codings}


def referenced_medication(raw: JsonDict, medications: dict[str, JsonDict]) -> Any:
    """What ``medications`` holds for the order's medicationReference (not a contained one):
    the one thing outside the order that reading it depends on. None when nothing."""
    if "medicationCodeableConcept" in raw:
        return None
    reference = dict_field(raw, "medicationReference").get("reference")
    if not isinstance(reference, str) or reference.startswith("#"):
        return None
    return medications.get(reference)


def medication_unknown(raw: JsonDict, medications: dict[str, JsonDict]) -> bool:
    """Which medication the order is for cannot be read: a medicationReference that could not
    be resolved, a malformed medicationCodeableConcept (e.g. a bare string), or neither."""
    if "medicationCodeableConcept" in raw:
        return not isinstance(raw["medicationCodeableConcept"], dict)
    return not isinstance(_raw_concept(raw, medications), dict)


def names_other_drug(raw: JsonDict, medications: dict[str, JsonDict]) -> bool:
    """Whether an order is known to be for a drug other than ixazomib: its medication can be
    read, names something (a code or a text), and is ixazomib by neither RxNorm code nor name.

    Stricter than ``order_drug(...)[0] is not Drug.IXAZOMIB``, which also says OTHER for an
    order whose medication cannot be read or that names ixazomib only by a local code and text:
    an adverse event whose only suspect is such an order must not be read as "not ixazomib"."""
    concept = _raw_concept(raw, medications)
    if not isinstance(concept, dict):
        return False
    text = concept_text(concept)
    if not text and not any(code for _, code in codings(concept)):
        return False  # names nothing
    if _drug_of(codes_in(concept, RXNORM)) is Drug.IXAZOMIB:
        return False
    return "ixazomib" not in text and "ninlaro" not in text


def order_drug(raw: JsonDict, medications: dict[str, JsonDict]) -> tuple[Drug, str | None]:
    """(drug, strong CYP3A inducer) of an order, read cheaply from the raw JSON."""
    concept = _raw_concept(raw, medications)
    if not isinstance(concept, dict):
        return Drug.OTHER, None
    rxnorm = codes_in(concept, RXNORM)
    return _drug_of(rxnorm), _inducer_of(rxnorm, concept_text(concept))
