"""The Store on SQLAlchemy Core, written once for SQLite and PostgreSQL.

Connections come from the engine's pool (``engines.py``), one per thread at a time. A pool
inherited through ``fork`` (gunicorn with --preload) is left to the parent: the child's first
call starts a pool of its own. Every operation is one short transaction. After a lost
connection (PostgreSQL restarted, an SQLite file fault) the operation runs once more on a fresh
connection (not after a PostgreSQL server that did not answer within the deadline, see
``engines``: a fresh connection would wait as long again); every write is idempotent, so a
retry never stores anything twice. A database that still cannot be reached or written raises
``StoreUnavailable`` (answered 503, never 401/500).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, bindparam, delete, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cds_service.store import migrations
from cds_service.store.engines import (
    StoreUnavailable,
    is_live_file,
    lift_deadline,
    prepare_sqlite_file,
)
from cds_service.store.models import (
    OUTCOMES,
    UNKNOWN_RULE,
    CardAudit,
    FeedbackItem,
    FeedbackResult,
    RuleStats,
)
from cds_service.store.schema import (
    UtcTimestamp,
    card_audit,
    dumps_json,
    feedback,
    jti_claims,
    store_probe,
    utc,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

NO_REASON = "(no reason given)"
# A claimed jti is kept this long after its token's exp, so that a token still accepted within
# the authenticator's clock-skew leeway cannot be replayed.
JTI_GRACE = timedelta(minutes=5)
JTI_PURGE_INTERVAL_SECONDS = 60.0
BEGINNING = datetime(1, 1, 1, tzinfo=UTC)  # "since" when the report covers everything
HEALTH_PROBE = "healthz"

# Cards shown per rule, served since :since.
SHOWN_SQL = text(
    "SELECT COALESCE(rule, 'unknown'), COUNT(*) FROM card_audit WHERE served_at >= :since "
    "GROUP BY 1"
).bindparams(bindparam("since", type_=UtcTimestamp()))
# Each card's latest outcome (ties: the later report), attributed to the card's audited rule,
# or to 'unknown' for a card never audited; counted per rule, outcome and override reason.
OUTCOMES_SQL = text("""
WITH ranked AS (
    SELECT card_uuid, outcome, outcome_timestamp, override_reason_code, override_reason_display,
           ROW_NUMBER() OVER (
               PARTITION BY card_uuid ORDER BY outcome_timestamp DESC, id DESC
           ) AS rn
    FROM feedback
), audited AS (
    SELECT card_uuid, MIN(COALESCE(rule, 'unknown')) AS rule, MIN(served_at) AS served_at
    FROM card_audit GROUP BY card_uuid
)
SELECT COALESCE(a.rule, 'unknown'), f.outcome,
       COALESCE(NULLIF(f.override_reason_display, ''), NULLIF(f.override_reason_code, '')),
       COUNT(*)
FROM ranked f LEFT JOIN audited a ON a.card_uuid = f.card_uuid
WHERE f.rn = 1 AND COALESCE(a.served_at, f.outcome_timestamp) >= :since
GROUP BY 1, 2, 3
""").bindparams(bindparam("since", type_=UtcTimestamp()))


class SqlStore:
    def __init__(self, engine: Engine, where: str, *, sqlite_path: Path | None = None) -> None:
        """``where`` names the database in logs (never a password); ``sqlite_path`` is the
        file of an SQLite engine."""
        self.engine = engine
        self.where = where
        self.sqlite_path = sqlite_path
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._next_purge = 0.0  # time.monotonic() of the next opportunistic jti purge
        self._statements = _Statements(engine.dialect.name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.where}>"

    # --- connections ---------------------------------------------------------------------

    def _engine(self) -> Engine:
        if os.getpid() != self._pid:
            with self._lock:
                if os.getpid() != self._pid:
                    # Forked: the pooled connections are the parent's; leave them alone.
                    self.engine.dispose(close=False)
                    self._pid = os.getpid()
        return self.engine

    def _run(self, operation: Callable[[Connection], T], *, durable: bool = False) -> T:
        """``operation`` in one transaction; once more after a lost connection; a database
        that cannot be reached or written is ``StoreUnavailable``.

        With ``durable``, the commit is on disk (not only in the operating system's cache)
        when this returns, and in the file that is at the SQLite path now."""
        for attempt in (1, 2):
            try:
                with self._engine().connect() as connection:
                    with self._durability(connection, durable), connection.begin():
                        result = operation(connection)
                    self._check_live_file(connection)
                    return result
            except DBAPIError as error:
                if error.connection_invalidated and attempt == 1:
                    log.warning("lost the connection to %s; reconnecting", self.where)
                    continue
                if isinstance(error, OperationalError | InterfaceError):
                    raise self._unavailable(error) from None
                raise
            except (PoolTimeout, DisconnectionError) as error:
                raise self._unavailable(error) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _unavailable(self, error: Exception) -> StoreUnavailable:
        # The driver's message names the host or file, never a password or the data.
        reason = str(getattr(error, "orig", None) or error).splitlines()[0][:300]
        log.error("the database %s cannot be used: %s", self.where, reason)
        return StoreUnavailable(reason)

    @contextmanager
    def _durability(self, connection: Connection, durable: bool) -> Iterator[None]:
        """SQLite: synchronous=FULL for this transaction (a clinician's feedback is on disk
        before it is acknowledged, even on power loss; the JWT replay cache and the audit
        trail do without that fsync per request). PostgreSQL commits are durable anyway."""
        if not durable or self.sqlite_path is None:
            yield
            return
        raw = connection.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        raw.execute("PRAGMA synchronous = FULL")  # outside the transaction, as SQLite needs
        try:
            yield
        finally:
            with suppress(sqlite3.Error):  # the connection was discarded after a fault
                raw.execute("PRAGMA synchronous = NORMAL")

    def _check_live_file(self, connection: Connection) -> None:
        """SQLite: the file just written is still the one at the path (not deleted or
        replaced meanwhile): otherwise nothing may be acknowledged."""
        if self.sqlite_path is None or is_live_file(connection.connection.info, self.sqlite_path):
            return
        connection.invalidate()
        raise DisconnectionError(f"{self.sqlite_path} was deleted or replaced while in use")

    def close(self) -> None:
        """Close this process's connections. The store reconnects if it is used again."""
        self._engine().dispose()

    def ping(self) -> bool:
        """True if the database takes a write now (readiness: /healthz)."""
        params = {"probe": HEALTH_PROBE, "written_at": _now()}
        try:
            self._run(lambda c: c.execute(self._statements.probe, params))
        except Exception as error:
            log.warning("database probe failed (%s): %s", self.where, error)
            return False
        return True

    # --- schema ----------------------------------------------------------------------------

    def migrate(self) -> None:
        if self.sqlite_path is not None:
            prepare_sqlite_file(self.sqlite_path)
        migrations.upgrade(self._engine(), self.where)

    # --- JWT replay protection -------------------------------------------------------------

    def claim_jti(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        """Record (issuer, jti); False if it was already claimed and has not yet expired."""
        expires = utc(expires_at, "expires_at")
        reusable_before = _now() - JTI_GRACE
        params = {
            "issuer": issuer,
            "jti": jti,
            "expires_at": expires,
            "reusable_before": reusable_before,
        }
        claimed = self._run(lambda c: c.execute(self._statements.claim, params).first() is not None)
        self._maybe_purge(reusable_before)
        return claimed

    def _maybe_purge(self, reusable_before: datetime) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next_purge:
                return
            self._next_purge = now + JTI_PURGE_INTERVAL_SECONDS
        params = {"reusable_before": reusable_before}
        try:
            self._run(lambda c: c.execute(self._statements.purge, params))
        except Exception:  # housekeeping only; the claim itself has been answered
            log.warning("could not purge expired jti claims", exc_info=True)

    # --- audit trail and feedback ----------------------------------------------------------

    def record_cards(self, entries: Sequence[CardAudit]) -> None:
        if not entries:
            return
        rows = [
            {
                "hook_instance": e.hook_instance,
                "service_id": e.service_id,
                "card_uuid": e.card_uuid,
                "rule": e.rule,
                "recommendation": e.recommendation,
                "suggestion_uuids": list(e.suggestion_uuids),
                "indicator": e.indicator,
                "summary": e.summary,
                "served_at": utc(e.served_at, "served_at"),
                "patient_ref": e.patient_ref,
            }
            for e in entries
        ]

        def insert(connection: Connection) -> None:
            for row in rows:
                connection.execute(self._statements.record_card, row)

        self._run(insert)

    def record_feedback(self, service_id: str, items: Sequence[FeedbackItem]) -> FeedbackResult:
        """Store each report once; durably committed before this returns."""
        received = _now()
        rows = []
        for item in items:
            if item.outcome not in OUTCOMES:
                raise ValueError(
                    f"outcome must be 'accepted' or 'overridden', not {item.outcome!r}"
                )
            rows.append(
                {
                    "service_id": service_id,
                    "card_uuid": item.card_uuid,
                    "outcome": item.outcome,
                    "outcome_timestamp": utc(item.outcome_timestamp, "outcome_timestamp"),
                    # A set: the order the EHR lists accepted suggestions in means nothing.
                    "accepted_suggestions": dumps_json(sorted(set(item.accepted_suggestion_ids))),
                    "override_reason_system": item.override_reason_system or "",
                    "override_reason_code": item.override_reason_code or "",
                    "override_reason_display": item.override_reason_display or "",
                    "user_comment": item.user_comment,
                    "received_at": received,
                }
            )
        if not rows:
            return FeedbackResult(stored=0, duplicates=0)

        def insert(connection: Connection) -> int:
            statement = self._statements.record_feedback
            return sum(len(connection.execute(statement, row).all()) for row in rows)

        stored = self._run(insert, durable=True)
        return FeedbackResult(stored=stored, duplicates=len(rows) - stored)

    # --- reporting -------------------------------------------------------------------------

    def rule_report(self, since: datetime | None = None) -> list[RuleStats]:
        """Per rule: cards shown, and each card's latest reported outcome.

        With ``since``: cards served since then, and their feedback; feedback on cards never
        audited counts when its outcome timestamp is since then.
        """
        params = {"since": utc(since, "since") if since is not None else BEGINNING}

        def query(connection: Connection) -> tuple[list[Any], list[Any]]:
            if connection.dialect.name == "postgresql":
                # An offline report over the whole audit trail may take longer than a call's
                # store deadline on a live server: neither cuts it.
                lift_deadline(connection.connection.info)
                connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
            shown = list(connection.execute(SHOWN_SQL, params))
            return shown, list(connection.execute(OUTCOMES_SQL, params))

        shown_rows, outcome_rows = self._run(query)
        shown: dict[str, int] = defaultdict(int)
        accepted: dict[str, int] = defaultdict(int)
        overridden: dict[str, int] = defaultdict(int)
        reasons: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for rule, count in shown_rows:
            shown[str(rule)] += int(count)
        for rule, outcome, reason, count in outcome_rows:
            if outcome == "accepted":
                accepted[str(rule)] += int(count)
            else:
                overridden[str(rule)] += int(count)
                reasons[str(rule)][str(reason) if reason else NO_REASON] += int(count)
        rules = sorted(set(shown) | set(accepted) | set(overridden), key=_rule_order)
        return [
            RuleStats(
                rule=rule,
                shown=shown[rule],
                accepted=accepted[rule],
                overridden=overridden[rule],
                override_reasons=sorted(reasons[rule].items(), key=lambda rc: (-rc[1], rc[0])),
            )
            for rule in rules
        ]


class _Statements:
    """The store's writes, built once per store (building a statement costs more than
    running it); parameters are bound by name at execution."""

    def __init__(self, dialect_name: str) -> None:
        insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
        # One atomic statement: a new claim inserts; a claim whose previous holder expired
        # takes the row over; a live claim changes nothing (no row returned).
        claim = insert(jti_claims)
        self.claim = claim.on_conflict_do_update(
            index_elements=[jti_claims.c.issuer, jti_claims.c.jti],
            set_={"expires_at": claim.excluded.expires_at},
            where=jti_claims.c.expires_at < bindparam("reusable_before", type_=UtcTimestamp()),
        ).returning(jti_claims.c.jti)
        self.purge = delete(jti_claims).where(
            jti_claims.c.expires_at < bindparam("reusable_before", type_=UtcTimestamp())
        )
        self.record_card = insert(card_audit).on_conflict_do_nothing(
            index_elements=[card_audit.c.hook_instance, card_audit.c.card_uuid]
        )
        # A row comes back for each report stored; none for a duplicate.
        self.record_feedback = insert(feedback).on_conflict_do_nothing().returning(feedback.c.id)
        probe = insert(store_probe)
        self.probe = probe.on_conflict_do_update(
            index_elements=[store_probe.c.probe],
            set_={"written_at": probe.excluded.written_at},
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _rule_order(rule: str) -> tuple[bool, str]:
    return (rule == UNKNOWN_RULE, rule)
