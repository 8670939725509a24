"""Tunable settings of the rules engine, with safe defaults."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, timedelta, tzinfo
from decimal import Decimal


@dataclass(frozen=True)
class RuleSettings:
    # A CBC (ANC and platelets) older than this at the time of the call counts as missing.
    cbc_max_age: timedelta = timedelta(days=7)
    # Bilirubin, creatinine, CrCl and weight older than this do not decide a starting dose.
    # The label is silent; a month is the usual pre-treatment work-up window.
    chemistry_max_age: timedelta = timedelta(days=30)
    # A pain score older than this does not count as "with pain" for neuropathy.
    pain_score_max_age: timedelta = timedelta(days=14)
    # Time-zone-less date-times (Epic sends them) are read in this zone, and cards say so.
    default_timezone: tzinfo = UTC
    # Upper limit of normal for total bilirubin when the Observation has no referenceRange.high.
    assumed_bilirubin_uln_mg_dl: Decimal = Decimal("1.2")
