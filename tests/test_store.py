"""The store against real databases: an SQLite file and a throwaway PostgreSQL server.

Every test taking ``database_url`` runs on both; the PostgreSQL runs carry the ``postgres``
mark (deselect with ``-m 'not postgres'``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg import PgServer, shared_postgres, stop_shared_postgres

from cds_service.store import SqlStore, Store, StoreUnavailable, open_store
from cds_service.store.engines import POOL_SIZE, postgres_connect_args, postgres_url
from cds_service.store.migrations import head_revision
from cds_service.store.models import CardAudit, FeedbackItem, FeedbackResult, RuleStats


def now() -> datetime:
    """The time of the check itself: a time taken at import goes stale in a long run."""
    return datetime.now(UTC).replace(microsecond=0)
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
ctx = multiprocessing.get_context("fork")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    yield shared_postgres()
    stop_shared_postgres()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/not/yet/there/cds.sqlite3"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_schema()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = open_store(database_url)
    store.migrate()
    yield store
    store.close()


# --- helpers ----------------------------------------------------------------------------------


def query(database_url: str, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    """Read the database over a separate, fresh connection (what another process would see)."""
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            return conn.execute(sql, tuple(params)).fetchall()
    with psycopg.connect(database_url) as pg:
        return pg.execute(sql.replace("?", "%s"), tuple(params)).fetchall()


def count(database_url: str, table: str) -> int:
    return int(query(database_url, f"SELECT COUNT(*) FROM {table}")[0][0])


def card(
    card_uuid: str, rule: str | None = "ixazomib.platelets.hold", **changes: Any
) -> CardAudit:
    values: dict[str, Any] = {
        "hook_instance": "hook-1",
        "service_id": "ixazomib-order-sign",
        "rule": rule,
        "recommendation": None if rule is None else {"rule": rule, "ixazomib": {"action": "hold"}},
        "card_uuid": card_uuid,
        "suggestion_uuids": (f"{card_uuid}-s1",),
        "indicator": "warning",
        "summary": "Hold ixazomib: platelets below 30 x 10^9/L",
        "served_at": T0,
        "patient_ref": None,
    }
    values.update(changes)
    return CardAudit(**values)


def accepted(card_uuid: str, at: datetime = T0, *suggestions: str) -> FeedbackItem:
    return FeedbackItem(
        card_uuid=card_uuid,
        outcome="accepted",
        outcome_timestamp=at,
        accepted_suggestion_ids=suggestions,
    )


def overridden(
    card_uuid: str, code: str | None = "aware", display: str | None = "Prescriber aware",
    at: datetime = T0, comment: str | None = None,
) -> FeedbackItem:
    return FeedbackItem(
        card_uuid=card_uuid,
        outcome="overridden",
        outcome_timestamp=at,
        override_reason_system="http://example.org/reasons" if code else None,
        override_reason_code=code,
        override_reason_display=display,
        user_comment=comment,
    )


# --- opening and migrating --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "",
        "mysql://u:secret@h/db",
        "sqlite://relative.db",
        "sqlite:///",
        "sqlite:///some/dir/",
        "sqlite:///:memory:",
        "sqlite:///x.db?mode=ro",
        "postgresql+psycopg://u:secret@h/db",
        "postgresql://u:secret@h/db?nonsense_option=1",
        "/var/lib/cds.db",
    ],
)
def test_open_store_rejects_urls_it_cannot_use(url: str) -> None:
    with pytest.raises(ValueError, match="CDS_DATABASE_URL") as raised:
        open_store(url)
    assert "secret" not in str(raised.value)


def test_sqlite_urls_relative_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///data/relative.db")
    relative.migrate()
    assert (tmp_path / "data" / "relative.db").is_file()
    absolute = open_store(f"sqlite:///{tmp_path}/abs/cds.db")  # sqlite:////tmp/...
    absolute.migrate()
    assert (tmp_path / "abs" / "cds.db").is_file()
    assert "WAL" in str(query(f"sqlite:///{tmp_path}/abs/cds.db", "PRAGMA journal_mode")).upper()
    relative.close()
    absolute.close()


def test_postgres_scheme_alias_is_accepted() -> None:
    store = open_store("postgres://cds:secret@db.example:5432/cds")
    assert isinstance(store, SqlStore)
    assert repr(store) == "<SqlStore PostgreSQL database cds on db.example:5432>"
    assert store.engine.url.drivername == "postgresql+psycopg"
    assert postgres_connect_args(store.engine.url) == {
        "connect_timeout": 3,
        "application_name": "ixazomib-cds",
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 3,
        "keepalives_count": 3,
        "tcp_user_timeout": 3000,
        "options": "-c statement_timeout=2500",
    }
    tuned = postgres_url(
        "postgresql://cds@db.example/cds?connect_timeout=11&application_name=x&keepalives=0"
        "&keepalives_idle=1&keepalives_interval=1&keepalives_count=1&tcp_user_timeout=1"
        "&options=-c%20statement_timeout%3D9000"
    )
    assert postgres_connect_args(tuned) == {}  # the URL's own values are passed through
    assert tuned.query["connect_timeout"] == "11"
    # The URL's own options are kept, and the statement timeout added to them.
    schema = postgres_url("postgresql://cds@db.example/cds?options=-c%20search_path%3Dx")
    assert postgres_connect_args(schema)["options"] == (
        "-c search_path=x -c statement_timeout=2500"
    )


def test_migrate_twice_is_a_no_op(store: Store, database_url: str) -> None:
    store.record_feedback("svc", [accepted("c1")])
    store.migrate()
    reopened = open_store(database_url)
    reopened.migrate()
    assert query(database_url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    assert count(database_url, "feedback") == 1
    reopened.close()


def _migrate_in_child(database_url: str, barrier: Any) -> None:
    barrier.wait()
    store = open_store(database_url)
    store.migrate()
    assert store.record_feedback("svc", [accepted(f"child-{os.getpid()}")]).stored == 1
    store.close()


def _exit_codes_when_started_together(database_url: str, processes: int) -> list[int | None]:
    """``_migrate_in_child`` in ``processes`` forked processes released at the same moment."""
    barrier = ctx.Barrier(processes)
    children = [
        ctx.Process(target=_migrate_in_child, args=(database_url, barrier))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
    return [child.exitcode for child in children]


def test_migrations_in_several_processes_at_once(database_url: str) -> None:
    """Every gunicorn worker migrates at start-up, all at the same moment, on a fresh database."""
    assert _exit_codes_when_started_together(database_url, 4) == [0, 0, 0, 0]
    assert query(database_url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    assert count(database_url, "feedback") == 4


def test_a_fresh_sqlite_file_opened_by_many_workers_at_once(tmp_path: Path) -> None:
    """Switching a new file to WAL takes its lock without SQLite's busy handler; before the
    retry, about one worker in forty died with "database is locked" at start-up."""
    for round_number in range(10):
        database_url = f"sqlite:///{tmp_path / f'cds-{round_number}.sqlite3'}"
        exit_codes = _exit_codes_when_started_together(database_url, 8)
        assert exit_codes == [0] * 8, f"round {round_number}"
        assert count(database_url, "feedback") == 8


# --- JWT replay protection --------------------------------------------------------------------


def test_jti_is_claimed_once(store: Store) -> None:
    expires = now() + timedelta(minutes=5)
    assert store.claim_jti("https://ehr.example", "jti-1", expires) is True
    assert store.claim_jti("https://ehr.example", "jti-1", expires) is False
    assert store.claim_jti("https://ehr.example", "jti-1", expires + timedelta(hours=1)) is False
    # The same jti from another issuer is another token.
    assert store.claim_jti("https://other.example", "jti-1", expires) is True


def test_expired_jti_is_purged_and_may_be_claimed_again(store: Store, database_url: str) -> None:
    long_ago = now() - timedelta(hours=2)
    assert store.claim_jti("iss", "old", long_ago) is True
    assert store.claim_jti("iss", "old", now() + timedelta(minutes=5)) is True  # took it over
    assert store.claim_jti("iss", "old", now() + timedelta(minutes=5)) is False
    # Just expired: kept for a grace period (clock-skew leeway), so still a replay.
    assert store.claim_jti("iss", "recent", now() - timedelta(seconds=30)) is True
    assert store.claim_jti("iss", "recent", now() + timedelta(minutes=5)) is False

    for n in range(20):
        store.claim_jti("iss", f"stale-{n}", long_ago)
    fresh = open_store(database_url)  # a new process purges on its first claim
    assert fresh.claim_jti("iss", "new", now() + timedelta(minutes=5)) is True
    remaining = {jti for (jti,) in query(database_url, "SELECT jti FROM jti_claims")}
    assert remaining == {"old", "recent", "new"}
    fresh.close()


def test_jti_needs_an_aware_expiry(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.claim_jti("iss", "naive", datetime(2030, 1, 1))


def test_concurrent_claims_of_one_jti_have_one_winner(store: Store) -> None:
    expires = now() + timedelta(minutes=5)
    barrier = threading.Barrier(8)

    def claim(n: int) -> list[bool]:
        barrier.wait()
        return [store.claim_jti("iss", f"race-{k}", expires) for k in range(15)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(claim, range(8)))
    for k in range(15):
        assert sum(result[k] for result in results) == 1


# --- audit trail ------------------------------------------------------------------------------


def test_cards_are_recorded_once_with_json_and_no_patient_data(
    store: Store, database_url: str
) -> None:
    recommendation = {"rule": "r", "ixazomib": {"action": "reduce", "doseMg": Decimal("3")},
                      "note": "ü"}
    entries = [
        card("c1", recommendation=recommendation, suggestion_uuids=("s1", "s2")),
        card("c2", rule=None, served_at=T0.astimezone(timezone(timedelta(hours=2)))),
    ]
    store.record_cards(entries)
    store.record_cards(entries)  # a retried request: stored once
    store.record_cards([])
    rows = query(
        database_url,
        "SELECT card_uuid, rule, recommendation, suggestion_uuids, patient_ref "
        "FROM card_audit ORDER BY card_uuid",
    )
    assert len(rows) == 2
    stored = rows[0][2] if isinstance(rows[0][2], dict) else json.loads(rows[0][2])
    assert stored == {"rule": "r", "ixazomib": {"action": "reduce", "doseMg": 3}, "note": "ü"}
    suggestions = rows[0][3] if isinstance(rows[0][3], list) else json.loads(rows[0][3])
    assert suggestions == ["s1", "s2"]
    assert rows[1][1:3] == (None, None)
    assert rows[0][4] is None
    store.record_cards([card("c3", patient_ref="Patient/123")])
    assert query(database_url, "SELECT patient_ref FROM card_audit WHERE card_uuid = 'c3'") == [
        ("Patient/123",)
    ]


# --- feedback ---------------------------------------------------------------------------------


def test_identical_feedback_is_stored_once(store: Store, database_url: str) -> None:
    item = overridden("c1", comment="discussed with the patient")
    assert store.record_feedback("svc", [item]) == FeedbackResult(stored=1, duplicates=0)
    assert store.record_feedback("svc", [item, item]) == FeedbackResult(stored=0, duplicates=2)
    # Same report, the timestamp in another zone and a different comment: still the same report.
    same = overridden("c1", at=T0.astimezone(timezone(timedelta(hours=-5))), comment="again")
    assert store.record_feedback("svc", [same]) == FeedbackResult(stored=0, duplicates=1)
    assert count(database_url, "feedback") == 1


def test_accepted_suggestions_are_a_set(store: Store) -> None:
    assert store.record_feedback("svc", [accepted("c1", T0, "a", "b")]).stored == 1
    assert store.record_feedback("svc", [accepted("c1", T0, "b", "a", "a")]).duplicates == 1
    assert store.record_feedback("svc", [accepted("c1", T0, "a")]).stored == 1


def test_a_different_report_for_the_same_card_is_a_new_row(store: Store, database_url: str) -> None:
    results = [
        store.record_feedback("svc", [accepted("c1")]),
        store.record_feedback("svc", [overridden("c1")]),  # another outcome
        store.record_feedback("svc", [accepted("c1", T0 + timedelta(seconds=1))]),  # later
        store.record_feedback("svc", [overridden("c1", code="other", display="Other")]),
        store.record_feedback("svc", [overridden("c1", code=None, display=None)]),  # no reason
        store.record_feedback("svc", [overridden("c1", code=None, display=None)]),
        store.record_feedback("svc", [accepted("c1", T0 + timedelta(microseconds=1))]),
    ]
    assert [r.stored for r in results] == [1, 1, 1, 1, 1, 0, 1]
    assert count(database_url, "feedback") == 6


def test_invalid_feedback_is_refused_before_anything_is_stored(
    store: Store, database_url: str
) -> None:
    bad_outcome = FeedbackItem(card_uuid="c1", outcome="ignored", outcome_timestamp=T0)
    with pytest.raises(ValueError, match="outcome"):
        store.record_feedback("svc", [accepted("c0"), bad_outcome])
    naive = FeedbackItem(card_uuid="c1", outcome="accepted",
                         outcome_timestamp=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        store.record_feedback("svc", [accepted("c0"), naive])
    assert count(database_url, "feedback") == 0
    assert store.record_feedback("svc", []) == FeedbackResult(stored=0, duplicates=0)


def test_feedback_is_committed_before_record_feedback_returns(
    store: Store, database_url: str
) -> None:
    store.record_feedback("ixazomib-order-sign", [overridden("c1", comment="x")])
    # Another connection sees it at once (no open transaction is holding it back).
    assert query(
        database_url,
        "SELECT service_id, outcome, override_reason_code, override_reason_display, user_comment "
        "FROM feedback",
    ) == [("ixazomib-order-sign", "overridden", "aware", "Prescriber aware", "x")]


def test_threads_posting_feedback_at_once(store: Store, database_url: str) -> None:
    barrier = threading.Barrier(8)

    def post(n: int) -> FeedbackResult:
        barrier.wait()
        total = FeedbackResult(0, 0)
        for k in range(20):
            # Every thread reports shared cards (duplicates) and its own.
            result = store.record_feedback("svc", [accepted(f"shared-{k}"), accepted(f"t{n}-{k}")])
            total = FeedbackResult(total.stored + result.stored,
                                   total.duplicates + result.duplicates)
        return total

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, range(8)))
    assert sum(r.stored for r in results) == 20 + 8 * 20
    assert sum(r.duplicates for r in results) == 7 * 20
    assert count(database_url, "feedback") == 20 + 8 * 20


def _post_in_child(
    store: Store, worker: int, barrier: Any, results: Any, reuse_parent_store: bool
) -> None:
    if not reuse_parent_store:
        store = open_store(os.environ["IXA_TEST_URL"])
    barrier.wait()
    stored = duplicates = 0
    for k in range(25):
        result = store.record_feedback(
            "svc",
            [accepted(f"shared-{k}"), overridden(f"w{worker}-{k}"), accepted(f"shared-{k}")],
        )
        stored += result.stored
        duplicates += result.duplicates
        store.claim_jti("iss", f"jti-{k}", now() + timedelta(minutes=5))
    results.put((stored, duplicates))
    store.close()


@pytest.mark.parametrize("reuse_parent_store", [False, True], ids=["own-store", "forked-store"])
def test_processes_posting_feedback_at_once(
    store: Store, database_url: str, reuse_parent_store: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N worker processes (as under gunicorn): every row present exactly once. With
    ``forked-store`` the children use the store the parent opened (and used) before fork."""
    monkeypatch.setenv("IXA_TEST_URL", database_url)
    assert store.ping()  # the parent holds an open connection when it forks
    workers = 4
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    children = [
        ctx.Process(target=_post_in_child,
                    args=(store, n, barrier, results, reuse_parent_store))
        for n in range(workers)
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(30)
    assert [child.exitcode for child in children] == [0] * workers
    assert sum(stored for stored, _ in outcomes) == 25 + workers * 25
    assert sum(dup for _, dup in outcomes) == workers * 3 * 25 - (25 + workers * 25)
    rows = query(database_url, "SELECT card_uuid, outcome FROM feedback")
    assert len(rows) == len(set(rows)) == 25 + workers * 25
    assert count(database_url, "jti_claims") == 25
    # The parent's own connection still works after its children exited.
    assert store.ping()
    assert store.record_feedback("svc", [accepted("after-fork")]).stored == 1


# --- the rule report --------------------------------------------------------------------------


def test_rule_report_numbers(store: Store) -> None:
    hold, reduce = "ixazomib.platelets.hold", "ixazomib.anc.reduce"
    store.record_cards(
        [card(f"h{n}", hold) for n in range(5)]
        + [card(f"r{n}", reduce) for n in range(3)]
        + [card("info", None)]
    )
    later = T0 + timedelta(hours=1)
    store.record_feedback("svc", [
        accepted("h0"), accepted("h0"),  # duplicate report: counted once
        overridden("h1", at=T0), accepted("h1", later),  # changed mind: latest outcome counts
        overridden("h2", "aware", "Prescriber aware"),
        overridden("h3", "aware", "Prescriber aware"),
        overridden("r0", "other", "Other"),
        overridden("r1", code="aware", display=None),  # no display: the code is shown
        overridden("r2", code=None, display=None),
        accepted("never-audited"),
    ])
    report = store.rule_report()
    assert report == [
        RuleStats(reduce, shown=3, accepted=0, overridden=3,
                  override_reasons=[("(no reason given)", 1), ("Other", 1), ("aware", 1)]),
        RuleStats(hold, shown=5, accepted=2, overridden=2,
                  override_reasons=[("Prescriber aware", 2)]),
        RuleStats("unknown", shown=1, accepted=1, overridden=0, override_reasons=[]),
    ]
    assert report[1].no_response == 1


def test_rule_report_since(store: Store) -> None:
    old, new = T0 - timedelta(days=40), T0
    store.record_cards([card("old", served_at=old), card("new", served_at=new)])
    store.record_feedback("svc", [
        accepted("old", old + timedelta(minutes=1)),
        # Feedback arriving late for an old card stays with the old card's period.
        overridden("new", at=new + timedelta(minutes=1)),
        accepted("orphan-old", old), accepted("orphan-new", new),
    ])
    everything = store.rule_report()
    recent = store.rule_report(since=T0 - timedelta(days=30))
    assert [(s.rule, s.shown, s.accepted, s.overridden) for s in everything] == [
        ("ixazomib.platelets.hold", 2, 1, 1), ("unknown", 0, 2, 0)
    ]
    assert [(s.rule, s.shown, s.accepted, s.overridden) for s in recent] == [
        ("ixazomib.platelets.hold", 1, 0, 1), ("unknown", 0, 1, 0)
    ]
    assert store.rule_report(since=T0 + timedelta(days=1)) == []
    with pytest.raises(ValueError, match="timezone-aware"):
        store.rule_report(since=datetime(2026, 1, 1))


def test_empty_report(store: Store) -> None:
    assert store.rule_report() == []


# --- health and connections -------------------------------------------------------------------


def test_ping_close_and_reuse(store: Store) -> None:
    assert store.ping() is True
    store.close()
    store.close()
    assert store.ping() is True  # reconnects when used again
    assert store.record_feedback("svc", [accepted("c1")]).stored == 1


def test_ping_is_false_when_the_database_is_unreachable(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    assert open_store(f"sqlite:///{blocked}/cds.db").ping() is False
    pg = open_store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert pg.ping() is False


def test_threads_share_a_bounded_pool_and_give_connections_back(store: Store) -> None:
    assert isinstance(store, SqlStore)
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        barrier.wait()
        for k in range(10):
            store.record_feedback("svc", [accepted(f"c-{n}-{k}")])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert 1 <= store.engine.pool.checkedin() <= POOL_SIZE  # type: ignore[attr-defined]


@pytest.mark.postgres
def test_postgres_reconnects_after_losing_its_connection(pg_server: PgServer) -> None:
    url = pg_server.create_database()
    store = open_store(url)
    store.migrate()
    assert store.record_feedback("svc", [accepted("before")]).stored == 1
    with psycopg.connect(pg_server.url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = 'ixazomib-cds'",
            (url.rsplit("/", 1)[1],),
        ).fetchall()
    assert killed == [(True,)]
    # The next call finds the connection dead, reconnects and succeeds.
    assert store.record_feedback("svc", [accepted("after")]).stored == 1
    assert store.claim_jti("iss", "after-reconnect", now() + timedelta(minutes=5)) is True
    assert count(url, "feedback") == 2
    store.close()


# --- databases made before Alembic --------------------------------------------------------------

# What the hand-written migration 1 of earlier releases created, word for word ({ts}, {json}
# and {id} as its SQLite and PostgreSQL dialects filled them in).
LEGACY_TYPES = {
    "sqlite": {"ts": "TEXT", "json": "TEXT", "id": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    "postgresql": {
        "ts": "TIMESTAMPTZ",
        "json": "JSONB",
        "id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    },
}
LEGACY_SCHEMA_V1 = [
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
    "applied_at {ts} NOT NULL)",
    "CREATE TABLE jti_claims (issuer TEXT NOT NULL, jti TEXT NOT NULL, expires_at {ts} NOT NULL, "
    "PRIMARY KEY (issuer, jti))",
    "CREATE INDEX jti_claims_expires_at ON jti_claims (expires_at)",
    "CREATE TABLE card_audit (id {id}, hook_instance TEXT NOT NULL, service_id TEXT NOT NULL, "
    "card_uuid TEXT NOT NULL, rule TEXT, recommendation {json}, suggestion_uuids {json} NOT NULL, "
    "indicator TEXT NOT NULL, summary TEXT NOT NULL, served_at {ts} NOT NULL, patient_ref TEXT, "
    "CONSTRAINT card_audit_card UNIQUE (hook_instance, card_uuid))",
    "CREATE INDEX card_audit_card_uuid ON card_audit (card_uuid)",
    "CREATE INDEX card_audit_served_at ON card_audit (served_at)",
    "CREATE TABLE feedback (id {id}, service_id TEXT NOT NULL, card_uuid TEXT NOT NULL, "
    "outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'overridden')), "
    "outcome_timestamp {ts} NOT NULL, accepted_suggestions TEXT NOT NULL, "
    "override_reason_system TEXT NOT NULL, override_reason_code TEXT NOT NULL, "
    "override_reason_display TEXT NOT NULL, user_comment TEXT, received_at {ts} NOT NULL, "
    "CONSTRAINT feedback_report UNIQUE (card_uuid, outcome, outcome_timestamp, "
    "accepted_suggestions, override_reason_system, override_reason_code, "
    "override_reason_display))",
]
LEGACY_ROWS = [
    "INSERT INTO schema_version VALUES (1, 'jti claims, card audit trail, feedback', "
    "'2026-11-01T09:00:00.000000Z')",
    "INSERT INTO feedback (service_id, card_uuid, outcome, outcome_timestamp, "
    "accepted_suggestions, override_reason_system, override_reason_code, "
    "override_reason_display, user_comment, received_at) VALUES ('svc', 'old-card', 'accepted', "
    "'2026-11-21T10:00:00.000000Z', '[]', '', '', '', NULL, '2026-11-21T10:00:01.000000Z')",
    "INSERT INTO card_audit (hook_instance, service_id, card_uuid, rule, recommendation, "
    "suggestion_uuids, indicator, summary, served_at) VALUES ('h0', 'svc', 'old-card', "
    "'ixazomib.platelets.hold', NULL, '[]', 'warning', 'Hold', '2026-11-21T09:59:00.000000Z')",
]


def _make_legacy_database(database_url: str) -> None:
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            for statement in LEGACY_SCHEMA_V1:
                conn.execute(statement.format(**LEGACY_TYPES["sqlite"]))
            for statement in LEGACY_ROWS:
                conn.execute(statement)
        return
    with psycopg.connect(database_url, autocommit=True) as pg:
        for statement in LEGACY_SCHEMA_V1:
            pg.execute(statement.format(**LEGACY_TYPES["postgresql"]))
        for statement in LEGACY_ROWS:
            pg.execute(statement)


def test_a_database_made_by_the_hand_written_migrations_is_adopted_and_upgraded(
    database_url: str,
) -> None:
    _make_legacy_database(database_url)
    assert _exit_codes_when_started_together(database_url, 3) == [0, 0, 0]  # replicas at once
    assert query(database_url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    assert count(database_url, "schema_version") == 1  # left as it was
    store = open_store(database_url)
    store.migrate()
    # The old rows are read, and the old unique constraint still makes a repeat a duplicate.
    assert store.record_feedback("svc", [accepted("old-card", T0)]).duplicates == 1
    assert count(database_url, "feedback") == 1 + 3
    assert [(s.rule, s.shown, s.accepted) for s in store.rule_report()] == [
        ("ixazomib.platelets.hold", 1, 1), ("unknown", 0, 3)
    ]
    assert store.ping() is True  # the table added since (store_probe) is there
    store.close()


def test_a_database_of_a_newer_release_is_used_without_migrating(database_url: str) -> None:
    store = open_store(database_url)
    store.migrate()
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            conn.execute("UPDATE alembic_version SET version_num = '9999'")
    else:
        with psycopg.connect(database_url, autocommit=True) as pg:
            pg.execute("UPDATE alembic_version SET version_num = '9999'")
    store.migrate()  # a warning, not a crash: a rollback of the service must still start
    assert store.record_feedback("svc", [accepted("c1")]).stored == 1
    store.close()


# --- faults: a store that cannot be written is refused, never acknowledged ------------------


def _sqlite_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def test_sqlite_file_deleted_while_running_is_refused_not_acknowledged(tmp_path: Path) -> None:
    """Before: feedback was acknowledged into the deleted file (lost) and the probe said OK."""
    path = tmp_path / "cds.sqlite3"
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    assert store.record_feedback("svc", [accepted("before")]).stored == 1
    for file in _sqlite_files(path):
        file.unlink(missing_ok=True)
    with pytest.raises(StoreUnavailable):
        store.record_feedback("svc", [accepted("into-the-void")])
    with pytest.raises(StoreUnavailable):
        store.claim_jti("iss", "j", now() + timedelta(minutes=5))
    assert store.ping() is False
    assert not path.exists()  # no new empty database took its place behind the operator's back
    # Put back (a new or restored database): the same store writes to the file now there.
    replacement = open_store(f"sqlite:///{path}")
    replacement.migrate()
    replacement.close()
    assert store.ping() is True
    assert store.record_feedback("svc", [accepted("after")]).stored == 1
    assert query(f"sqlite:///{path}", "SELECT card_uuid FROM feedback") == [("after",)]
    store.close()


def _make_unwritable(path: Path) -> Any:
    """Make ``path`` unwritable for this process; returns the undo. As root, permission bits
    do not stop writes: the immutable attribute does."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        return lambda: path.chmod(0o644)
    import subprocess

    if subprocess.run(["chattr", "+i", str(path)], check=False).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: cannot make a file "
                    "unwritable for root")
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


def test_sqlite_not_writable_at_start_recovers_when_permissions_return(tmp_path: Path) -> None:
    """Before: a store that started while the file was not writable stayed read-only after the
    permissions were restored."""
    path = tmp_path / "cds.sqlite3"
    setup = open_store(f"sqlite:///{path}")
    setup.migrate()
    setup.close()
    restore = _make_unwritable(path)
    try:
        store = open_store(f"sqlite:///{path}")  # a worker starting now
        with pytest.raises(StoreUnavailable):
            store.record_feedback("svc", [accepted("while-read-only")])
        with pytest.raises(StoreUnavailable):
            store.claim_jti("iss", "j1", now() + timedelta(minutes=5))
        assert store.ping() is False
    finally:
        restore()
    assert store.ping() is True
    assert store.record_feedback("svc", [accepted("after")]).stored == 1
    assert store.claim_jti("iss", "j1", now() + timedelta(minutes=5)) is True
    store.close()


def test_sqlite_start_up_on_a_volume_too_small_fails_naming_the_setting(tmp_path: Path) -> None:
    from cds_service.store import InsufficientSpace

    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if os.geteuid() != 0 or os.system(f"mount -t tmpfs -o size=256k tmpfs {tiny}") != 0:
        pytest.skip("needs root to mount a 256 KiB tmpfs")
    try:
        with pytest.raises(InsufficientSpace, match="CDS_DATABASE_URL") as raised:
            open_store(f"sqlite:///{tiny}/cds.sqlite3").migrate()
        assert "KiB free" in str(raised.value)
    finally:
        os.system(f"umount {tiny}")


@pytest.mark.postgres
def test_postgres_outage_is_store_unavailable_and_recovers_without_reopening() -> None:
    from pg import start_postgres

    server = start_postgres()  # its own server: it is stopped mid-test
    try:
        store = open_store(server.create_database())
        store.migrate()
        assert store.record_feedback("svc", [accepted("before")]).stored == 1
        server.halt()
        with pytest.raises(StoreUnavailable):
            store.claim_jti("iss", "during", now() + timedelta(minutes=5))
        with pytest.raises(StoreUnavailable):
            store.record_feedback("svc", [accepted("during")])
        assert store.ping() is False
        server.resume()
        # The pooled connections died with the server; the ping at checkout replaces them.
        assert store.claim_jti("iss", "after", now() + timedelta(minutes=5)) is True
        assert store.record_feedback("svc", [accepted("after")]).stored == 1
        assert store.ping() is True
        store.close()
    finally:
        server.stop()
