"""The patient data the rules read, one entry per prefetch key.

Every rule declares the keys, codes and terms it reads (``decisions.label``), and the
registry checks at import that these templates ask for exactly those. Discovery advertises
these templates, the data-access layer fetches whatever the client did
not prefetch with exactly the same queries, and the engine reads ``PatientRecord.resources``
by these keys. STU2 prefetch tokens only: ``{{context.patientId}}``; no date tokens, so the
engine applies its own time windows.
"""

from __future__ import annotations

from cds_service.rules.inputs import DataNeed

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
MEDDRA = "http://terminology.hl7.org/CodeSystem/mdr"

# Panels with the counts as components: 58410-2 "CBC panel - Blood by Automated count" (its
# LOINC page lists 6690-2 and 777-3), 57021-8 "CBC W Auto Differential panel - Blood", 24318-8
# "Manual Differential panel - Blood" (lists 26464-8).
CBC_PANEL_CODES = ("58410-2", "57021-8", "24318-8")

# Labs and vital signs the label criteria read. Each rule declares the codes it reads
# (``decisions.label``); the registry checks at import that this list is exactly their union.
LAB_LOINC_CODES = (
    "751-8", "753-4", "26499-4",  # ANC
    "770-8", "23761-0", "26511-6", "6690-2", "804-5", "26464-8",  # neutrophil %, WBC
    *CBC_PANEL_CODES,
    "777-3", "26515-7", "778-1",  # platelets
    "1975-2", "14631-6",  # total bilirubin
    "2160-0", "14682-9", "38483-4",  # creatinine
    "2164-2", "35591-7",  # creatinine clearance
    "98979-8", "62238-1", "33914-3", "48642-3", "48643-1",  # eGFR (fallback only)
    "29463-7",  # body weight
    "82810-3",  # pregnancy status
    "72514-3",  # pain severity score
)  # fmt: skip

# CTCAE grade codes (NCI Thesaurus): Observations whose value is a grade, whatever the term.
CTCAE_GRADE_CODES = ("C41338", "C41339", "C41340", "C41337", "C48275")

# Toxicity terms the rules name, for Observations that carry the grade as an integer (checked
# against the rules' declared terms, as the LOINC codes are).
TOXICITY_TERMS = (
    (NCIT, "C143752"), (NCIT, "C143750"), (NCIT, "C143799"), (NCIT, "C143703"),
    (MEDDRA, "10034620"), (MEDDRA, "10037868"),
    (SNOMED, "302226006"), (SNOMED, "271807003"), (SNOMED, "247471006"), (SNOMED, "247398009"),
)  # fmt: skip

DIALYSIS_PROCEDURES = ("302497006", "71192002")


def _codes(system: str, codes: tuple[str, ...]) -> str:
    return ",".join(f"{system}|{code}" for code in codes)


PATIENT = "patient"
MEDICATION_REQUESTS = "medicationRequests"
LABS = "labs"
TOXICITY_GRADES = "toxicityGrades"
TOXICITY_TERM_OBSERVATIONS = "toxicityObservations"
ADVERSE_EVENTS = "adverseEvents"
CONDITIONS = "conditions"
PROCEDURES = "procedures"
ALLERGIES = "allergies"
# Not a prefetch key: where PatientRecord.unavailable says which medicationReferences (drafts'
# or recorded orders') could not be resolved.
MEDICATIONS = "medications"

_PATIENT = "{{context.patientId}}"

DATA_NEEDS: tuple[DataNeed, ...] = (
    DataNeed(
        PATIENT,
        "Patient",
        f"Patient/{_PATIENT}",
        required=True,
        description="age and sex for Cockcroft-Gault",
    ),
    DataNeed(
        MEDICATION_REQUESTS,
        "MedicationRequest",
        f"MedicationRequest?patient={_PATIENT}&_count=100",
        required=True,
        description="treatment history: ixazomib, lenalidomide, dexamethasone, CYP3A inducers",
    ),
    DataNeed(
        LABS,
        "Observation",
        # Codes without a system: a token search then matches the code in any system, and
        # laboratories send LOINC under its URL or its OID (urn:oid:2.16.840.1.113883.6.1).
        # The rules read only LOINC's codes of what comes back.
        f"Observation?patient={_PATIENT}&code={','.join(LAB_LOINC_CODES)}&_sort=-date&_count=200",
        required=True,
        description="ANC (or neutrophil % and WBC), platelets, CBC panels, bilirubin, creatinine, "
        "CrCl, weight, pregnancy, pain",
    ),
    DataNeed(
        TOXICITY_GRADES,
        "Observation",
        f"Observation?patient={_PATIENT}&value-concept={_codes(NCIT, CTCAE_GRADE_CODES)}"
        "&_count=100",
        required=False,
        description="CTCAE-graded toxicities recorded as Observations",
    ),
    DataNeed(
        TOXICITY_TERM_OBSERVATIONS,
        "Observation",
        f"Observation?patient={_PATIENT}&code="
        + ",".join(f"{system}|{code}" for system, code in TOXICITY_TERMS)
        + "&_count=100",
        required=False,
        description="neuropathy, rash and pain findings graded as integers",
    ),
    DataNeed(
        ADVERSE_EVENTS,
        "AdverseEvent",
        f"AdverseEvent?subject=Patient/{_PATIENT}&_count=100",
        required=False,
        description="adverse events with CTCAE grade",
    ),
    DataNeed(
        CONDITIONS,
        "Condition",
        f"Condition?patient={_PATIENT}&_count=100",
        required=False,
        description="end-stage renal disease, dialysis, pregnancy, neuropathic pain",
    ),
    DataNeed(
        PROCEDURES,
        "Procedure",
        f"Procedure?patient={_PATIENT}&code={_codes(SNOMED, DIALYSIS_PROCEDURES)}&_count=100",
        required=False,
        description="dialysis",
    ),
    DataNeed(
        ALLERGIES,
        "AllergyIntolerance",
        f"AllergyIntolerance?patient={_PATIENT}&_count=100",
        required=False,
        description="documented hypersensitivity to ixazomib",
    ),
)
