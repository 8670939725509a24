"""Every rule the engine applies, in the order the decisions apply them.

Adding a rule is one module in this package (its ``RULE`` and decision functions) and one line
here; the decisions, docs/rules.md, the cards and the prefetch templates (``data_needs``, from
the keys, codes and terms each rule declares) take it from ``RULES``. At import this module
checks what a typo would otherwise hide until a card is rendered: ids are unique and each
module is named after its rule's id.
"""

from __future__ import annotations

from types import ModuleType

from . import (
    anc_below_500,
    cbc_missing,
    data_unavailable,
    data_uninterpretable,
    dose_level_due,
    dose_not_labelled,
    hepatic_start_dose,
    hypersensitivity,
    neuropathy_grade_1_pain_or_2,
    neuropathy_grade_2_pain_or_3,
    neuropathy_grade_4,
    new_cycle_gate,
    other_toxicity_grade_3_4,
    overdose,
    platelets_below_30k,
    pregnancy,
    rash_grade_2_3,
    rash_grade_4,
    renal_start_dose,
    severity_without_grade,
    strong_cyp3a_inducer,
)
from .rule import CountRow, LabelRule, PatientCheck, StartDoseRule, Table3Row, ToxicityRow

MODULES: tuple[ModuleType, ...] = (
    pregnancy,
    # Table 3: the counts, then the toxicities. Rows of one toxicity worst first: the first
    # row that decides something now decides for its toxicity.
    anc_below_500,
    platelets_below_30k,
    neuropathy_grade_4,
    neuropathy_grade_2_pain_or_3,
    neuropathy_grade_1_pain_or_2,
    rash_grade_4,
    rash_grade_2_3,
    other_toxicity_grade_3_4,
    new_cycle_gate,
    cbc_missing,
    # Starting dose (no earlier ixazomib).
    hepatic_start_dose,
    renal_start_dose,
    # The draft order.
    overdose,
    dose_not_labelled,
    dose_level_due,
    # The record, at every order hook.
    severity_without_grade,
    strong_cyp3a_inducer,
    hypersensitivity,
    # Checks of the data the rules need (not label rules).
    data_uninterpretable,
    data_unavailable,
)


def _rules(modules: tuple[ModuleType, ...]) -> tuple[LabelRule, ...]:
    rules = []
    for module in modules:
        rule = module.RULE
        if not isinstance(rule, LabelRule):
            raise TypeError(f"{module.__name__}.RULE is not a LabelRule")
        if module.__name__.rsplit(".", 1)[-1] != rule.id.replace("-", "_"):
            raise ValueError(f"{module.__name__} defines rule {rule.id!r}: name it after its id")
        rules.append(rule)
    ids = [rule.id for rule in rules]
    if len(set(ids)) != len(ids):
        raise ValueError(f"rule ids are not unique: {sorted(ids)}")
    return tuple(rules)


RULES = _rules(MODULES)
RULES_BY_ID: dict[str, LabelRule] = {rule.id: rule for rule in RULES}
TABLE3 = tuple(rule for rule in RULES if isinstance(rule, Table3Row))
COUNT_ROWS = tuple(rule for rule in RULES if isinstance(rule, CountRow))
TOXICITY_ROWS = tuple(rule for rule in RULES if isinstance(rule, ToxicityRow))
START_DOSE_RULES = tuple(rule for rule in RULES if isinstance(rule, StartDoseRule))
PATIENT_CHECKS = tuple(rule for rule in RULES if isinstance(rule, PatientCheck))


def rule_id(text: str) -> str:
    """``text`` when it is the id of a rule; a ValueError otherwise (use at import time)."""
    if text not in RULES_BY_ID:
        raise ValueError(f"no rule {text!r}; the rules are {sorted(RULES_BY_ID)}")
    return text
