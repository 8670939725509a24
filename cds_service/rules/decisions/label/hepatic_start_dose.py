"""Label 2.4 and 8.6: starting ixazomib with total bilirubin > 1.5 x ULN (moderate or severe
hepatic impairment): start at 3 mg. Compared exactly: value > 1.5 x ULN in umol/L."""

from __future__ import annotations

from decimal import Decimal

from cds_service.rules.codes import BILIRUBIN_CODES
from cds_service.rules.facts import Facts, Lab
from cds_service.rules.prefetch_keys import LABS, MEDICATION_REQUESTS
from cds_service.rules.settings import RuleSettings
from cds_service.rules.units import BILIRUBIN_UMOL_PER_MG_DL, plain, rounded

from ..model import lab_line
from ..start_dose import Assessment, latest_chemistry
from .rule import StartDoseRule

MODERATE_HEPATIC_ABOVE = Decimal("1.5")  # x ULN
SEVERE_HEPATIC_ABOVE = Decimal(3)


def _assess(facts: Facts, settings: RuleSettings) -> Assessment:
    zone = str(settings.default_timezone)
    bilirubin = latest_chemistry(facts, Lab.BILIRUBIN, settings)
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


RULE = StartDoseRule(
    id="hepatic-start-dose",
    section="2.4, 8.6",
    reads="no prior ixazomib; latest total bilirubin and its ULN (referenceRange.high)",
    label_text="Starting ixazomib with total bilirubin > 1.5 x ULN (moderate or severe hepatic "
    "impairment): start at 3 mg.",
    needs=(LABS, MEDICATION_REQUESTS),
    loinc=BILIRUBIN_CODES,
    assess=_assess,
    organ="hepatic",
    impairment="hepatic impairment",
    criterion="moderate or severe hepatic impairment (bilirubin > 1.5 x ULN).",
)
