"""docs/rules.md is generated from the rule table and must not drift from it."""

from __future__ import annotations

from pathlib import Path

from cds_service.rules import RULES
from cds_service.rules.docs import generate

DOCS = Path(__file__).resolve().parents[2] / "docs" / "rules.md"

STABLE_IDS = {
    "hepatic-start-dose",
    "renal-start-dose",
    "platelets-below-30k",
    "anc-below-500",
    "new-cycle-gate",
    "rash-grade-2-3",
    "rash-grade-4",
    "neuropathy-grade-1-pain-or-2",
    "neuropathy-grade-2-pain-or-3",
    "neuropathy-grade-4",
    "other-toxicity-grade-3-4",
    "overdose",
    "dose-not-labelled",
    "dose-level-due",
    "strong-cyp3a-inducer",
    "pregnancy",
    "hypersensitivity",
    "cbc-missing",
    "data-uninterpretable",
    "data-unavailable",
    "severity-without-grade",
}


def test_docs_match_the_rule_table() -> None:
    assert DOCS.read_text() == generate(), "run: python -m cds_service.rules.docs > docs/rules.md"


def test_rule_ids_are_the_stable_ones() -> None:
    assert {rule.id for rule in RULES} == STABLE_IDS
    assert len(RULES) == len(STABLE_IDS)
