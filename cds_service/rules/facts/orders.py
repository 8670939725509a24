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
    ATC,
    DEXAMETHASONE_CODES,
    IXAZOMIB_ATC,
    IXAZOMIB_CODES,
    IXAZOMIB_INGREDIENT_CODES,
    IXAZOMIB_NAMES,
    IXAZOMIB_PRODUCT_STRENGTH,
    LENALIDOMIDE_ATC,
    LENALIDOMIDE_CODES,
    LENALIDOMIDE_NAMES,
    NDC_SYSTEMS,
    NINLARO_NDC_LABELER,
    NINLARO_NDC_PRODUCTS,
    RXNORM_SYSTEMS,
    STRONG_CYP3A_INDUCER_ATC,
    STRONG_CYP3A_INDUCER_NAMES,
    STRONG_CYP3A_INDUCERS,
)
from cds_service.rules.facts.reading import (
    Problems,
    as_instant,
    as_list,
    codings,
    concept_text,
    dict_field,
    reference_of,
    validate,
)
from cds_service.rules.inputs import JsonDict
from cds_service.rules.units import Kind, convert, counts_dose_forms, plain


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
    # How the drug was recognised when no code named it: the text it was read from (as sent),
    # and the strength stated there ("4 MG"), for the cards. None: a code named the drug.
    recognised_by_text: str | None = None
    strength_text: str | None = None


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


def _medication_concept(
    order: JsonDict, medications: dict[str, JsonDict], zone: tzinfo, problems: Problems
) -> tuple[Any, str, Decimal | None]:
    """The coded medication of an order, where it sits (CODE_IN_*), and the ixazomib strength
    per capsule a Medication states in its ingredient (None when it states none)."""
    if "medicationCodeableConcept" in order:
        return dict_field(order, "medicationCodeableConcept"), CODE_IN_CONCEPT, None
    reference = dict_field(order, "medicationReference").get("reference")
    if not isinstance(reference, str):
        return _display_of_reference(order), CODE_ELSEWHERE, None
    if reference.startswith("#"):
        medication, code_at = _contained(order, reference[1:]), CODE_IN_CONTAINED
    else:
        medication, code_at = medications.get(reference), CODE_ELSEWHERE
    if medication is None:
        return _display_of_reference(order), code_at, None
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
            and rxnorm_codes(ingredient.itemCodeableConcept) & IXAZOMIB_INGREDIENT_CODES
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
    if not (counts_dose_forms(per.code, per.unit) or "1" in (per.code, per.unit)):
        return None
    amount = ratio.numerator
    converted = convert(Kind.DOSE, Decimal(amount.value), amount.code, amount.system, amount.unit)
    return converted.value if converted is not None else None


def codes_of(concept: Any, systems: frozenset[str]) -> set[str]:
    """The codes of a concept under any of the URIs of one code system (its URL, its OID)."""
    return {code.strip() for system, code in codings(concept) if system in systems}


def rxnorm_codes(concept: Any) -> set[str]:
    return codes_of(concept, RXNORM_SYSTEMS)


def ndc_parts(code: str) -> tuple[str, str] | None:
    """(labeler, product) of an NDC in any of the forms EHRs send, in the 10-digit 5-3-2 shape
    of NINLARO's codes: 63020-080-02 (10-digit), 63020-0080-02 (11-digit 5-4-2), 63020-080 or
    63020-0080 (the product without its package), and the same digits without hyphens. None
    when it is not an NDC of labeler 63020 (the only labeler whose codes are read)."""
    code = code.strip()
    parts = code.split("-")
    if len(parts) in (2, 3) and all(p.isdigit() for p in parts):
        labeler, product = parts[0].rjust(5, "0"), parts[1].rjust(4, "0")
    elif code.isdigit() and len(code) in (8, 9, 10, 11):
        # Without hyphens only NINLARO's labeler is looked for: 5 digits, then the product in 3
        # (10-digit code, 8 without the package) or 4 digits (11-digit code, 9 without it).
        labeler = code[:5]
        product = code[5:8].rjust(4, "0") if len(code) in (8, 10) else code[5:9]
    else:
        return None
    if labeler != NINLARO_NDC_LABELER or not product.startswith("0"):
        return None
    return labeler, product[1:]


def ndc_strength(code: str) -> Decimal | None:
    """The capsule strength (mg) of a NINLARO NDC, or None when it is not one."""
    parts = ndc_parts(code)
    return NINLARO_NDC_PRODUCTS.get(parts[1]) if parts is not None else None


def ndc_with_strength(code: str, strength: Decimal) -> str | None:
    """The same NINLARO NDC (same form, same package) for the product of another strength."""
    parts = ndc_parts(code)
    new = next((p for p, mg in NINLARO_NDC_PRODUCTS.items() if mg == strength), None)
    if parts is None or new is None:
        return None
    hyphenated = code.strip().split("-")
    if len(hyphenated) > 1:
        hyphenated[1] = new.rjust(len(hyphenated[1]), "0")
        return "-".join(hyphenated)
    digits = code.strip()
    width = 3 if len(digits) in (8, 10) else 4
    return digits[:5] + new.rjust(width, "0") + digits[5 + width :]


def product_strengths(concept: Any) -> dict[str, Decimal]:
    """The ixazomib products a concept codes (RxNorm or NDC code -> capsule strength, mg)."""
    found = {
        c: IXAZOMIB_PRODUCT_STRENGTH[c]
        for c in rxnorm_codes(concept)
        if c in IXAZOMIB_PRODUCT_STRENGTH
    }
    for code in codes_of(concept, NDC_SYSTEMS):
        strength = ndc_strength(code)
        if strength is not None:
            found[code] = strength
    return found


@dataclass(frozen=True)
class Identified:
    """Which drug a medication concept names, and how."""

    drug: Drug
    by_text: bool  # no code named it; its text did
    strength_text: str | None  # the strength as the text states it ("4 MG"), text only
    strength_mg: Decimal | None  # from the text, when recognised by text


# One strength in the text: a number and "mg" ("NINLARO 4 MG PO CAPS", "ixazomib 2.3mg").
_MG_IN_TEXT = re.compile(r"(?<![\d.,])(\d+(?:\.\d+)?)\s*mg\b", re.IGNORECASE)


def identify(concept: Any) -> Identified:
    """The drug of a medication concept: by a code (RxNorm under its URL or OID, NDC, ATC), or
    else by its text and displays. Codes win over text: a text is read only when no code
    names one of the regimen's drugs."""
    rxnorm = rxnorm_codes(concept)
    atc = {code.upper() for code in codes_of(concept, frozenset({ATC}))}
    if rxnorm & IXAZOMIB_CODES or atc & IXAZOMIB_ATC or product_strengths(concept):
        return Identified(Drug.IXAZOMIB, False, None, None)
    if rxnorm & LENALIDOMIDE_CODES or atc & LENALIDOMIDE_ATC:
        return Identified(Drug.LENALIDOMIDE, False, None, None)
    if rxnorm & DEXAMETHASONE_CODES:
        return Identified(Drug.DEXAMETHASONE, False, None, None)
    text = concept_text(concept)
    if any(name in text for name in IXAZOMIB_NAMES):
        stated = {Decimal(m.group(1)): m.group(0) for m in _MG_IN_TEXT.finditer(_raw_text(concept))}
        # Two different strengths in one text say nothing sure about the capsule: none is used.
        strength, words = next(iter(stated.items())) if len(stated) == 1 else (None, None)
        return Identified(Drug.IXAZOMIB, True, words, strength)
    if any(name in text for name in LENALIDOMIDE_NAMES):
        return Identified(Drug.LENALIDOMIDE, True, None, None)
    return Identified(Drug.OTHER, False, None, None)


def _raw_text(concept: Any) -> str:
    """The concept's text and displays as sent (case kept, for quoting on the card)."""
    raw = concept if isinstance(concept, dict) else {}
    parts = [raw.get("text")] + [
        c.get("display") for c in as_list(raw.get("coding")) if isinstance(c, dict)
    ]
    return " ".join(p for p in parts if isinstance(p, str))


def _drug_of(concept: Any) -> Drug:
    return identify(concept).drug


_SAINT = re.compile(r"\bsaint\b")
_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")


def _name_key(text: str) -> str:
    """Text folded for name matching: lower case, "saint" as "st", and nothing but letters and
    digits. Free text spells a name many ways ("St. Johns Wort", "St John\u2019s wort" with a
    typographic apostrophe, "Saint John's-wort", "St Johnswort"): all fold to "stjohnswort"."""
    return _NOT_LETTER_OR_DIGIT.sub("", _SAINT.sub("st", text.lower()))


# Folded name -> the name the card shows.
_INDUCER_NAME_KEYS = {_name_key(name): name for name in STRONG_CYP3A_INDUCER_NAMES}


def _inducer_of(concept: Any) -> str | None:
    for code in rxnorm_codes(concept):
        if code in STRONG_CYP3A_INDUCERS:
            return STRONG_CYP3A_INDUCERS[code]
    for code in codes_of(concept, frozenset({ATC})):
        if code.upper() in STRONG_CYP3A_INDUCER_ATC:
            return STRONG_CYP3A_INDUCER_ATC[code.upper()]
    # Text fallback (documented): orders coded locally still name the drug. A substring of the
    # folded text, as before folding, so "fosphenytoin" still names phenytoin.
    key = _name_key(concept_text(concept))
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
    if counts_dose_forms(quantity.code, quantity.unit):
        # "1 {pill}" of a 4 mg product is 4 mg (the CDS Hooks Sandbox doses every order so).
        if strength is None:
            return None, sent, "the dose is in capsules but the capsule strength is not coded"
        dose = value * strength
        return dose, f"{sent} (= {plain(dose)} mg: {plain(strength)} mg each)", None
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
    name = concept_text(concept)
    identified = identify(concept)
    products = product_strengths(concept)
    product = next((c for c in sorted(products) if c in IXAZOMIB_PRODUCT_STRENGTH), None)
    # The capsule strength: from the product codes (when they agree), else the Medication's
    # ingredient strength, else the one strength the text states.
    code_strengths = sorted(set(products.values()))
    from_text = not code_strengths and ingredient_strength is None
    if code_strengths:
        strength = code_strengths[0] if len(code_strengths) == 1 else None
    else:
        strength = ingredient_strength if not from_text else identified.strength_mg
    dosage = order.dosageInstruction[0] if order.dosageInstruction else None
    dose_mg, dose_sent, dose_problem = _dose(dosage, strength)
    if len(code_strengths) > 1 and dose_mg is None:
        dose_problem = f"the product codes name different strengths ({', '.join(sorted(products))})"
    timing = dosage.timing if dosage else None
    bounds = timing.repeat.boundsPeriod if timing and timing.repeat else None
    starts = as_instant(bounds.start if bounds else None, zone) or as_instant(
        order.authoredOn, zone
    )
    return MedicationOrder(
        reference=reference_of(raw),
        raw=raw,
        drug=identified.drug,
        status=str(order.status),
        starts=starts,
        dose_mg=dose_mg,
        dose_sent=dose_sent,
        dose_problem=dose_problem,
        doses_per_week=_doses_per_week(timing),
        dose_count=_dose_count(timing),
        strength_mg=strength,
        product_code=product,
        # A Medication outside the order (or only its reference's display) that names the
        # product by text alone is replaced by the product code too: the update cannot change it.
        product_code_at=code_at
        if products or (identified.by_text and code_at == CODE_ELSEWHERE)
        else None,
        name=name,
        inducer=_inducer_of(concept),
        zone_assumed=reference_of(raw) in problems.zone_assumed,
        recognised_by_text=_raw_text(concept) if identified.by_text else None,
        strength_text=identified.strength_text if from_text else None,
    )


def _raw_concept(order: JsonDict, medications: dict[str, JsonDict], by_display: bool = True) -> Any:
    """The medication concept straight from the JSON, for selecting before validating; with
    ``by_display``, the display of a reference that cannot be resolved stands in for it."""
    if "medicationCodeableConcept" in order:
        return dict_field(order, "medicationCodeableConcept")
    reference = dict_field(order, "medicationReference").get("reference")
    medication: Any = None
    if isinstance(reference, str) and reference.startswith("#"):
        medication = _contained(order, reference[1:])
    elif isinstance(reference, str):
        medication = medications.get(reference)
    if isinstance(medication, dict):
        return _raw_medication_concept(medication)
    return _display_of_reference(order) if by_display else None


def _display_of_reference(order: JsonDict) -> JsonDict | None:
    """The medication a reference that cannot be resolved names in its display ("NINLARO 4 MG
    capsule"), as a concept of that text; None when it names nothing. The Medication itself,
    when it can be read, is what counts."""
    display = dict_field(order, "medicationReference").get("display")
    return {"text": display} if isinstance(display, str) and display.strip() else None


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


def medication_unknown(raw: JsonDict, medications: dict[str, JsonDict]) -> bool:
    """Which medication the order is for cannot be read: a medicationReference that could not
    be resolved, a malformed medicationCodeableConcept (e.g. a bare string), or neither."""
    if "medicationCodeableConcept" in raw:
        return not isinstance(raw["medicationCodeableConcept"], dict)
    # The reference's display does not count here: the Medication is what the data layer
    # resolves, and a display ("Medication", a local name) may not name the drug at all.
    return not isinstance(_raw_concept(raw, medications, by_display=False), dict)


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
    return _drug_of(concept) is not Drug.IXAZOMIB


def order_drug(raw: JsonDict, medications: dict[str, JsonDict]) -> tuple[Drug, str | None]:
    """(drug, strong CYP3A inducer) of an order, read cheaply from the raw JSON."""
    concept = _raw_concept(raw, medications)
    if not isinstance(concept, dict):
        return Drug.OTHER, None
    return _drug_of(concept), _inducer_of(concept)
