"""The prefetch keys: the names the record's parts are asked for by (``data_needs``) and read
by (``PatientRecord.resources``), with what each holds, for the cards that say one is missing."""

from __future__ import annotations

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

DESCRIPTIONS = {
    PATIENT: "age and sex for Cockcroft-Gault",
    MEDICATION_REQUESTS: "treatment history: ixazomib, lenalidomide, dexamethasone, CYP3A inducers",
    LABS: "ANC (or neutrophil % and WBC), platelets, CBC panels, bilirubin, creatinine, CrCl, "
    "weight, pregnancy, pain",
    TOXICITY_GRADES: "CTCAE-graded toxicities recorded as Observations",
    TOXICITY_TERM_OBSERVATIONS: "neuropathy, rash and pain findings graded as integers",
    ADVERSE_EVENTS: "adverse events with CTCAE grade",
    CONDITIONS: "end-stage renal disease, dialysis, pregnancy, neuropathic pain",
    PROCEDURES: "dialysis",
    ALLERGIES: "documented hypersensitivity to ixazomib",
}
