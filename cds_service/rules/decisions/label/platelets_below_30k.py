"""Label Table 3: platelets < 30,000/mm3 withhold ixazomib and lenalidomide; recoveries
alternate."""

from __future__ import annotations

from cds_service.rules.codes import CBC_PANEL_CODES, PLATELET_CODES
from cds_service.rules.facts import Lab
from cds_service.rules.facts.labs import PLATELETS_HOLD_BELOW, PLATELETS_NEW_CYCLE_AT_LEAST
from cds_service.rules.prefetch_keys import LABS, MEDICATION_REQUESTS

from .rule import CountRow, Recovery

RULE = CountRow(
    id="platelets-below-30k",
    section="2.2 (Table 3)",
    reads="platelet counts since ixazomib started; ixazomib and lenalidomide dose history",
    label_text="Platelets < 30,000/mm3: withhold ixazomib and lenalidomide until >= "
    "30,000/mm3. On recovery after the first episode reduce lenalidomide one level and resume "
    "ixazomib at its most recent dose; after the second reduce ixazomib one level and resume "
    "lenalidomide; then alternate. Below 2.3 mg: discontinue ixazomib.",
    needs=(LABS, MEDICATION_REQUESTS),
    loinc=PLATELET_CODES | CBC_PANEL_CODES,
    holds_now=True,
    on_recovery=Recovery.ALTERNATING,
    step_name="platelets < 30,000/mm3",
    lab=Lab.PLATELETS,
    hold_below=PLATELETS_HOLD_BELOW,
    new_cycle_at_least=PLATELETS_NEW_CYCLE_AT_LEAST,
)
