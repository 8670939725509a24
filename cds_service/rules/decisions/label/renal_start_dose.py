"""Label 2.5 and 8.7: starting ixazomib with CrCl < 30 mL/min or ESRD on dialysis: start at
3 mg. Cockcroft-Gault's CrCl < 30 is compared as (140 - age) x weight x sex factor x 88.4 <
30 x 72 x creatinine (umol/L), so no division rounds a boundary case."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from cds_service.rules.codes import CRCL_CODES, CREATININE_CODES, EGFR_CODES, WEIGHT_CODES
from cds_service.rules.facts import Facts, Lab
from cds_service.rules.prefetch_keys import (
    CONDITIONS,
    LABS,
    MEDICATION_REQUESTS,
    PATIENT,
    PROCEDURES,
)
from cds_service.rules.settings import RuleSettings
from cds_service.rules.units import CREATININE_UMOL_PER_MG_DL, plain, rounded

from ..model import evidence_line, lab_line
from ..start_dose import Assessment, latest_chemistry
from .rule import StartDoseRule

SEVERE_RENAL_BELOW = Decimal(30)  # mL/min
FEMALE_FACTOR = Decimal("0.85")


def _age(birth: date, now: datetime) -> int:
    today = now.date()
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def _assess(facts: Facts, settings: RuleSettings) -> Assessment:
    zone = str(settings.default_timezone)
    if facts.renal_failure:
        lines = tuple(evidence_line(e, zone) for e in facts.renal_failure)
        return Assessment(True, (*lines, "end-stage renal disease or dialysis"))
    crcl = latest_chemistry(facts, Lab.CRCL, settings)
    if crcl is not None:
        line = f"{lab_line(crcl, zone)} (measured or reported creatinine clearance)"
        return Assessment(crcl.value < SEVERE_RENAL_BELOW, (line,))
    estimate = _cockcroft_gault(facts, settings)
    if estimate is not None:
        return estimate
    egfr = latest_chemistry(facts, Lab.EGFR, settings)
    if egfr is not None:
        line = (
            f"{lab_line(egfr, zone)}: FALLBACK - no creatinine clearance and no Cockcroft-Gault "
            "inputs; eGFR (per 1.73 m2) is not CrCl and is used only in its place"
        )
        return Assessment(egfr.value < SEVERE_RENAL_BELOW, (line,))
    missing = [
        name
        for name, present in (
            ("serum creatinine", latest_chemistry(facts, Lab.CREATININE, settings)),
            ("body weight", latest_chemistry(facts, Lab.WEIGHT, settings)),
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
    creatinine = latest_chemistry(facts, Lab.CREATININE, settings)
    weight = latest_chemistry(facts, Lab.WEIGHT, settings)
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


RULE = StartDoseRule(
    id="renal-start-dose",
    section="2.5, 8.7",
    reads="no prior ixazomib; CrCl (measured, reported or Cockcroft-Gault: creatinine, weight, "
    "age, sex; eGFR as fallback); ESRD/dialysis Condition or Procedure",
    label_text="Starting ixazomib with CrCl < 30 mL/min or ESRD on dialysis: start at 3 mg.",
    needs=(PATIENT, LABS, CONDITIONS, PROCEDURES, MEDICATION_REQUESTS),
    loinc=CREATININE_CODES | CRCL_CODES | EGFR_CODES | WEIGHT_CODES,
    assess=_assess,
    organ="renal",
    impairment="severe renal impairment",
    criterion="severe renal impairment (CrCl < 30 mL/min) or ESRD on dialysis.",
)
