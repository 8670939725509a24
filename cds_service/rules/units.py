"""Exact unit conversion (Decimal) for the quantities the rules compare.

Every conversion is a multiplication by an exact decimal factor, so a threshold compared in
the target unit gives the same answer as in the unit the lab sent (0.5 10*9/L is exactly
500 /mm3). Target units were chosen so that no division is needed: cells per uL (= per mm3),
umol/L for bilirubin and creatinine, kg, mL/min.

When the Quantity gives a UCUM code (system http://unitsofmeasure.org, or UCUM's OID), the code
alone decides,
case-sensitively: a sender that claims UCUM means UCUM (UCUM itself spells the litre both "L"
and "l", so both are read). Otherwise the display text labs actually send is read
(case-insensitive, spaces ignored, micro sign read as "u"). A unit not in these tables is never
guessed: the caller reports it.

"K/uL" is, literally in UCUM, kelvin per microlitre. Sent as a UCUM code it is therefore not
read (reported as uninterpretable). Sent as display text only, a temperature per volume is
meaningless for a cell count, so it is read as thousands per uL for ANC and platelets only,
never for any other quantity.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from cds_service.rules.codes import UCUM_SYSTEMS


class Kind(Enum):
    """A quantity the rules compare; the value names its target unit (values must differ)."""

    CELL_COUNT = "cells/uL"
    BILIRUBIN = "bilirubin umol/L"
    CREATININE = "creatinine umol/L"
    CLEARANCE = "mL/min"
    EGFR = "mL/min/1.73m2"
    WEIGHT = "kg"
    DOSE = "mg"


BILIRUBIN_UMOL_PER_MG_DL = Decimal("17.1")
CREATININE_UMOL_PER_MG_DL = Decimal("88.4")
KG_PER_LB = Decimal("0.45359237")  # exact by definition of the avoirdupois pound

_THOUSAND = Decimal(1000)

# UCUM codes (case-sensitive) -> factor to the target unit of the kind. UCUM defines both "L"
# and "l" as the litre, so each code with a litre has its lower-case twin ("10*9/l", "mg/dl",
# "ml/min"); nothing else is case-folded. "G/L" gets no twin: strictly, UCUM reads a lone "G" as
# the gauss, so the one spelling labs send for giga per litre is not widened.
_UCUM: dict[Kind, dict[str, Decimal]] = {
    Kind.CELL_COUNT: {
        "10*3/uL": _THOUSAND,
        "10*3/ul": _THOUSAND,
        "10*9/L": _THOUSAND,
        "10*9/l": _THOUSAND,
        "10*3/mm3": _THOUSAND,
        "G/L": _THOUSAND,
        "/uL": Decimal(1),
        "/ul": Decimal(1),
        "/mm3": Decimal(1),
        "{cells}/uL": Decimal(1),
        "{cells}/ul": Decimal(1),
        "10*6/L": Decimal(1),
        "10*6/l": Decimal(1),
    },
    Kind.BILIRUBIN: {
        "mg/dL": BILIRUBIN_UMOL_PER_MG_DL,
        "mg/dl": BILIRUBIN_UMOL_PER_MG_DL,
        "umol/L": Decimal(1),
        "umol/l": Decimal(1),
        "mg/L": BILIRUBIN_UMOL_PER_MG_DL / 10,
        "mg/l": BILIRUBIN_UMOL_PER_MG_DL / 10,
        "mmol/L": _THOUSAND,
        "mmol/l": _THOUSAND,
    },
    Kind.CREATININE: {
        "mg/dL": CREATININE_UMOL_PER_MG_DL,
        "mg/dl": CREATININE_UMOL_PER_MG_DL,
        "umol/L": Decimal(1),
        "umol/l": Decimal(1),
        "mg/L": CREATININE_UMOL_PER_MG_DL / 10,
        "mg/l": CREATININE_UMOL_PER_MG_DL / 10,
        "mmol/L": _THOUSAND,
        "mmol/l": _THOUSAND,
    },
    Kind.CLEARANCE: {
        "mL/min": Decimal(1),
        "ml/min": Decimal(1),
        "mL/s": Decimal(60),
        "ml/s": Decimal(60),
    },
    Kind.EGFR: {
        "mL/min/{1.73_m2}": Decimal(1),
        "ml/min/{1.73_m2}": Decimal(1),
        "mL/min/1.73.m2": Decimal(1),
        "ml/min/1.73.m2": Decimal(1),
    },
    Kind.WEIGHT: {"kg": Decimal(1), "g": Decimal("0.001"), "[lb_av]": KG_PER_LB},
    Kind.DOSE: {"mg": Decimal(1), "g": _THOUSAND, "ug": Decimal("0.001")},
}

# Display units real systems send, normalised (see _normalise) -> factor.
_DISPLAY: dict[Kind, dict[str, Decimal]] = {
    Kind.CELL_COUNT: {
        **{
            u: _THOUSAND
            for u in (
                "10*3/ul",
                "10^3/ul",
                "x10e3/ul",
                "10e3/ul",
                "x10^3/ul",
                "k/ul",
                "thou/ul",
                "thous/ul",
                "10*9/l",
                "10^9/l",
                "x10e9/l",
                "x10^9/l",
                "10e9/l",
                "g/l",
                "10*3/mm3",
                "10^3/mm3",
                "k/mm3",
                "k/cumm",
                "thou/mm3",
                "thou/cumm",
            )
        },
        **{u: Decimal(1) for u in ("/ul", "/mm3", "cells/ul", "{cells}/ul", "/cumm", "cells/mm3")},
    },
    Kind.BILIRUBIN: {
        "mg/dl": BILIRUBIN_UMOL_PER_MG_DL,
        "umol/l": Decimal(1),
        "mg/l": Decimal("1.71"),
    },
    Kind.CREATININE: {
        "mg/dl": CREATININE_UMOL_PER_MG_DL,
        "umol/l": Decimal(1),
        "mg/l": Decimal("8.84"),
    },
    Kind.CLEARANCE: {"ml/min": Decimal(1), "ml/s": Decimal(60)},
    Kind.EGFR: {
        "ml/min/{1.73_m2}": Decimal(1),
        "ml/min/1.73m2": Decimal(1),
        "ml/min/1.73.m2": Decimal(1),
        "ml/min/1.73m^2": Decimal(1),
        "ml/min/1.73sqm": Decimal(1),
    },
    Kind.WEIGHT: {
        "kg": Decimal(1),
        "kilogram": Decimal(1),
        "kilograms": Decimal(1),
        "g": Decimal("0.001"),
        "[lb_av]": KG_PER_LB,
        "lb": KG_PER_LB,
        "lbs": KG_PER_LB,
        "pound": KG_PER_LB,
        "pounds": KG_PER_LB,
    },
    Kind.DOSE: {
        "mg": Decimal(1),
        "milligram": Decimal(1),
        "milligrams": Decimal(1),
        "g": _THOUSAND,
        "ug": Decimal("0.001"),
        "mcg": Decimal("0.001"),
    },
}


@dataclass(frozen=True)
class Converted:
    value: Decimal  # in the kind's target unit
    sent: str  # the value and unit as the lab sent them, for the card


def _normalise(unit: str) -> str:
    return unit.replace("µ", "u").replace("μ", "u").replace(" ", "").lower()


def factor_for(
    kind: Kind, code: str | None, system: str | None, unit: str | None
) -> Decimal | None:
    """The exact factor to the kind's target unit, or None when the unit cannot be read."""
    if code and system in UCUM_SYSTEMS:
        return _UCUM[kind].get(code)
    for text in (unit, code):
        if text and _normalise(text) in _DISPLAY[kind]:
            return _DISPLAY[kind][_normalise(text)]
    return None


def convert(
    kind: Kind, value: Decimal, code: str | None, system: str | None, unit: str | None
) -> Converted | None:
    factor = factor_for(kind, code, system, unit)
    if factor is None:
        return None
    sent = f"{value} {unit or code or ''}".strip()
    return Converted(value * factor, sent)


# Units that count dose forms: one of them is one capsule (or tablet) of the product, so the
# dose in mg is the count times the product's strength. UCUM writes such counts as annotations
# ("{pill}", "{capsule}", "{tbl}": an annotation alone means the unity, a count); EHRs also send
# the bare words. Compared in lower case, braces removed.
DOSE_FORM_WORDS = frozenset(
    {
        "pill",
        "pills",
        "capsule",
        "capsules",
        "cap",
        "caps",
        "tablet",
        "tablets",
        "tab",
        "tabs",
        "tbl",
    }
)


def counts_dose_forms(code: str | None, unit: str | None) -> bool:
    """Whether a dose unit (its code or its text) counts capsules, tablets or pills."""
    return any(
        text.strip().strip("{}").strip().lower() in DOSE_FORM_WORDS for text in (code, unit) if text
    )


def plain(value: Decimal) -> str:
    """A Decimal written without exponent or trailing zeros (500, 2.3, 1.25)."""
    text = format(value.normalize(), "f")
    return text


def rounded(value: Decimal, places: int = 1) -> str:
    return plain(value.quantize(Decimal(1).scaleb(-places)))
