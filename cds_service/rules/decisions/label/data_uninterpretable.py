"""Data check: a value the service cannot read exactly is named, never guessed.

The decisions: ``shared.data_problems`` (both hooks) and the draft's dose in ``overdose``.
"""

from __future__ import annotations

from .rule import DATA_CHECK, OrderCheck

RULE = OrderCheck(
    id="data-uninterpretable",
    section=DATA_CHECK,
    reads="any resource a rule read: units, values, malformed resources",
    label_text="A value the service cannot read exactly (unit, dose, malformed resource) is "
    "named, never guessed: review.",
)
