"""Stage 2: decisions, one per label row that applies, with the history the label needs."""

from __future__ import annotations

from cds_service.rules.decisions.lab_hook import decide_lab_result
from cds_service.rules.decisions.model import Decision, DrugAdvice, Suggest
from cds_service.rules.decisions.order_hooks import decide_order

__all__ = ["Decision", "DrugAdvice", "Suggest", "decide_lab_result", "decide_order"]
