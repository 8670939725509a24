"""The rule table: every label criterion the engine applies, in one place.

``docs/rules.md`` is generated from this table (``python -m cds_service.rules.docs``) and a test
checks the committed file against it, so the documentation cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass

# The "section" of a check of the data the rules need rather than of a label row.
DATA_CHECK = "-"


@dataclass(frozen=True)
class Rule:
    id: str  # stable: recommendation.rule on the cards, used by tests and analytics
    section: str  # label section cited on the card
    inputs: str  # the data the rule reads
    outcome: str  # what the card advises (our wording of the label fact)


RULES: tuple[Rule, ...] = (
    Rule(
        "overdose",
        "2.1 and 10 (Overdosage)",
        "draft ixazomib order: dose (mg), frequency (timing)",
        "More than 4 mg in a week or more than one dose a week: critical; correct the order to "
        "the dose due, once weekly.",
    ),
    Rule(
        "dose-not-labelled",
        "2.1, 2.2 (Table 2), 3 (capsule strengths)",
        "draft ixazomib order: dose (mg), capsule strength of the product code, dose count",
        "A dose that is not 4, 3 or 2.3 mg, or one ordered as a capsule of another strength, "
        "cannot be given as one capsule: correct it to the dose due. More than 3 weekly doses "
        "in a row skips the week off (days 1, 8, 15 of 28): correct the schedule.",
    ),
    Rule(
        "pregnancy",
        "5 (Embryo-fetal toxicity), 8.1; lenalidomide label",
        "Observation 82810-3 = pregnant; active pregnancy Condition",
        "Pregnancy: stop the regimen (ixazomib is embryo-fetal toxic; lenalidomide is "
        "contraindicated).",
    ),
    Rule(
        "rash-grade-4",
        "2.2 (Table 3)",
        "rash Grade 4 (AdverseEvent/Observation), now or at any time since ixazomib started",
        "Rash Grade 4: discontinue the regimen (also when it has since improved).",
    ),
    Rule(
        "neuropathy-grade-4",
        "2.2 (Table 3)",
        "peripheral neuropathy Grade 4, now or at any time since ixazomib started",
        "Peripheral neuropathy Grade 4: discontinue the regimen (also when it has since improved).",
    ),
    Rule(
        "platelets-below-30k",
        "2.2 (Table 3)",
        "platelet counts since ixazomib started; ixazomib and lenalidomide dose history",
        "Platelets < 30,000/mm3: withhold ixazomib and lenalidomide until >= 30,000/mm3. On "
        "recovery after the first episode reduce lenalidomide one level and resume ixazomib "
        "at its most recent dose; after the second reduce ixazomib one level and resume "
        "lenalidomide; then alternate. Below 2.3 mg: discontinue ixazomib.",
    ),
    Rule(
        "anc-below-500",
        "2.2 (Table 3)",
        "ANC since ixazomib started; ixazomib and lenalidomide dose history",
        "ANC < 500/mm3: withhold ixazomib and lenalidomide until ANC >= 500/mm3 (consider "
        "G-CSF). On recovery after the first episode reduce lenalidomide one level and resume "
        "ixazomib at its most recent dose; after the second reduce ixazomib one level and "
        "resume lenalidomide; then alternate. Below 2.3 mg: discontinue ixazomib.",
    ),
    Rule(
        "new-cycle-gate",
        "2.2",
        "latest ANC and platelets before a new cycle (draft order); ongoing Grade 2 "
        "non-hematologic toxicities that no Table 3 row covers",
        "A new cycle waits until ANC >= 1,000/mm3 and platelets >= 75,000/mm3 (hold); a Grade 2 "
        "non-hematologic toxicity not yet back to Grade 1 or baseline: review (prescriber's "
        "discretion).",
    ),
    Rule(
        "rash-grade-2-3",
        "2.2 (Table 3)",
        "rash Grade 2 or 3 since ixazomib started",
        "Rash Grade 2-3: first occurrence withhold lenalidomide until <= Grade 1, then "
        "reduce it one level; on recurrence withhold both, then reduce ixazomib one level "
        "and resume lenalidomide; then alternate.",
    ),
    Rule(
        "neuropathy-grade-1-pain-or-2",
        "2.2 (Table 3)",
        "peripheral neuropathy grade; concurrent neuropathic pain or pain score > 0",
        "Peripheral neuropathy Grade 1 with pain or Grade 2: withhold ixazomib until <= Grade "
        "1 without pain, then resume at the most recent dose.",
    ),
    Rule(
        "neuropathy-grade-2-pain-or-3",
        "2.2 (Table 3)",
        "peripheral neuropathy grade; concurrent neuropathic pain or pain score > 0",
        "Peripheral neuropathy Grade 2 with pain or Grade 3: withhold ixazomib until <= Grade "
        "1, then resume one dose level lower.",
    ),
    Rule(
        "other-toxicity-grade-3-4",
        "2.2 (Table 3)",
        "other non-hematologic adverse events Grade 3-4; attribution to ixazomib",
        "Other non-hematologic toxicity Grade 3-4: withhold ixazomib until <= Grade 1; if "
        "attributable to ixazomib, resume one dose level lower. Resolved with no attribution "
        "recorded: review (the attribution decides the dose).",
    ),
    Rule(
        "hepatic-start-dose",
        "2.4, 8.6",
        "no prior ixazomib; latest total bilirubin and its ULN (referenceRange.high)",
        "Starting ixazomib with total bilirubin > 1.5 x ULN (moderate or severe hepatic "
        "impairment): start at 3 mg.",
    ),
    Rule(
        "renal-start-dose",
        "2.5, 8.7",
        "no prior ixazomib; CrCl (measured, reported or Cockcroft-Gault: creatinine, weight, "
        "age, sex; eGFR as fallback); ESRD/dialysis Condition or Procedure",
        "Starting ixazomib with CrCl < 30 mL/min or ESRD on dialysis: start at 3 mg.",
    ),
    Rule(
        "dose-level-due",
        "2.2 (Table 2)",
        "draft ixazomib dose; ixazomib order history; reductions owed by earlier toxicities",
        "The draft dose differs from the dose level the history makes due (4 -> 3 -> 2.3 mg; "
        "levels only go down): reduce or correct it to that level.",
    ),
    Rule(
        "strong-cyp3a-inducer",
        "7.1 (Strong CYP3A inducers)",
        "active MedicationRequests",
        "Avoid strong CYP3A inducers with ixazomib (rifampin lowered exposure by about 74%): "
        "review.",
    ),
    Rule(
        "hypersensitivity",
        "4 (no US contraindication; EU SmPC 4.3)",
        "AllergyIntolerance to ixazomib",
        "Documented hypersensitivity to ixazomib: review before giving it.",
    ),
    Rule(
        "cbc-missing",
        "2.2, 5.1 (Thrombocytopenia)",
        "ANC and platelets within the CBC window",
        "No ANC or platelet count recent enough to check the hold and new-cycle criteria: review.",
    ),
    Rule(
        "data-uninterpretable",
        DATA_CHECK,
        "any resource a rule read: units, values, malformed resources",
        "A value the service cannot read exactly (unit, dose, malformed resource) is named, "
        "never guessed: review.",
    ),
    Rule(
        "data-unavailable",
        DATA_CHECK,
        "PatientRecord.unavailable, PatientRecord.left_out; the medication of a draft order",
        "Data a check needs is not available (the card says which, and why), or the FHIR "
        "server answered another patient's data (left out); the checks that needed it were "
        "not made: review.",
    ),
    Rule(
        "severity-without-grade",
        "2.2 (Table 3; CTCAE v4.03)",
        "AdverseEvent with severity (mild/moderate/severe) but no CTCAE grade",
        "A toxicity without a CTCAE grade cannot be matched to Table 3: record the grade.",
    ),
)

RULES_BY_ID = {rule.id: rule for rule in RULES}
