"""The pharmacy-committee report: numbers from a small audited data set, and its text."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pg import PgServer, shared_postgres, stop_shared_postgres

from cds_service.store import Store, open_store
from cds_service.store.models import CardAudit, FeedbackItem, RuleStats
from cds_service.store.report import format_report

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOLD = "ixazomib.platelets-lt-30.hold"
REDUCE = "ixazomib.anc-recovered.reduce"
HEPATIC = "ixazomib.hepatic.start-reduced"
REASONS = "http://ixazomib-cds.org/override-reasons"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    yield shared_postgres()
    stop_shared_postgres()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/cds.sqlite3"
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        url = server.create_schema()
    store = open_store(url)
    store.migrate()
    yield store
    store.close()


def audited(card_uuid: str, rule: str, day: int = 0) -> CardAudit:
    return CardAudit(
        hook_instance=f"hook-{card_uuid}",
        service_id="ixazomib-order-sign",
        rule=rule,
        recommendation={"rule": rule},
        card_uuid=card_uuid,
        suggestion_uuids=(f"{card_uuid}-s",),
        indicator="warning",
        summary="advice",
        served_at=T0 + timedelta(days=day),
        patient_ref=None,
    )


def override(card_uuid: str, code: str, display: str, minutes: int = 5) -> FeedbackItem:
    return FeedbackItem(
        card_uuid=card_uuid,
        outcome="overridden",
        outcome_timestamp=T0 + timedelta(minutes=minutes),
        override_reason_system=REASONS,
        override_reason_code=code,
        override_reason_display=display,
        user_comment="free text the report never shows",
    )


def accept(card_uuid: str, minutes: int = 5) -> FeedbackItem:
    return FeedbackItem(
        card_uuid=card_uuid,
        outcome="accepted",
        outcome_timestamp=T0 + timedelta(minutes=minutes),
        accepted_suggestion_ids=(f"{card_uuid}-s",),
    )


def load_month(store: Store) -> None:
    """A month of a small clinic: 10 hold cards, 4 reduce cards, 2 hepatic cards."""
    store.record_cards(
        [audited(f"hold-{n}", HOLD, day=n) for n in range(10)]
        + [audited(f"reduce-{n}", REDUCE, day=n) for n in range(4)]
        + [audited(f"hep-{n}", HEPATIC) for n in range(2)]
    )
    feedback = [accept(f"hold-{n}") for n in range(6)]
    feedback += [
        override("hold-6", "aware", "Prescriber already aware"),
        override("hold-7", "aware", "Prescriber already aware"),
        override("hold-8", "lab-error", "Lab value believed erroneous"),
        # reduce-0: overridden first, then accepted: counts as accepted
        override("reduce-0", "aware", "Prescriber already aware", minutes=1),
        accept("reduce-0", minutes=9),
        override("reduce-1", "aware", "Prescriber already aware"),
        override("reduce-2", "palliative", "Palliative intent"),
        override("reduce-3", "other", "Other"),
        accept("hep-0"),
        accept("hep-1"),
        accept("card-from-before-the-audit-existed"),
    ]
    store.record_feedback("ixazomib-order-sign", feedback)
    store.record_feedback("ixazomib-order-sign", feedback)  # the EHR retried: no change


def test_report_numbers_for_a_month(store: Store) -> None:
    load_month(store)
    assert store.rule_report() == [
        RuleStats(REDUCE, shown=4, accepted=1, overridden=3, override_reasons=[
            ("Other", 1), ("Palliative intent", 1), ("Prescriber already aware", 1)]),
        RuleStats(HEPATIC, shown=2, accepted=2, overridden=0, override_reasons=[]),
        RuleStats(HOLD, shown=10, accepted=6, overridden=3, override_reasons=[
            ("Prescriber already aware", 2), ("Lab value believed erroneous", 1)]),
        RuleStats("unknown", shown=0, accepted=1, overridden=0, override_reasons=[]),
    ]
    # Only the last 5 days' cards: hold-5..9 and no reduce or hepatic card.
    recent = store.rule_report(since=T0 + timedelta(days=5))
    assert [(s.rule, s.shown, s.accepted, s.overridden) for s in recent] == [
        (HOLD, 5, 1, 3),
    ]


def test_report_text_for_a_month(store: Store) -> None:
    load_month(store)
    text = format_report(store.rule_report())
    table = text.split("\n\n")[1]
    assert table.splitlines() == [
        "Rule                            Shown  Accepted  Overridden  No response  Accepted %"
        "  Overridden %",
        "------------------------------  -----  --------  ----------  -----------  ----------"
        "  ------------",
        "ixazomib.anc-recovered.reduce       4         1           3            0         25%"
        "           75%",
        "ixazomib.hepatic.start-reduced      2         2           0            0        100%"
        "            0%",
        "ixazomib.platelets-lt-30.hold      10         6           3            1         60%"
        "           30%",
        "unknown                             0         1           0            0           -"
        "             -",
        "------------------------------  -----  --------  ----------  -----------  ----------"
        "  ------------",
        # 'unknown' is left out of the percentages: 9 of 16 audited cards accepted.
        "All rules                          16        10           6            1         56%"
        "           38%",
    ]
    reasons = text.split("Top override reasons")[1]
    assert reasons.splitlines()[1:] == [
        f"  {REDUCE}:",
        "        1    33%  Other",
        "        1    33%  Palliative intent",
        "        1    33%  Prescriber already aware",
        f"  {HOLD}:",
        "        2    67%  Prescriber already aware",
        "        1    33%  Lab value believed erroneous",
    ]
    assert "free text" not in text  # comments may hold patient details: never reported


def test_report_text_folds_rare_reasons() -> None:
    stats = [RuleStats("r", shown=10, accepted=2, overridden=6, override_reasons=[
        ("A", 2), ("B", 1), ("C", 1), ("D", 1), ("(no reason given)", 1)])]
    text = format_report(stats)
    assert text.rstrip().splitlines()[-4:] == [
        "        2    33%  A",
        "        1    17%  B",
        "        1    17%  C",
        "        2    33%  (other reasons)",
    ]
    assert "r             10         2           6            2         20%           60%" in text


def test_report_text_when_there_is_nothing() -> None:
    assert "No cards have been shown" in format_report([])
