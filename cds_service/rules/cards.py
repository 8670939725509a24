"""Stage 3: CDS Hooks 2.0 cards from decisions, exactly as docs/service-contract says.

Every card carries the recommendation extension, a uuid, a source citing the label section,
override reasons and a Markdown detail with the values, dates and calculations used.
Suggestions: reduce / start-reduced / correct-dose update the entire draft (same id) with the
new dose and, where the order was coded by product, the product of that strength (no other
amount survives in its texts, see ``with_dose``; a corrected frequency keeps the order's
dates); hold / discontinue delete the draft; at the lab-result hook a hold puts the active
orders on hold.
"""

from __future__ import annotations

import copy
import re
import uuid
from decimal import Decimal
from typing import Any

from cds_service.rules import administration
from cds_service.rules.administration import with_label_instructions
from cds_service.rules.catalog import DATA_CHECK, RULES_BY_ID
from cds_service.rules.codes import (
    IXAZOMIB_BRANDED_PRODUCTS,
    IXAZOMIB_CODES,
    IXAZOMIB_GENERIC_PRODUCTS,
    LABEL_URL,
    NDC_SYSTEMS,
    RXNORM,
    RXNORM_SYSTEMS,
    UCUM,
)
from cds_service.rules.decisions import Decision, DrugAdvice, Suggest
from cds_service.rules.decisions.model import Action, Indicator
from cds_service.rules.decisions.patient_view import CourseView
from cds_service.rules.facts import MedicationOrder
from cds_service.rules.facts.orders import (
    CODE_ELSEWHERE,
    CODE_IN_CONCEPT,
    CODE_IN_CONTAINED,
    ndc_strength,
    ndc_with_strength,
)
from cds_service.rules.facts.reading import as_list
from cds_service.rules.inputs import JsonDict
from cds_service.rules.units import plain

RECOMMENDATION = "org.ixazomib-cds.recommendation"
OVERRIDE_SYSTEM = "urn:ixazomib-cds:override-reason"
OVERRIDE_REASONS = (
    ("clinical-judgement", "Patient-specific clinical judgement"),
    ("data-out-of-date", "The data shown are out of date or wrong"),
    ("already-aware", "Prescriber already aware; managed elsewhere"),
)
_INDICATOR_ORDER = {indicator: rank for rank, indicator in enumerate(Indicator)}
_PRODUCT_NAMES = {
    "1723757": "ixazomib 2.3 MG Oral Capsule",
    "1723765": "ixazomib 3 MG Oral Capsule",
    "1723770": "ixazomib 4 MG Oral Capsule",
    "1723763": "ixazomib 2.3 MG Oral Capsule [Ninlaro]",
    "1723767": "ixazomib 3 MG Oral Capsule [Ninlaro]",
    "1723772": "ixazomib 4 MG Oral Capsule [Ninlaro]",
}
# Once weekly, three doses: days 1, 8 and 15 of the 28-day cycle.
LABELLED_TIMING = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk", "count": 3}}
LABELLED_SCHEDULE = "once weekly on days 1, 8 and 15 of a 28-day cycle"
# What says how often in a Timing; fixing the frequency replaces these and keeps the rest (the
# bounds: when the course starts and ends; the duration of one intake). ``offset`` goes with
# ``when``: without it, an offset means nothing (FHIR invariant tim-9).
_FREQUENCY_FIELDS = frozenset(
    {
        "frequency",
        "frequencyMax",
        "period",
        "periodMax",
        "periodUnit",
        "dayOfWeek",
        "timeOfDay",
        "when",
        "offset",
        "count",
        "countMax",
    }
)
# An amount of drug in free text: "4 mg", "2.3mg", "4-milligram", "one capsule", "2 caps".
_MASS_IN_TEXT = re.compile(
    r"(?<![\w.,])(\d+(?:[.,]\d+)?)\s*-?\s*"
    r"(mg|milligrams?|mcg|micrograms?|\u00b5g|\u03bcg|ug|g|grams?)\b",
    re.IGNORECASE,
)
_CAPSULES_IN_TEXT = re.compile(
    r"(?<![\w.,])(\d+(?:[.,]\d+)?|one|two|three|four|five|six|seven|eight|nine|ten)\s*-?\s*"
    r"(capsules?|caps?)\b",
    re.IGNORECASE,
)
_MG_PER_UNIT = {"g": Decimal(1000), "gram": Decimal(1000), "grams": Decimal(1000)}
_MG_PER_UNIT |= dict.fromkeys(
    ("mcg", "microgram", "micrograms", "\u00b5g", "\u03bcg", "ug"), Decimal("0.001")
)


def render(decisions: list[Decision]) -> list[JsonDict]:
    unique: dict[tuple[object, ...], Decision] = {}
    for decision in decisions:
        key = (decision.rule, decision.ixazomib, decision.lenalidomide, decision.summary)
        unique.setdefault(key, decision)
    ordered = sorted(unique.values(), key=lambda d: _INDICATOR_ORDER[d.indicator])
    return [card(decision) for decision in ordered]


def number(dose: Decimal) -> int | Decimal:
    """2.3 stays an exact Decimal; whole doses are plain integers (4, not 4.0)."""
    return int(dose) if dose == dose.to_integral_value() else dose.normalize()


def _advice(advice: DrugAdvice) -> JsonDict:
    found: JsonDict = {"action": advice.action.value}
    if advice.dose_mg is not None:
        found["doseMg"] = number(advice.dose_mg)
    return found


def _advice_text(drug: str, advice: DrugAdvice) -> str:
    dose = f" {plain(advice.dose_mg)} mg" if advice.dose_mg is not None else ""
    return f"{drug}: **{advice.action.value}**{dose}"


def card(decision: Decision) -> JsonDict:
    rule = RULES_BY_ID[decision.rule]
    recommendation: JsonDict = {"rule": rule.id, "ixazomib": _advice(decision.ixazomib)}
    advice = [_advice_text("ixazomib", decision.ixazomib)]
    if decision.lenalidomide is not None:
        recommendation["lenalidomide"] = _advice(decision.lenalidomide)
        advice.append(_advice_text("lenalidomide", decision.lenalidomide))
    detail = [f"**Advice:** {'; '.join(advice)}."]
    if decision.evidence:
        detail += ["", "**Based on:**", *(f"- {line}" for line in decision.evidence)]
    if rule.section == DATA_CHECK:
        detail += ["", f"**Data check (not a label rule):** {rule.label_text}"]
    else:
        detail += ["", f"**Label, section {rule.section}:** {rule.label_text}"]
    detail += [f"\n{note}" for note in decision.notes if note]
    result: JsonDict = {
        "uuid": str(uuid.uuid4()),
        "summary": decision.summary[:139],
        "indicator": decision.indicator.value,
        "detail": "\n".join(detail),
        "source": {
            "label": _source_label(rule.section),
            "url": LABEL_URL,
        },
        "overrideReasons": [
            {"system": OVERRIDE_SYSTEM, "code": code, "display": display}
            for code, display in OVERRIDE_REASONS
        ],
        "links": [
            {
                "label": "NINLARO prescribing information (DailyMed)",
                "url": LABEL_URL,
                "type": "absolute",
            },
        ],
        "extension": {RECOMMENDATION: recommendation},
    }
    suggestion = _suggestion(decision)
    if suggestion is not None:
        result["suggestions"] = [suggestion]
        result["selectionBehavior"] = "at-most-one"
    return result


# What the course card (patient-view) rests on when it advises nothing: the dosing sections.
COURSE_SECTIONS = "2.1-2.5 (Dosage and Administration)"


def course_card(view: CourseView) -> JsonDict:
    """The patient-view course card: the course in sections, then how to take ixazomib.

    It carries the recommendation extension, override reasons and a suggestion only when it
    advises (something due now, or data to review): the contract asks them of every card with
    advice about the regimen, and an overview that advises nothing is not one."""
    advice = view.advice
    detail: list[str] = []
    if advice is not None:
        advices = [_advice_text("ixazomib", advice.ixazomib)]
        if advice.lenalidomide is not None:
            advices.append(_advice_text("lenalidomide", advice.lenalidomide))
        detail += [f"**Advice:** {'; '.join(advices)} ({advice.summary}).", ""]
    for section in view.sections:
        detail += [f"**{section.heading}:**", *(f"- {line}" for line in section.lines), ""]
    section_cited = COURSE_SECTIONS
    if advice is not None:
        rule = RULES_BY_ID[advice.rule]  # its evidence is in the view's sections
        kind = (
            "Data check (not a label rule)"
            if rule.section == DATA_CHECK
            else (f"Label, section {rule.section}")
        )
        detail += [f"**{kind}:** {rule.label_text}", ""]
        detail += [f"{note}\n" for note in advice.notes if note]
        section_cited = rule.section
    detail.append(administration.markdown())
    result: JsonDict = {
        "uuid": str(uuid.uuid4()),
        "summary": view.summary[:139],
        "indicator": view.indicator.value,
        "detail": "\n".join(detail),
        "source": {"label": _source_label(section_cited), "url": LABEL_URL},
        "links": [
            {
                "label": "NINLARO prescribing information (DailyMed)",
                "url": LABEL_URL,
                "type": "absolute",
            },
        ],
    }
    if advice is None:
        return result
    recommendation: JsonDict = {"rule": advice.rule, "ixazomib": _advice(advice.ixazomib)}
    if advice.lenalidomide is not None:
        recommendation["lenalidomide"] = _advice(advice.lenalidomide)
    result["overrideReasons"] = [
        {"system": OVERRIDE_SYSTEM, "code": code, "display": display}
        for code, display in OVERRIDE_REASONS
    ]
    result["extension"] = {RECOMMENDATION: recommendation}
    suggestion = _suggestion(advice)
    if suggestion is not None:
        result["suggestions"] = [suggestion]
        result["selectionBehavior"] = "at-most-one"
    return result


def _source_label(section: str) -> str:
    if section == DATA_CHECK:  # a check of the data the label's rules need: no section to cite
        return "NINLARO (ixazomib) US prescribing information: a check of the data its rules need"
    return f"NINLARO (ixazomib) US prescribing information, section {section}"


def _suggestion(decision: Decision) -> JsonDict | None:
    # A resource without an id cannot be named by a suggestion.
    targets = [t for t in decision.targets if isinstance(t.raw.get("id"), str) and t.raw["id"]]
    if not targets:
        return None
    if decision.suggest is Suggest.UPDATE_DOSE and decision.ixazomib.dose_mg is not None:
        order = targets[0]
        dose = decision.ixazomib.dose_mg
        return _suggest(
            f"Change the order to ixazomib {plain(dose)} mg",
            [
                {
                    "type": "update",
                    "description": f"Set the dose of {order.reference} to {plain(dose)} mg"
                    + (", once weekly on days 1, 8 and 15" if decision.fix_frequency else ""),
                    "resource": with_dose(order, dose, decision.fix_frequency),
                }
            ],
        )
    if decision.suggest is Suggest.DELETE_DRAFT:
        stops = Action.DISCONTINUE in {a.action for a in _advices(decision)}
        verb = "Discontinue" if stops else "Hold"
        drugs = sorted({o.drug.value for o in targets})
        orders = " and ".join(drugs) + (" orders" if len(targets) > 1 else " order")
        return _suggest(
            f"{verb}: do not sign the {orders}",
            [
                {
                    "type": "delete",
                    "description": f"Remove the draft {o.reference}",
                    "resourceId": o.reference,
                }
                for o in targets
            ],
        )
    if decision.suggest is Suggest.HOLD_ACTIVE:
        return _suggest(
            "Put the active ixazomib and lenalidomide orders on hold",
            [
                {
                    "type": "update",
                    "description": f"Put {o.reference} on hold",
                    "resource": {**clean_copy(o.raw), "status": "on-hold"},
                }
                for o in targets
            ],
        )
    return None


def _advices(decision: Decision) -> list[DrugAdvice]:
    return [a for a in (decision.ixazomib, decision.lenalidomide) if a is not None]


def _suggest(label: str, actions: list[JsonDict]) -> JsonDict:
    return {
        "label": label[:139],
        "uuid": str(uuid.uuid4()),
        "isRecommended": True,
        "actions": actions,
    }


def with_dose(order: MedicationOrder, dose: Decimal, fix_frequency: bool) -> JsonDict:
    """The entire draft, same id, with the new dose (and product of that strength).

    No dose but the new one may survive anywhere in the update, in structure or in text: the
    EHR, the pharmacist and the patient may read any of them, and a stale "4 mg" beside a 3 mg
    dose is how a reduction gets lost. What can be rewritten exactly is rewritten (the dose, the
    product code, the dosage text); what cannot (free text, other code systems' codes, an
    ingredient strength) is dropped when it states another amount, and kept otherwise."""
    resource: JsonDict = clean_copy(order.raw)
    # A malformed instruction (an element left out when the order was read) gives way to one
    # that states the new dose: the update must not carry the old, unreadable one.
    dosages = [d for d in as_list(resource.get("dosageInstruction")) if isinstance(d, dict)]
    resource["dosageInstruction"] = dosages = dosages or [{}]
    if fix_frequency:
        # The labelled schedule is the order's whole schedule: a further instruction would add
        # doses to it.
        del dosages[1:]
        dosages[0]["timing"] = _labelled_timing(dosages[0].get("timing"))
    # Every dose of an order is at one dose level (Table 2), so each instruction (days 1 and 8,
    # then day 15, say) gets the new dose and keeps its own timing.
    for dosage in dosages:
        _set_dose(dosage, dose, fix_frequency)
        with_label_instructions(dosage)  # how to take it travels with the dose (label 2.1)

    if order.product_code_at == CODE_ELSEWHERE:
        # The Medication lives outside the order; one update of the order cannot change it,
        # so the order names the product of the new strength itself.
        code = _product_for(order, dose)
        concept = {"coding": [{"system": RXNORM, "code": code, "display": _PRODUCT_NAMES[code]}]}
        resource.pop("medicationReference", None)
        resource["medicationCodeableConcept"] = concept
    named, contained = _medication_named(resource)
    if named is not None:
        if order.product_code_at in (CODE_IN_CONCEPT, CODE_IN_CONTAINED):
            _switch_product(named, dose)
        _drop_other_amounts(named, dose)
        if order.strength_text is not None and order.strength_mg != dose:
            _name_product_by_rxnorm(named, dose)
        if not named and contained is not None:
            contained.pop("code")  # it only named the old strength; the ingredient names the drug
        elif not named:
            named["text"] = "ixazomib"  # never empty (medication[x] is required)
    if contained is not None and order.strength_mg != dose:
        # The product code carries the strength; an ingredient strength of the old product
        # cannot be recomputed (it may be stated for the citrate salt), so it is dropped.
        for ingredient in contained.get("ingredient", []):
            if isinstance(ingredient, dict):
                ingredient.pop("strength", None)
    return resource


def _medication_named(resource: JsonDict) -> tuple[JsonDict | None, JsonDict | None]:
    """(the medication concept, the contained Medication it sits in, if any) of an order."""
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return concept, None
    reference = resource.get("medicationReference")
    target = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(target, str) or not target.startswith("#"):
        return None, None
    for contained in resource.get("contained", []):
        if isinstance(contained, dict) and contained.get("id") == target[1:]:
            code = contained.get("code")
            return (code if isinstance(code, dict) else None), contained
    return None, None


def _set_dose(dosage: JsonDict, dose: Decimal, fix_frequency: bool) -> None:
    rates = [r for r in as_list(dosage.get("doseAndRate")) if isinstance(r, dict)] or [{}]
    dosage["doseAndRate"] = rates
    rates[0].pop("doseRange", None)
    rates[0]["doseQuantity"] = {"value": number(dose), "unit": "mg", "system": UCUM, "code": "mg"}
    # A further dose entry was never read (the first dose is the instruction's dose) and would
    # contradict the new one; entries that only give a rate stay.
    rates[1:] = [r for r in rates[1:] if not {"doseQuantity", "doseRange"} & set(r)]
    _restate_dosage_text(dosage, dose, fix_frequency)


def _labelled_timing(timing: Any) -> JsonDict:
    """The order's timing with the labelled once-weekly x3 in place of whatever set the
    frequency (a code, events, days of the week...); its bounds and the rest are kept."""
    kept: JsonDict = dict(timing) if isinstance(timing, dict) else {}
    kept.pop("event", None)  # given times of intake
    kept.pop("code", None)  # QD, BID, "2 time(s) per 1 wk": a frequency too
    repeat = kept.get("repeat")
    repeat = (
        {k: v for k, v in repeat.items() if k not in _FREQUENCY_FIELDS}
        if isinstance(repeat, dict)
        else {}
    )
    kept["repeat"] = {**repeat, **copy.deepcopy(LABELLED_TIMING["repeat"])}
    return kept


def _restate_dosage_text(dosage: JsonDict, dose: Decimal, fix_frequency: bool) -> None:
    """The dosage's free text says the new dose; instructions that say another do not stay."""
    if "text" in dosage:
        # The whole instruction in words: rewritten rather than patched, since a stale number
        # in it cannot be found reliably. The structured timing still says how often.
        schedule = f" {LABELLED_SCHEDULE}" if fix_frequency else ""
        dosage["text"] = f"ixazomib {plain(dose)} mg by mouth{schedule}"
    instruction = dosage.get("patientInstruction")
    # Dropped, not rewritten: it is the patient's own wording, which the service cannot
    # restate, and a wrong amount (or, when the frequency is corrected, a wrong schedule) in
    # the patient's instructions is the error the card exists to prevent. The prescriber or
    # the EHR writes new ones; text that states no amount (empty stomach, swallow whole) stays.
    if isinstance(instruction, str) and (fix_frequency or _states_other_amount(instruction, dose)):
        dosage.pop("patientInstruction")
    extra = dosage.get("additionalInstruction")
    if isinstance(extra, list):
        kept = [c for c in extra if not _states_other_amount(_concept_words(c), dose)]
        if kept:
            dosage["additionalInstruction"] = kept
        else:
            dosage.pop("additionalInstruction")


def _drop_other_amounts(concept: JsonDict, dose: Decimal) -> None:
    """A medication concept without text or codings that name another strength: a code of
    another system (a local formulary) whose display states the old strength, or a NINLARO NDC
    of another strength left beside an RxNorm code, names the old product; the RxNorm codes
    that identify ixazomib stay."""
    codings = concept.get("coding")
    if isinstance(codings, list):
        kept = [c for c in codings if not isinstance(c, dict) or not _names_other_amount(c, dose)]
        if kept:
            concept["coding"] = kept
        else:
            concept.pop("coding")
    if isinstance(concept.get("text"), str) and _states_other_amount(concept["text"], dose):
        concept.pop("text")


def _names_other_amount(coding: JsonDict, dose: Decimal) -> bool:
    if coding.get("system") in RXNORM_SYSTEMS and coding.get("code") in IXAZOMIB_CODES:
        return False  # already switched to the product of the new strength
    if coding.get("system") in NDC_SYSTEMS and ndc_strength(str(coding.get("code"))) not in (
        None,
        dose,
    ):
        return True
    return _states_other_amount(str(coding.get("display") or ""), dose)


def _name_product_by_rxnorm(concept: JsonDict, dose: Decimal) -> None:
    """An order recognised by a text that stated the old strength ("NINLARO 4 MG PO CAPS"):
    its local codes named that product too, so they go, and the RxNorm product of the new
    strength names the drug instead (the next call recognises it by code)."""
    code = next(c for c, strength in IXAZOMIB_GENERIC_PRODUCTS.items() if strength == dose)
    concept["coding"] = [{"system": RXNORM, "code": code, "display": _PRODUCT_NAMES[code]}]
    concept["text"] = _PRODUCT_NAMES[code]


def _concept_words(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    codings = concept.get("coding")
    words = [str(concept.get("text") or "")]
    if isinstance(codings, list):
        words += [str(c.get("display") or "") for c in codings if isinstance(c, dict)]
    return " ".join(words)


def _states_other_amount(text: str, dose: Decimal) -> bool:
    """Does free text state an amount of drug other than ``dose`` mg (one capsule of the
    product, whose strength is the dose, is the dose)?"""
    for value, unit in _MASS_IN_TEXT.findall(text):
        mg = Decimal(value.replace(",", ".")) * _MG_PER_UNIT.get(unit.lower(), Decimal(1))
        if mg != dose:
            return True
    return any(count.lower() not in {"1", "one"} for count, _ in _CAPSULES_IN_TEXT.findall(text))


def clean_copy(value: Any) -> Any:
    """A deep copy without nulls and empty strings, arrays or objects (FHIR and CDS Hooks
    forbid them; a client may still send them)."""
    if isinstance(value, dict):
        cleaned = {k: clean_copy(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if not _empty(v)}
    if isinstance(value, list):
        return [v for v in (clean_copy(item) for item in value) if not _empty(v)]
    return copy.deepcopy(value)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and len(value) == 0)


def _product_for(order: MedicationOrder, dose: Decimal) -> str:
    """The product of this strength in the order's family (generic or Ninlaro)."""
    branded = order.product_code in IXAZOMIB_BRANDED_PRODUCTS
    family = IXAZOMIB_BRANDED_PRODUCTS if branded else IXAZOMIB_GENERIC_PRODUCTS
    return next(code for code, strength in family.items() if strength == dose)


def _switch_product(concept: dict[str, Any], dose: Decimal) -> None:
    # An NDC that is the only code naming the product becomes the same package code of the
    # new strength; beside an RxNorm code it is dropped instead (_drop_other_amounts).
    codings = [c for c in as_list(concept.get("coding")) if isinstance(c, dict)]
    rxnorm_named = any(
        c.get("system") in RXNORM_SYSTEMS and c.get("code") in IXAZOMIB_CODES for c in codings
    )
    for coding in codings:
        if coding.get("system") in NDC_SYSTEMS and isinstance(coding.get("code"), str):
            if rxnorm_named:
                continue
            switched = ndc_with_strength(coding["code"], dose)
            if switched is not None:
                coding["code"] = switched
                coding.pop("display", None)
            continue
        if coding.get("system") not in RXNORM_SYSTEMS:
            continue
        for family in (IXAZOMIB_GENERIC_PRODUCTS, IXAZOMIB_BRANDED_PRODUCTS):
            if coding.get("code") in family:
                code = next(c for c, strength in family.items() if strength == dose)
                coding["code"] = code
                coding["display"] = _PRODUCT_NAMES[code]
                if "text" in concept:
                    concept["text"] = _PRODUCT_NAMES[code]
