"""The clinical rules engine: ixazomib (NINLARO) label criteria as CDS Hooks cards.

    cards = render(decide_orders(call, record, settings))  # or decide_new_results
    view = decide_course(call, record, settings)  # patient-view: cards.course_card(view)

Three stages: ``facts`` (read the FHIR data exactly), ``decisions`` (one per label row that
applies), ``cards`` (CDS Hooks 2.0 JSON, ``cards.render``). Each CDS service
(``cds_service.services``) names the entry point of ``engine`` that decides for it. ``RULES``
is the rule table: one module per rule in ``decisions.label``, listed by its registry;
docs/rules.md is generated from it (``python -m cds_service.rules.docs``).
"""

from cds_service.rules.cards import render
from cds_service.rules.catalog import RULES, Rule
from cds_service.rules.engine import decide_course, decide_new_results, decide_orders
from cds_service.rules.settings import RuleSettings

__all__ = [
    "RULES",
    "Rule",
    "RuleSettings",
    "decide_course",
    "decide_new_results",
    "decide_orders",
    "render",
]
