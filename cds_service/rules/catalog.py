"""The rule table: every rule the engine applies, as the registry lists them.

Each rule is declared once, in its own module of ``cds_service.rules.decisions.label``;
``docs/rules.md`` is generated from this table (``python -m cds_service.rules.docs``) and a
test checks the committed file against it, so the documentation cannot drift from the code.
"""

from __future__ import annotations

from cds_service.rules.decisions.label.registry import RULES, RULES_BY_ID, rule_id
from cds_service.rules.decisions.label.rule import DATA_CHECK, LabelRule

Rule = LabelRule

__all__ = ["DATA_CHECK", "RULES", "RULES_BY_ID", "Rule", "rule_id"]
