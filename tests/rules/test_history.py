"""Episodes since ixazomib started, the lenalidomide/ixazomib alternation, dose levels."""

from __future__ import annotations

from decimal import Decimal

import pytest

from .builders import (
    LENALIDOMIDE,
    anc,
    by_rule,
    lab_result,
    one,
    order,
    platelets,
    recommendation,
    record,
    rules_of,
    sign,
)

IXAZOMIB_ORDER = order(status="active", days_ago=200, dose=4, id="ixa")
LENALIDOMIDE_ORDER = order(code=LENALIDOMIDE, status="active", days_ago=200, dose=25, id="len")
HISTORY = [IXAZOMIB_ORDER, LENALIDOMIDE_ORDER]


def anc_episodes(count: int, first_day: int = 190) -> list[dict]:  # type: ignore[type-arg]
    """``count`` ANC < 500 episodes, each 10 days apart, each recovered 5 days later."""
    labs = []
    for index in range(count):
        day = first_day - 20 * index
        labs += [anc(400, day), anc(1500, day - 5)]
    return labs


def current_cbc() -> list[dict]:  # type: ignore[type-arg]
    return [anc(2000, 1), platelets(200000, 1)]


# (episodes, ixazomib advice, lenalidomide advice)
ALTERNATION = [
    (1, {"action": "resume", "doseMg": 4}, {"action": "reduce", "doseMg": 20}),
    (2, {"action": "reduce", "doseMg": 3}, {"action": "resume", "doseMg": 20}),
    (3, {"action": "resume", "doseMg": 3}, {"action": "reduce", "doseMg": 15}),
    (4, {"action": "reduce", "doseMg": Decimal("2.3")}, {"action": "resume", "doseMg": 15}),
    (5, {"action": "resume", "doseMg": Decimal("2.3")}, {"action": "reduce", "doseMg": 10}),
]


@pytest.mark.parametrize(("episodes", "ixazomib", "lenalidomide"), ALTERNATION)
def test_order_sign_after_recoveries_follows_the_alternation(
    episodes: int,
    ixazomib: dict,
    lenalidomide: dict,  # type: ignore[type-arg]
) -> None:
    rec = record(history=HISTORY, labs=anc_episodes(episodes) + current_cbc())
    cards = sign(order(dose=4), rec)
    card = one(cards, "anc-below-500")
    assert recommendation(card)["ixazomib"] == ixazomib
    assert recommendation(card)["lenalidomide"] == lenalidomide
    due = ixazomib["doseMg"]
    if ixazomib["action"] == "reduce":
        update = card["suggestions"][0]["actions"][0]["resource"]
        assert update["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == due
    elif due != 4:
        # The reduction owed by an earlier episode was never ordered: reduce now.
        dose_card = one(cards, "dose-level-due")
        assert recommendation(dose_card)["ixazomib"] == {"action": "reduce", "doseMg": due}
    else:
        assert "suggestions" not in card
        assert card["indicator"] == "info"


def test_sixth_episode_discontinues_ixazomib() -> None:
    rec = record(history=HISTORY, labs=anc_episodes(6) + current_cbc())
    card = one(sign(order(dose=4), rec), "anc-below-500")
    assert recommendation(card)["ixazomib"] == {"action": "discontinue"}
    assert card["indicator"] == "critical"
    assert card["suggestions"][0]["actions"][0]["type"] == "delete"


def test_orders_that_followed_the_advice_give_no_cards() -> None:
    history = [
        *HISTORY,
        order(status="active", days_ago=180, dose=4),  # after episode 1 (recovered day 185)
        order(code=LENALIDOMIDE, status="active", days_ago=180, dose=20),  # episode 1's step
        order(status="active", days_ago=160, dose=3),  # after episode 2 (recovered day 165)
    ]
    rec = record(history=history, labs=anc_episodes(2) + current_cbc())
    assert sign(order(dose=3), rec) == []


def test_a_lenalidomide_reduction_never_ordered_is_still_advised() -> None:
    """Episode 1's lenalidomide step came before the later ixazomib orders, but no
    lenalidomide order ever made it: the next ixazomib order still says so."""
    history = [
        *HISTORY,
        order(status="active", days_ago=180, dose=4),  # after episode 1 (recovered day 185)
    ]
    rec = record(history=history, labs=anc_episodes(1) + current_cbc())
    card = one(sign(order(dose=4), rec), "anc-below-500")
    assert recommendation(card)["ixazomib"] == {"action": "resume", "doseMg": 4}
    assert recommendation(card)["lenalidomide"] == {"action": "reduce", "doseMg": 20}


def test_a_higher_order_does_not_undo_a_required_reduction() -> None:
    history = [
        *HISTORY,
        order(status="completed", days_ago=160, dose=3),
        order(status="active", days_ago=140, dose=4),
    ]
    rec = record(history=history, labs=anc_episodes(2) + current_cbc())
    card = one(sign(order(dose=4), rec), "dose-level-due")
    assert recommendation(card)["ixazomib"] == {"action": "correct-dose", "doseMg": 3}


def test_patient_started_at_3_mg_has_one_reduction_left() -> None:
    history = [order(status="active", days_ago=200, dose=3), LENALIDOMIDE_ORDER]
    two = record(history=history, labs=anc_episodes(2) + current_cbc())
    card = one(sign(order(dose=3), two), "anc-below-500")
    assert recommendation(card)["ixazomib"] == {"action": "reduce", "doseMg": Decimal("2.3")}
    four = record(history=history, labs=anc_episodes(4) + current_cbc())
    card = one(sign(order(dose=3), four), "anc-below-500")
    assert recommendation(card)["ixazomib"] == {"action": "discontinue"}


def test_platelets_and_anc_alternate_separately() -> None:
    labs = [*anc_episodes(1), platelets(20000, 150), platelets(100000, 145), *current_cbc()]
    cards = sign(order(dose=4), record(history=HISTORY, labs=labs))
    for rule in ("anc-below-500", "platelets-below-30k"):
        assert recommendation(one(cards, rule))["ixazomib"]["action"] == "resume"


def test_lows_before_ixazomib_started_do_not_count() -> None:
    labs = [anc(400, 300), anc(1500, 290), *current_cbc()]
    assert sign(order(dose=4), record(history=HISTORY, labs=labs)) == []


def test_entered_in_error_history_is_ignored() -> None:
    history = [order(status="entered-in-error", days_ago=200, dose=3), *HISTORY]
    assert sign(order(dose=4), record(history=history)) == []


# --- lab-result hook -------------------------------------------------------------------------


def test_lab_hook_new_low_count_holds_the_active_orders() -> None:
    new = anc(450, 0, id="new")
    cards = lab_result([new], record(history=HISTORY, labs=current_cbc()))
    card = one(cards, "anc-below-500")
    assert recommendation(card)["ixazomib"] == {"action": "hold"}
    actions = card["suggestions"][0]["actions"]
    assert {a["resource"]["id"] for a in actions} == {"ixa", "len"}
    assert all(a["type"] == "update" and a["resource"]["status"] == "on-hold" for a in actions)
    assert actions[0]["resource"]["dosageInstruction"] == IXAZOMIB_ORDER["dosageInstruction"]


def test_lab_hook_normal_count_says_nothing() -> None:
    assert lab_result([anc(2500, 0)], record(history=HISTORY, labs=current_cbc())) == []


def test_lab_hook_without_ixazomib_history_says_nothing() -> None:
    assert lab_result([anc(100, 0)], record(history=[LENALIDOMIDE_ORDER])) == []


def test_lab_hook_first_recovery_reduces_lenalidomide() -> None:
    labs = [anc(400, 5)]
    card = one(lab_result([anc(600, 0)], record(history=HISTORY, labs=labs)), "anc-below-500")
    assert recommendation(card)["ixazomib"] == {"action": "resume", "doseMg": 4}
    assert recommendation(card)["lenalidomide"] == {"action": "reduce", "doseMg": 20}


def test_lab_hook_second_recovery_reduces_ixazomib() -> None:
    labs = [*anc_episodes(1), anc(300, 5)]
    card = one(lab_result([anc(500, 0)], record(history=HISTORY, labs=labs)), "anc-below-500")
    assert recommendation(card)["ixazomib"] == {"action": "reduce", "doseMg": 3}
    assert recommendation(card)["lenalidomide"] == {"action": "resume", "doseMg": 20}


def test_lab_hook_recovery_below_2_3_mg_discontinues() -> None:
    history = [order(status="active", days_ago=200, dose="2.3"), LENALIDOMIDE_ORDER]
    labs = [*anc_episodes(1), platelets(20000, 5), platelets(25000, 2)]
    cards = lab_result([platelets(40000, 0)], record(history=history, labs=labs))
    assert rules_of(cards) == ["platelets-below-30k"]
    # platelets episode 1 -> lenalidomide; ANC had its own first episode
    assert recommendation(cards[0])["lenalidomide"]["action"] == "reduce"
    labs = [*anc_episodes(1), anc(300, 5)]
    card = one(lab_result([anc(900, 0)], record(history=history, labs=labs)), "anc-below-500")
    assert recommendation(card)["ixazomib"] == {"action": "discontinue"}
    assert card["indicator"] == "critical"


def test_lab_hook_still_low_repeats_the_hold() -> None:
    cards = lab_result([anc(350, 0)], record(history=HISTORY, labs=[anc(400, 3)]))
    assert len(by_rule(cards, "anc-below-500")) == 1


def test_lab_hook_new_count_in_an_unknown_unit_is_reported() -> None:
    new = anc(450, 0, id="odd")
    new["valueQuantity"] = {"value": Decimal("0.45"), "unit": "G/dL"}
    cards = lab_result([new], record(history=HISTORY, labs=current_cbc()))
    card = one(cards, "data-uninterpretable")
    assert "Observation/odd" in card["detail"]
    assert "G/dL" in card["detail"]


def test_lab_hook_ignores_problems_in_old_results() -> None:
    old = anc(450, 30, id="old")
    old["valueQuantity"] = {"value": Decimal("0.45"), "unit": "G/dL"}
    assert lab_result([anc(2500, 0)], record(history=HISTORY, labs=[old])) == []
