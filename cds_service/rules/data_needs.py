"""The patient data the rules read, one entry per prefetch key, derived from the rules.

Every rule declares the keys, LOINC codes and toxicity terms it reads (``decisions.label``);
the templates below ask for exactly those: the labs query for the union of the rules' LOINC
codes, the toxicity-term query for the union of their terms, and no key that no rule reads (a
key a rule reads that no template asks for fails at import). Discovery advertises these
templates, the data-access layer fetches whatever the client did not prefetch with exactly the
same queries, and the engine reads ``PatientRecord.resources`` by these keys
(``prefetch_keys``). STU2 prefetch tokens only: ``{{context.patientId}}``; no date tokens, so
the engine applies its own time windows.
"""

from __future__ import annotations

from cds_service.rules.codes import NCIT, SNOMED
from cds_service.rules.decisions.label.registry import RULES
from cds_service.rules.decisions.label.rule import LabelRule
from cds_service.rules.inputs import DataNeed
from cds_service.rules.prefetch_keys import (
    ADVERSE_EVENTS,
    ALLERGIES,
    CONDITIONS,
    DESCRIPTIONS,
    LABS,
    MEDICATION_REQUESTS,
    PATIENT,
    PROCEDURES,
    TOXICITY_GRADES,
    TOXICITY_TERM_OBSERVATIONS,
)

# CTCAE grade codes (NCI Thesaurus): Observations whose value is a grade, whatever the term.
CTCAE_GRADE_CODES = ("C41338", "C41339", "C41340", "C41337", "C48275")
DIALYSIS_PROCEDURES = ("302497006", "71192002")

_PATIENT = "{{context.patientId}}"


def _codes(system: str, codes: tuple[str, ...]) -> str:
    return ",".join(f"{system}|{code}" for code in codes)


def _need(key: str, resource_type: str, query: str, *, required: bool) -> DataNeed:
    return DataNeed(key, resource_type, query, required=required, description=DESCRIPTIONS[key])


def loinc_codes_of(rules: tuple[LabelRule, ...]) -> tuple[str, ...]:
    """The LOINC codes ``rules`` read, in a fixed order (a client compares templates as text)."""
    return tuple(sorted({code for rule in rules for code in rule.loinc}))


def data_needs_of(rules: tuple[LabelRule, ...]) -> tuple[DataNeed, ...]:
    """The templates that ask for what ``rules`` read: the labs query for the union of their
    LOINC codes, the toxicity-term query for the union of their terms."""
    loinc = loinc_codes_of(rules)
    terms = sorted({term for rule in rules for term in rule.terms})
    return (
        _need(PATIENT, "Patient", f"Patient/{_PATIENT}", required=True),
        _need(
            MEDICATION_REQUESTS,
            "MedicationRequest",
            f"MedicationRequest?patient={_PATIENT}&_count=100",
            required=True,
        ),
        _need(
            LABS,
            "Observation",
            # Codes without a system: a token search then matches the code in any system, and
            # laboratories send LOINC under its URL or its OID (urn:oid:2.16.840.1.113883.6.1).
            # The rules read only LOINC's codes of what comes back.
            f"Observation?patient={_PATIENT}&code={','.join(loinc)}&_sort=-date&_count=200",
            required=True,
        ),
        _need(
            TOXICITY_GRADES,
            "Observation",
            f"Observation?patient={_PATIENT}&value-concept={_codes(NCIT, CTCAE_GRADE_CODES)}"
            "&_count=100",
            required=False,
        ),
        _need(
            TOXICITY_TERM_OBSERVATIONS,
            "Observation",
            f"Observation?patient={_PATIENT}&code="
            + ",".join(f"{system}|{code}" for system, code in terms)
            + "&_count=100",
            required=False,
        ),
        _need(
            ADVERSE_EVENTS,
            "AdverseEvent",
            f"AdverseEvent?subject=Patient/{_PATIENT}&_count=100",
            required=False,
        ),
        _need(CONDITIONS, "Condition", f"Condition?patient={_PATIENT}&_count=100", required=False),
        _need(
            PROCEDURES,
            "Procedure",
            f"Procedure?patient={_PATIENT}&code={_codes(SNOMED, DIALYSIS_PROCEDURES)}&_count=100",
            required=False,
        ),
        _need(
            ALLERGIES,
            "AllergyIntolerance",
            f"AllergyIntolerance?patient={_PATIENT}&_count=100",
            required=False,
        ),
    )


DATA_NEEDS = data_needs_of(RULES)
LAB_LOINC_CODES = loinc_codes_of(RULES)


def check_keys(rules: tuple[LabelRule, ...], needs: tuple[DataNeed, ...]) -> None:
    """Every key a template asks for is read by a rule, and every key a rule reads is asked
    for: a typo in a rule's ``needs`` fails at import, not when a card is rendered."""
    keys = {need.key for need in needs}
    declared = {key for rule in rules for key in rule.needs}
    if declared != keys:
        raise ValueError(
            f"prefetch keys no rule reads: {sorted(keys - declared)}; "
            f"keys rules read that no template asks for: {sorted(declared - keys)}"
        )


check_keys(RULES, DATA_NEEDS)
