"""How ixazomib is taken (label section 2.1): the one statement of it in the service.

Every suggestion that writes an ixazomib order carries them (``cards.with_dose`` calls
``with_label_instructions``), so that the dose a pharmacist verifies and the patient takes
arrives with how to take it; a card shows them with ``markdown()``, and
``PATIENT_INSTRUCTION`` / ``INSTRUCTIONS`` are the same text for any other use.

Coded where a SNOMED CT concept of the FHIR R4 value set "SNOMED CT Additional Dosage
Instructions" (http://hl7.org/fhir/ValueSet/additional-instruction-codes, descendants of
419492006) says the same thing; the rest have no such concept and are text only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cds_service.rules.codes import SNOMED
from cds_service.rules.inputs import JsonDict

LABEL_SECTION = "2.1"
# Some EHRs name SNOMED CT by its OID; a code sent that way is still the same instruction.
_SNOMED_SYSTEMS = frozenset({SNOMED, "urn:oid:2.16.840.1.113883.6.96"})


@dataclass(frozen=True)
class Instruction:
    text: str  # what the patient reads
    # (code, display) of the additional-instruction concept that says this, where one does.
    snomed: tuple[str, str] | None = None


INSTRUCTIONS: tuple[Instruction, ...] = (
    Instruction(
        "Swallow the capsule whole with water; do not crush, chew or open it.",
        ("418693002", "Swallowed whole, not chewed"),
    ),
    Instruction(
        "Take it on an empty stomach: at least 1 hour before or at least 2 hours after food.",
        ("717154004", "Take on an empty stomach"),
    ),
    # Not coded: 311501008 "Half to one hour before food" is narrower than the label's rule.
    Instruction(
        "On a day you also take dexamethasone, do not take the two at the same time: "
        "dexamethasone is taken with food."
    ),
    Instruction("Take each dose on the same day of the week, at about the same time."),
    Instruction(
        "If a dose is missed or delayed, take it only if the next scheduled dose is at least "
        "72 hours away; never take a double dose to make up for it."
    ),
    Instruction(
        "If you vomit after taking a dose, do not take another; take the next dose when it is due."
    ),
)
PATIENT_INSTRUCTION = " ".join(instruction.text for instruction in INSTRUCTIONS)


def additional_instructions() -> list[JsonDict]:
    """The coded instructions as FHIR CodeableConcepts (fresh objects: callers may edit them)."""
    return [
        {
            "coding": [{"system": SNOMED, "code": code, "display": display}],
            "text": instruction.text,
        }
        for instruction in INSTRUCTIONS
        if instruction.snomed is not None
        for code, display in [instruction.snomed]
    ]


def markdown() -> str:
    """The instructions as a card's Markdown detail shows them, citing the label section."""
    lines = [f"**How to take ixazomib (label, section {LABEL_SECTION}):**"]
    return "\n".join([*lines, *(f"- {instruction.text}" for instruction in INSTRUCTIONS)])


def with_label_instructions(dosage: JsonDict) -> None:
    """Add the label's instructions to one FHIR Dosage, in place, keeping the prescriber's.

    The prescriber's own ``patientInstruction`` stays first and the label's text follows it; a
    coded instruction the dosage already has (same SNOMED CT code, or the same words) is not
    added twice, so applying the suggestion to an order that carries them changes nothing."""
    own = dosage.get("patientInstruction")
    if not isinstance(own, str) or not own.strip():
        dosage["patientInstruction"] = PATIENT_INSTRUCTION
    elif PATIENT_INSTRUCTION not in own:
        dosage["patientInstruction"] = f"{own.rstrip()}\n{PATIENT_INSTRUCTION}"

    extra = dosage.get("additionalInstruction")
    # An entry that is not a CodeableConcept would make the update invalid FHIR: it goes.
    present = [c for c in extra if isinstance(c, dict)] if isinstance(extra, list) else []
    added = [c for c in additional_instructions() if not any(_same(c, p) for p in present)]
    dosage["additionalInstruction"] = [*present, *added]  # never empty: the label's are in it


def _same(label: JsonDict, present: JsonDict) -> bool:
    """Does a concept the dosage has already say what the label's concept says: the same
    SNOMED CT code, or words that begin with the concept's display or the label's sentence
    ("Take on an empty stomach, 1 hour before food" is the empty-stomach instruction; "Do not
    take on an empty stomach" is not, and the label's then stands beside it for all to see)?"""
    (coding,) = label["coding"]
    codings = [c for c in present.get("coding") or [] if isinstance(c, dict)]
    if any(c.get("system") in _SNOMED_SYSTEMS and c.get("code") == coding["code"] for c in codings):
        return True
    said = [_words(present.get("text")), *(_words(c.get("display")) for c in codings)]
    wanted = (_words(coding["display"]), _words(label["text"]))
    return any(words.startswith(phrase) for words in said for phrase in wanted)


def _words(text: object) -> str:
    """Lower case, single spaces, no punctuation: how two wordings are compared."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower())) if isinstance(text, str) else ""
