"""The clinical rules engine: ixazomib (NINLARO) label criteria as CDS Hooks cards.

    cards = evaluate(call, record, settings)

Three stages: ``facts`` (read the FHIR data exactly), ``decisions`` (one per label row that
applies), ``cards`` (CDS Hooks 2.0 JSON). ``RULES`` is the rule table: one module per rule in
``decisions.label``, listed by its registry; docs/rules.md is generated from it
(``python -m cds_service.rules.docs``).
"""

from cds_service.rules.catalog import RULES, Rule
from cds_service.rules.engine import evaluate, needs_patient_data
from cds_service.rules.settings import RuleSettings

__all__ = ["RULES", "Rule", "RuleSettings", "evaluate", "needs_patient_data"]
