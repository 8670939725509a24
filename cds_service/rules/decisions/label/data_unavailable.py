"""Data check: data a check needs is not available, so the check was not made.

The decisions: ``shared.data_problems``, ``shared.unresolved_medication`` and the unknown
treatment history at order-sign (``order_hooks``).
"""

from __future__ import annotations

from .rule import DATA_CHECK, OrderCheck

RULE = OrderCheck(
    id="data-unavailable",
    section=DATA_CHECK,
    reads="PatientRecord.unavailable, PatientRecord.left_out; the medication of a draft order",
    label_text="Data a check needs is not available (the card says which, and why), or the "
    "FHIR server answered another patient's data (left out); the checks that needed it were "
    "not made: review.",
)
