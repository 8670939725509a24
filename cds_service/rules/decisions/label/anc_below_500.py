"""Label Table 3: ANC < 500/mm3 withholds ixazomib and lenalidomide; recoveries alternate."""

from __future__ import annotations

from cds_service.rules.codes import ANC_CODES, CBC_PANEL_CODES, NEUTROPHIL_PERCENT_CODES, WBC_CODES
from cds_service.rules.facts import Lab
from cds_service.rules.facts.labs import ANC_HOLD_BELOW, ANC_NEW_CYCLE_AT_LEAST
from cds_service.rules.prefetch_keys import LABS, MEDICATION_REQUESTS

from .rule import CountRow, Recovery

RULE = CountRow(
    id="anc-below-500",
    section="2.2 (Table 3)",
    reads="ANC since ixazomib started; ixazomib and lenalidomide dose history",
    label_text="ANC < 500/mm3: withhold ixazomib and lenalidomide until ANC >= 500/mm3 "
    "(consider G-CSF). On recovery after the first episode reduce lenalidomide one level and "
    "resume ixazomib at its most recent dose; after the second reduce ixazomib one level and "
    "resume lenalidomide; then alternate. Below 2.3 mg: discontinue ixazomib.",
    needs=(LABS, MEDICATION_REQUESTS),
    loinc=ANC_CODES | NEUTROPHIL_PERCENT_CODES | WBC_CODES | CBC_PANEL_CODES,
    holds_now=True,
    on_recovery=Recovery.ALTERNATING,
    step_name="ANC < 500/mm3",
    lab=Lab.ANC,
    hold_below=ANC_HOLD_BELOW,
    new_cycle_at_least=ANC_NEW_CYCLE_AT_LEAST,
    hold_note=" Consider G-CSF.",
)
