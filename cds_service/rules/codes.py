"""Code systems and codes the rules recognise (from the label reference, docs/rules.md)."""

from __future__ import annotations

from decimal import Decimal

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
MEDDRA = "http://terminology.hl7.org/CodeSystem/mdr"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
NDC = "http://hl7.org/fhir/sid/ndc"
ATC = "http://www.whocc.no/atc"
# EHRs also name code systems by their HL7 OIDs (label reference, "Codes"): the same codes.
RXNORM_SYSTEMS = frozenset({RXNORM, "urn:oid:2.16.840.1.113883.6.88"})
NDC_SYSTEMS = frozenset({NDC, "urn:oid:2.16.840.1.113883.6.69"})
LOINC_SYSTEMS = frozenset({LOINC, "urn:oid:2.16.840.1.113883.6.1"})
UCUM_SYSTEMS = frozenset({UCUM, "urn:oid:2.16.840.1.113883.6.8"})
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
AE_OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
AE_GRADE_EXTENSIONS = frozenset(
    {
        "http://hl7.org/fhir/uv/ae-research-backport-ig/StructureDefinition/ae-grade",
        "http://hl7.org/fhir/uv/ae-research-ig/StructureDefinition/ae-grade",
    }
)

LABEL_URL = (
    "https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid=038f2461-834b-4488-9ebd-863c83eef5a7"
)

# --- medications (RxNorm) -------------------------------------------------------------------
IXAZOMIB_INGREDIENT_CODES = frozenset({"1723735", "1723734", "1723758"})
# Product codes carry the capsule strength (mg). Generic and Ninlaro-branded.
IXAZOMIB_GENERIC_PRODUCTS = {
    "1723757": Decimal("2.3"),
    "1723765": Decimal(3),
    "1723770": Decimal(4),
}
IXAZOMIB_BRANDED_PRODUCTS = {
    "1723763": Decimal("2.3"),
    "1723767": Decimal(3),
    "1723772": Decimal(4),
}
IXAZOMIB_PRODUCT_STRENGTH = {**IXAZOMIB_GENERIC_PRODUCTS, **IXAZOMIB_BRANDED_PRODUCTS}
IXAZOMIB_CODES = IXAZOMIB_INGREDIENT_CODES | IXAZOMIB_PRODUCT_STRENGTH.keys()
LENALIDOMIDE_CODES = frozenset({"342369", "337535"})
DEXAMETHASONE_CODES = frozenset({"3264"})

# ATC (WHO): ixazomib L01XG03 (formerly L01XX50), lenalidomide L04AX04. Substance level: no
# strength.
IXAZOMIB_ATC = frozenset({"L01XG03", "L01XX50"})
LENALIDOMIDE_ATC = frozenset({"L04AX04"})

# NDC (label section 16): labeler 63020, product code (3 digits in the 10-digit 5-3-2 form) ->
# capsule strength (mg). Any package of a product is that product (see orders.ndc_strength).
NINLARO_NDC_LABELER = "63020"
NINLARO_NDC_PRODUCTS = {"078": Decimal("2.3"), "079": Decimal(3), "080": Decimal(4)}

# Names that identify the drug in free text (order text, code displays), lower case. An order
# named only so is still checked, and its cards say how it was recognised.
IXAZOMIB_NAMES = ("ixazomib", "ninlaro")
LENALIDOMIDE_NAMES = ("lenalidomide", "revlimid")

# Strong CYP3A inducers: RxNorm ingredient code -> name. Names also match order text (fallback).
STRONG_CYP3A_INDUCERS = {
    "9384": "rifampin",
    "8183": "phenytoin",
    "2002": "carbamazepine",
    "2049873": "ivosidenib",
    "1999574": "apalutamide",
    "1307298": "enzalutamide",
    "7004": "mitotane",
}
# The same inducers by WHO ATC code (each checked against several public drug lists; the
# label reference gives none): rifampicin J04AB02, phenytoin N03AB02, carbamazepine N03AF01,
# ivosidenib L01XM02 (formerly L01XX62), apalutamide L02BB05, enzalutamide L02BB04, mitotane
# L01XX23, St John's wort (Hyperici herba) N06AX25, rifapentine J04AB05.
STRONG_CYP3A_INDUCER_ATC = {
    "J04AB02": "rifampin",
    "N03AB02": "phenytoin",
    "N03AF01": "carbamazepine",
    "L01XM02": "ivosidenib",
    "L01XX62": "ivosidenib",
    "L02BB05": "apalutamide",
    "L02BB04": "enzalutamide",
    "L01XX23": "mitotane",
    "N06AX25": "st john's wort",
    "J04AB05": "rifapentine",
}
# Inducers the label names without an RxNorm code in the reference: text match only. Matched
# after folding case and punctuation (see orders._name_key), so one spelling covers "St. John's
# Wort", "St John\u2019s wort" (typographic apostrophe), "Saint John's wort", "St Johnswort".
STRONG_CYP3A_INDUCER_NAMES = (
    *STRONG_CYP3A_INDUCERS.values(),
    "rifampicin",
    "st john's wort",
    "hypericum",
    "lumacaftor",
    "rifapentine",
)

# Dose levels, highest first (label Table 2; REVLIMID label for lenalidomide).
IXAZOMIB_LEVELS = (Decimal(4), Decimal(3), Decimal("2.3"))
LENALIDOMIDE_LEVELS = (
    Decimal(25),
    Decimal(20),
    Decimal(15),
    Decimal(10),
    Decimal(5),
    Decimal("2.5"),
)

# --- labs (LOINC) -----------------------------------------------------------------------------
# Neutrophils [#/volume] in Blood: 751-8 by automated count (US Core and CTCAE IG examples),
# 753-4 by manual count (label reference), 26499-4 unspecified method (mCODE example). Not read
# as the ANC: segmented neutrophils [#/volume] (30451-9, 768-2), which leave out the bands and
# so understate it.
ANC_CODES = frozenset({"751-8", "753-4", "26499-4"})
# Neutrophils/100 leukocytes in Blood: 770-8 automated (US Core example), 23761-0 manual (an
# HL7 v2 differential), 26511-6 unspecified. With a leukocyte count of the same specimen they
# give the ANC: percentage / 100 x WBC.
NEUTROPHIL_PERCENT_CODES = frozenset({"770-8", "23761-0", "26511-6"})
# Leukocytes [#/volume] in Blood: 6690-2 by automated count (LOINC's 58410-2 panel), 26464-8
# unspecified (LOINC's 24318-8 panel), 804-5 by manual count.
WBC_CODES = frozenset({"6690-2", "804-5", "26464-8"})
# Counts are also read from the components of any Observation (a CBC panel). The panels the
# prefetch asks for: 58410-2 "CBC panel - Blood by Automated count" (its LOINC page lists 6690-2
# and 777-3), 57021-8 "CBC W Auto Differential panel - Blood", 24318-8 "Manual Differential
# panel - Blood" (lists 26464-8).
CBC_PANEL_CODES = frozenset({"58410-2", "57021-8", "24318-8"})
PLATELET_CODES = frozenset({"777-3", "26515-7", "778-1"})
BILIRUBIN_CODES = frozenset({"1975-2", "14631-6"})
CREATININE_CODES = frozenset({"2160-0", "14682-9", "38483-4"})
CRCL_CODES = frozenset({"2164-2", "35591-7"})
EGFR_CODES = frozenset({"98979-8", "62238-1", "33914-3", "48642-3", "48643-1"})
WEIGHT_CODES = frozenset({"29463-7"})
PREGNANCY_STATUS_CODES = frozenset({"82810-3"})
PAIN_SCORE_CODES = frozenset({"72514-3"})
SNOMED_PREGNANT = "77386006"

# --- conditions and procedures (SNOMED, ICD-10-CM) ------------------------------------------
ESRD_SNOMED = frozenset({"46177005", "714152005", "105502003"})
ESRD_ICD10 = frozenset({"N18.6", "Z99.2"})
DIALYSIS_PROCEDURE_SNOMED = frozenset({"302497006", "71192002"})
PREGNANCY_CONDITION_SNOMED = frozenset({"77386006", "72892002"})  # pregnant; normal pregnancy
PREGNANCY_CONDITION_ICD10_PREFIXES = ("Z33",)  # pregnant state

# --- CTCAE toxicity terms and grades -------------------------------------------------------
CTCAE_GRADES = {"C41338": 1, "C41339": 2, "C41340": 3, "C41337": 4, "C48275": 5}
NEUROPATHY_TERMS = frozenset(
    {
        (NCIT, "C143752"),
        (NCIT, "C143750"),
        (MEDDRA, "10034620"),
        (SNOMED, "302226006"),
    }
)
RASH_TERMS = frozenset(
    {
        (NCIT, "C143799"),
        (MEDDRA, "10037868"),
        (SNOMED, "271807003"),
        (SNOMED, "247471006"),
    }
)
NEUROPATHIC_PAIN_TERMS = frozenset({(NCIT, "C143703"), (SNOMED, "247398009")})
# Hematologic toxicities are judged from the counts (the label's platelet and ANC rows), never
# as "other non-hematologic" (label 2.2, Table 3): read so, a Grade 3 "Lymphocyte count
# decreased" would hold ixazomib and a Grade 2 lymphopenia the new cycle; the label asks neither.
# Word stems matched in the term's text and displays, lower case; CTCAE names the blood terms
# by the count ("... count decreased"), MedDRA and clinicians by the condition ("-penia").
# No code set: the label reference lists no codes for these terms.
HEMATOLOGIC_WORDS = (
    "neutropeni",
    "neutrophil",
    "thrombocytopeni",
    "platelet",
    "anemi",
    "anaemi",
    "hemoglobin",
    "haemoglobin",
    "leukopeni",
    "leucopeni",
    "white blood cell",
    "lymphopeni",
    "lymphocyte",
    "pancytopeni",
    "cytopeni",  # bicytopenia, "cytopenia" alone
    "febrile",  # febrile neutropenia
)

__all__ = ["LOINC", "MEDDRA", "NCIT", "SNOMED"]
