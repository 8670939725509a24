"""What the starting-dose rules (``label.hepatic_start_dose``, ``label.renal_start_dose``)
share: an organ function's assessment and the chemistry window (label 2.4, 2.5, 8.6, 8.7).

Comparisons are exact (cross-multiplied); rounded numbers appear only on the card.
"""

from __future__ import annotations

from dataclasses import dataclass

from cds_service.rules.facts import Facts, Lab, LabValue
from cds_service.rules.settings import RuleSettings


@dataclass(frozen=True)
class Assessment:
    impaired: bool | None  # None: the data do not allow a decision
    evidence: tuple[str, ...]
    missing: str = ""  # what is missing, in words, when impaired is None
    assumption: str = ""  # an assumption the card must state


def latest_chemistry(facts: Facts, lab: Lab, settings: RuleSettings) -> LabValue | None:
    """The latest result of a lab within ``chemistry_max_age``."""
    recent = [v for v in facts.labs[lab] if facts.now - v.at <= settings.chemistry_max_age]
    return recent[-1] if recent else None
