"""The rule registry: one module per rule, checked at import, and what the decisions take
from it. The last tests register a rule that is not in the label (Grade 3 diarrhoea as its own
row; the label covers it under "other non-hematologic") to show that one module and one
registry entry are all a new row needs: its hold, the reduction its recovery owes and its
documentation follow from the declaration."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import ModuleType

import pytest

from cds_service.rules import RULES, data_needs
from cds_service.rules.decisions import shared
from cds_service.rules.decisions.episodes import Step, toxicity_episodes
from cds_service.rules.decisions.label import registry
from cds_service.rules.decisions.label.rule import Now, Recovery, ToxicityRow
from cds_service.rules.decisions.model import Action, Decision, DrugAdvice, Indicator, Suggest
from cds_service.rules.docs import generate
from cds_service.rules.facts import Drug, Facts
from cds_service.rules.facts.clinical import Toxicity

from .builders import DIARRHEA, adverse_event, by_rule, one, order, recommendation, record, sign


def test_every_rule_is_one_module_of_the_registry() -> None:
    assert [module.RULE for module in registry.MODULES] == list(RULES)
    assert {rule.id for rule in registry.TABLE3} == {
        "platelets-below-30k",
        "anc-below-500",
        "rash-grade-2-3",
        "rash-grade-4",
        "neuropathy-grade-1-pain-or-2",
        "neuropathy-grade-2-pain-or-3",
        "neuropathy-grade-4",
        "other-toxicity-grade-3-4",
    }
    assert {rule.id for rule in registry.START_DOSE_RULES} == {
        "hepatic-start-dose",
        "renal-start-dose",
    }


def test_a_misspelt_rule_id_is_refused() -> None:
    assert registry.rule_id("other-toxicity-grade-3-4") == "other-toxicity-grade-3-4"
    with pytest.raises(ValueError, match="other-toxicity-grade-34"):
        registry.rule_id("other-toxicity-grade-34")


def test_a_module_must_be_named_after_its_rule() -> None:
    module = ModuleType("cds_service.rules.decisions.label.rash_grade_2_3")
    module.RULE = registry.RULES_BY_ID["rash-grade-4"]  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="name it after its id"):
        registry._rules((module,))


def test_two_rules_with_one_id_are_refused() -> None:
    with pytest.raises(ValueError, match="not unique"):
        registry._rules(registry.MODULES + registry.MODULES[:1])


def test_the_prefetch_asks_for_exactly_what_the_rules_read() -> None:
    data_needs.check_keys(RULES, data_needs.DATA_NEEDS)  # as at import
    without_renal = tuple(r for r in RULES if r.id != "renal-start-dose")
    # Only the renal rule reads the Patient (age, sex) and dialysis Procedures: without it the
    # templates ask for keys no rule reads.
    with pytest.raises(ValueError, match="patient"):
        data_needs.check_keys(without_renal, data_needs.DATA_NEEDS)
    # The codes are derived: without the pregnancy rule no template asks for pregnancy status.
    labs = {need.key: need.query for need in data_needs.data_needs_of(RULES)}["labs"]
    assert "82810-3" in labs
    partial = {
        need.key: need.query
        for need in data_needs.data_needs_of(tuple(r for r in RULES if r.id != "pregnancy"))
    }
    assert "82810-3" not in partial["labs"]
    assert "82810-3" in data_needs.LAB_LOINC_CODES


# --- a row registered in the test ------------------------------------------------------------


def _diarrhoea(now: Now) -> list[Decision]:
    window = now.settings.pain_score_max_age
    episodes = shared.open_episodes(now.facts, Toxicity.OTHER, 3, now.course, window)
    return [
        Decision(
            rule=DIARRHOEA.id,
            indicator=Indicator.CRITICAL,
            summary=f"Grade {e.worst_grade} diarrhoea: withhold ixazomib",
            ixazomib=DrugAdvice(Action.HOLD),
            evidence=shared.episode_lines(e, now.zone),
            suggest=Suggest.DELETE_DRAFT,
            targets=tuple(now.drafts),
        )
        for e in episodes
        if "diarrh" in e.term.lower()
    ]


def _diarrhoea_recoveries(facts: Facts, started: datetime, window: timedelta) -> list[Step]:
    return [
        Step(e.ended, e.started, DIARRHOEA.id, Drug.IXAZOMIB, "diarrhoea resolved", e.number)
        for e in toxicity_episodes(facts, Toxicity.OTHER, 3, started, window)
        if e.ended is not None and "diarrh" in e.term.lower()
    ]


DIARRHOEA = ToxicityRow(
    id="diarrhoea-grade-3",
    section="2.2 (Table 3), test only",
    reads="diarrhoea Grade 3 since ixazomib started",
    label_text="Diarrhoea Grade 3: withhold ixazomib; resume one level lower.",
    holds_now=True,
    on_recovery=Recovery.IXAZOMIB_LOWER,
    step_name="diarrhoea Grade 3",
    toxicity=Toxicity.OTHER,
    decide=_diarrhoea,
    recoveries=_diarrhoea_recoveries,
)


@pytest.fixture
def with_diarrhoea_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry line: listed before the row it narrows, as rows of one toxicity are."""
    rows = registry.TOXICITY_ROWS
    monkeypatch.setattr(registry, "TOXICITY_ROWS", (DIARRHOEA, *rows))
    monkeypatch.setattr(registry, "TABLE3", (*registry.TABLE3, DIARRHOEA))
    monkeypatch.setattr(registry, "RULES", (*registry.RULES, DIARRHOEA))
    monkeypatch.setitem(registry.RULES_BY_ID, DIARRHOEA.id, DIARRHOEA)


HISTORY = [
    order(status="active", days_ago=100, dose=4, id="ixa"),
    order(code="342369", status="active", days_ago=100, dose=25),
]


def _sign(*events: dict) -> list[dict]:  # type: ignore[type-arg]
    return sign(order(dose=4, id="draft"), record(history=HISTORY, adverseEvents=list(events)))


@pytest.mark.usefixtures("with_diarrhoea_row")
def test_a_registered_row_holds_now() -> None:
    cards = _sign(adverse_event(DIARRHEA, 3))
    card = one(cards, "diarrhoea-grade-3")
    assert recommendation(card)["ixazomib"] == {"action": "hold"}
    assert card["indicator"] == "critical"
    assert "section 2.2 (Table 3), test only" in card["source"]["label"]
    # It decided for the toxicity: the general row does not add a second hold.
    assert by_rule(cards, "other-toxicity-grade-3-4") == []


@pytest.mark.usefixtures("with_diarrhoea_row")
def test_a_registered_row_owes_its_reduction_on_recovery() -> None:
    cards = _sign(adverse_event(DIARRHEA, 3, days_ago=10, outcome="resolved"))
    card = one(cards, "diarrhoea-grade-3")
    assert recommendation(card)["ixazomib"] == {"action": "reduce", "doseMg": 3}
    assert "After diarrhoea Grade 3: ixazomib 3 mg" in card["summary"]


@pytest.mark.usefixtures("with_diarrhoea_row")
def test_a_registered_row_is_documented() -> None:
    docs = generate()
    assert "| `diarrhoea-grade-3` | 2.2 (Table 3), test only |" in docs
    assert "| `diarrhoea-grade-3` | yes | resume ixazomib one dose level lower |" in docs


def test_without_the_row_diarrhoea_is_an_other_toxicity() -> None:
    cards = _sign(adverse_event(DIARRHEA, 3))
    assert recommendation(one(cards, "other-toxicity-grade-3-4"))["ixazomib"] == {"action": "hold"}
    assert by_rule(cards, "diarrhoea-grade-3") == []
