"""Stage 3: CDS Hooks 2.0 cards from decisions, exactly as docs/service-contract says.

Every card carries the recommendation extension, a uuid, a source citing the label section,
override reasons and a Markdown detail with the values, dates and calculations used.
Suggestions: reduce / start-reduced / correct-dose update the entire draft (same id) with the
new dose and, where the order was coded by product, the product of that strength; hold /
discontinue delete the draft; at the lab-result hook a hold puts the active orders on hold.
"""

from __future__ import annotations

import copy
import uuid
from decimal import Decimal
from typing import Any

from cds_service.rules.catalog import RULES_BY_ID
from cds_service.rules.codes import (
    IXAZOMIB_BRANDED_PRODUCTS,
    IXAZOMIB_GENERIC_PRODUCTS,
    LABEL_URL,
    RXNORM,
    UCUM,
)
from cds_service.rules.decisions import Decision, DrugAdvice, Suggest
from cds_service.rules.facts import MedicationOrder
from cds_service.rules.facts.orders import CODE_ELSEWHERE, CODE_IN_CONCEPT, CODE_IN_CONTAINED
from cds_service.rules.inputs import JsonDict
from cds_service.rules.units import plain

RECOMMENDATION = "org.ixazomib-cds.recommendation"
OVERRIDE_SYSTEM = "urn:ixazomib-cds:override-reason"
OVERRIDE_REASONS = (
    ("clinical-judgement", "Patient-specific clinical judgement"),
    ("data-out-of-date", "The data shown are out of date or wrong"),
    ("already-aware", "Prescriber already aware; managed elsewhere"),
)
_INDICATOR_ORDER = {"critical": 0, "warning": 1, "info": 2}
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
    found: JsonDict = {"action": advice.action}
    if advice.dose_mg is not None:
        found["doseMg"] = number(advice.dose_mg)
    return found


def _advice_text(drug: str, advice: DrugAdvice) -> str:
    dose = f" {plain(advice.dose_mg)} mg" if advice.dose_mg is not None else ""
    return f"{drug}: **{advice.action}**{dose}"


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
    detail += ["", f"**Label, section {rule.section}:** {rule.outcome}"]
    detail += [f"\n{note}" for note in decision.notes if note]
    result: JsonDict = {
        "uuid": str(uuid.uuid4()),
        "summary": decision.summary[:139],
        "indicator": decision.indicator,
        "detail": "\n".join(detail),
        "source": {
            "label": f"NINLARO (ixazomib) US prescribing information, section {rule.section}",
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
        verb = "Discontinue" if decision.ixazomib.action == "discontinue" else "Hold"
        return _suggest(
            f"{verb}: do not sign this ixazomib order",
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


def _suggest(label: str, actions: list[JsonDict]) -> JsonDict:
    return {
        "label": label[:139],
        "uuid": str(uuid.uuid4()),
        "isRecommended": True,
        "actions": actions,
    }


def with_dose(order: MedicationOrder, dose: Decimal, fix_frequency: bool) -> JsonDict:
    """The entire draft, same id, with the new dose (and product of that strength)."""
    resource: JsonDict = clean_copy(order.raw)
    dosages = resource.setdefault("dosageInstruction", [])
    if not dosages:
        dosages.append({})
    first = dosages[0]
    rates = first.setdefault("doseAndRate", [])
    if not rates:
        rates.append({})
    rates[0].pop("doseRange", None)
    rates[0]["doseQuantity"] = {"value": number(dose), "unit": "mg", "system": UCUM, "code": "mg"}
    if fix_frequency:
        first["timing"] = copy.deepcopy(LABELLED_TIMING)
    if order.product_code_at == CODE_IN_CONCEPT:
        _switch_product(resource["medicationCodeableConcept"], dose)
    elif order.product_code_at == CODE_IN_CONTAINED:
        reference = str(resource["medicationReference"]["reference"])[1:]
        for contained in resource.get("contained", []):
            if contained.get("id") == reference and isinstance(contained.get("code"), dict):
                _switch_product(contained["code"], dose)
    elif order.product_code_at == CODE_ELSEWHERE:
        # The Medication lives outside the order; one update of the order cannot change it,
        # so the order names the product of the new strength itself.
        code = _product_for(order, dose)
        concept = {"coding": [{"system": RXNORM, "code": code, "display": _PRODUCT_NAMES[code]}]}
        resource.pop("medicationReference", None)
        resource["medicationCodeableConcept"] = concept
    return resource


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
    for coding in concept.get("coding", []):
        if coding.get("system") != RXNORM:
            continue
        for family in (IXAZOMIB_GENERIC_PRODUCTS, IXAZOMIB_BRANDED_PRODUCTS):
            if coding.get("code") in family:
                code = next(c for c, strength in family.items() if strength == dose)
                coding["code"] = code
                coding["display"] = _PRODUCT_NAMES[code]
                if "text" in concept:
                    concept["text"] = _PRODUCT_NAMES[code]
