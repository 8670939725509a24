"""Hepatic and renal function for the starting dose (label 2.4, 2.5, 8.6, 8.7).

Comparisons are exact: bilirubin > 1.5 x ULN is tested as value > 1.5 * ULN in umol/L, and
Cockcroft-Gault's CrCl < 30 as (140 - age) x weight x sex factor x 88.4 < 30 x 72 x creatinine
(umol/L), so no division rounds a boundary case. Rounded numbers appear only on the card.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from cds_service.rules.facts import Facts, Lab, LabValue
from cds_service.rules.settings import RuleSettings
from cds_service.rules.units import (
    BILIRUBIN_UMOL_PER_MG_DL,
    CREATININE_UMOL_PER_MG_DL,
    plain,
    rounded,
)

from .model import evidence_line, lab_line

MODERATE_HEPATIC_ABOVE = Decimal("1.5")  # x ULN
SEVERE_HEPATIC_ABOVE = Decimal(3)
SEVERE_RENAL_BELOW = Decimal(30)  # mL/min
FEMALE_FACTOR = Decimal("0.85")


@dataclass(frozen=True)
class Assessment:
    impaired: bool | None  # None: the data do not allow a decision
    evidence: tuple[str, ...]
    missing: str = ""  # what is missing, in words, when impaired is None
    assumption: str = ""  # an assumption the card must state


def _latest(facts: Facts, lab: Lab, settings: RuleSettings) -> LabValue | None:
    recent = [v for v in facts.labs[lab] if facts.now - v.at <= settings.chemistry_max_age]
    return recent[-1] if recent else None


def hepatic(facts: Facts, settings: RuleSettings) -> Assessment:
    zone = str(settings.default_timezone)
    bilirubin = _latest(facts, Lab.BILIRUBIN, settings)
    if bilirubin is None:
        return Assessment(
            None,
            (),
            f"total bilirubin (LOINC 1975-2/14631-6) within the last "
            f"{settings.chemistry_max_age.days} days",
        )
    assumption = ""
    if bilirubin.upper_limit is not None:
        uln = bilirubin.upper_limit
        uln_text = f"{bilirubin.upper_limit_sent} (reference range of the result)"
    else:
        uln = settings.assumed_bilirubin_uln_mg_dl * BILIRUBIN_UMOL_PER_MG_DL
        uln_text = f"{plain(settings.assumed_bilirubin_uln_mg_dl)} mg/dL (ASSUMED)"
        assumption = (
            f"The bilirubin result has no reference range; an upper limit of normal of "
            f"{plain(settings.assumed_bilirubin_uln_mg_dl)} mg/dL was assumed."
        )
    ratio = bilirubin.value / uln
    if bilirubin.value > SEVERE_HEPATIC_ABOVE * uln:
        grade = "severe hepatic impairment (> 3 x ULN)"
    elif bilirubin.value > MODERATE_HEPATIC_ABOVE * uln:
        grade = "moderate hepatic impairment (> 1.5 to 3 x ULN)"
    else:
        grade = "no more than mild hepatic impairment (<= 1.5 x ULN)"
    evidence = (
        lab_line(bilirubin, zone),
        f"upper limit of normal (ULN): {uln_text}",
        # Both in one unit: a result and a range may be sent in different units.
        f"bilirubin / ULN = {rounded(bilirubin.value / BILIRUBIN_UMOL_PER_MG_DL, 2)} mg/dL / "
        f"{rounded(uln / BILIRUBIN_UMOL_PER_MG_DL, 2)} mg/dL = {rounded(ratio, 2)} -> {grade}",
    )
    return Assessment(bilirubin.value > MODERATE_HEPATIC_ABOVE * uln, evidence, "", assumption)


def _age(birth: date, now: datetime) -> int:
    today = now.date()
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def renal(facts: Facts, settings: RuleSettings) -> Assessment:
    zone = str(settings.default_timezone)
    if facts.renal_failure:
        lines = tuple(evidence_line(e, zone) for e in facts.renal_failure)
        return Assessment(True, (*lines, "end-stage renal disease or dialysis"))
    crcl = _latest(facts, Lab.CRCL, settings)
    if crcl is not None:
        line = f"{lab_line(crcl, zone)} (measured or reported creatinine clearance)"
        return Assessment(crcl.value < SEVERE_RENAL_BELOW, (line,))
    estimate = _cockcroft_gault(facts, settings)
    if estimate is not None:
        return estimate
    egfr = _latest(facts, Lab.EGFR, settings)
    if egfr is not None:
        line = (
            f"{lab_line(egfr, zone)}: FALLBACK - no creatinine clearance and no Cockcroft-Gault "
            "inputs; eGFR (per 1.73 m2) is not CrCl and is used only in its place"
        )
        return Assessment(egfr.value < SEVERE_RENAL_BELOW, (line,))
    missing = [
        name
        for name, present in (
            ("serum creatinine", _latest(facts, Lab.CREATININE, settings)),
            ("body weight", _latest(facts, Lab.WEIGHT, settings)),
        )
        if present is None
    ]
    inputs = [f"{', '.join(missing)} within the last {settings.chemistry_max_age.days} days"]
    if facts.patient.partial_birth_date is not None:
        inputs.append(
            f"the age: the birth date is recorded as {facts.patient.partial_birth_date} only, "
            "and Cockcroft-Gault needs the exact age"
        )
    elif facts.patient.birth_date is None:
        inputs.append("the birth date (for the age)")
    return Assessment(
        None,
        (),
        "creatinine clearance, or the Cockcroft-Gault inputs ("
        + "; ".join(inputs if missing else inputs[1:])
        + "), or an eGFR",
    )


def _cockcroft_gault(facts: Facts, settings: RuleSettings) -> Assessment | None:
    zone = str(settings.default_timezone)
    creatinine = _latest(facts, Lab.CREATININE, settings)
    weight = _latest(facts, Lab.WEIGHT, settings)
    birth = facts.patient.birth_date
    if creatinine is None or weight is None or birth is None:
        return None
    age = _age(birth, facts.now)
    creatinine_mg_dl = creatinine.value / CREATININE_UMOL_PER_MG_DL  # display only
    factors = {"female": [FEMALE_FACTOR], "male": [Decimal(1)]}.get(
        facts.patient.sex or "", [FEMALE_FACTOR, Decimal(1)]
    )
    # CrCl < 30  <=>  (140 - age) x kg x factor x 88.4 < 30 x 72 x creatinine (umol/L)
    below = {
        (140 - age) * weight.value * factor * CREATININE_UMOL_PER_MG_DL
        < SEVERE_RENAL_BELOW * 72 * creatinine.value
        for factor in factors
    }
    lines = [
        lab_line(creatinine, zone, f"{rounded(creatinine_mg_dl, 2)} mg/dL"),
        lab_line(weight, zone, f"{rounded(weight.value, 1)} kg"),
        f"age {age} years (born {birth.isoformat()}), sex {facts.patient.sex or 'not recorded'}",
    ]
    for factor in factors:
        crcl = (140 - age) * weight.value * factor / (72 * creatinine_mg_dl)
        sex_factor = f" x {plain(factor)}" if factor != 1 else ""
        lines.append(
            f"Cockcroft-Gault CrCl = (140 - {age}) x {rounded(weight.value, 1)} kg{sex_factor} / "
            f"(72 x {rounded(creatinine_mg_dl, 2)} mg/dL) = {rounded(crcl, 1)} mL/min"
        )
    if len(below) > 1:
        return Assessment(
            None,
            tuple(lines),
            "the patient's sex (Cockcroft-Gault gives CrCl on both sides of 30 mL/min)",
        )
    return Assessment(below.pop(), tuple(lines))
