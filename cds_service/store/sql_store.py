"""The Store, written once over a Dialect.

Connections: one per thread of each process (``threading.local``), opened lazily. A connection
inherited through ``fork`` (gunicorn with --preload) is never used or closed by the child; the
child opens its own. When a thread ends its connection is closed. After a lost connection
(PostgreSQL restarted, network) the next call reconnects and retries once; every write is
idempotent, so a retry never stores anything twice.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from cds_service.store.dialect import Dialect, Session, dumps_json, utc
from cds_service.store.migrations import LATEST_VERSION, MIGRATIONS, SCHEMA_VERSION_TABLE
from cds_service.store.models import (
    OUTCOMES,
    UNKNOWN_RULE,
    CardAudit,
    FeedbackItem,
    FeedbackResult,
    RuleStats,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

NO_REASON = "(no reason given)"
# A claimed jti is kept this long after its token's exp, so that a token still accepted within
# the authenticator's clock-skew leeway cannot be replayed.
JTI_GRACE = timedelta(minutes=5)
JTI_PURGE_INTERVAL_SECONDS = 60.0
BEGINNING = datetime(1, 1, 1, tzinfo=UTC)  # "since" when the report covers everything

# Cards shown per rule, served since ?.
SHOWN_SQL = """
SELECT COALESCE(rule, 'unknown'), COUNT(*) FROM card_audit WHERE served_at >= ? GROUP BY 1
"""
# Each card's latest outcome (ties: the later report), attributed to the card's audited rule,
# or to 'unknown' for a card never audited; counted per rule, outcome and override reason.
OUTCOMES_SQL = """
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
WHERE f.rn = 1 AND COALESCE(a.served_at, f.outcome_timestamp) >= ?
GROUP BY 1, 2, 3
"""


class _Holder:
    """Owns one thread's session; when the thread ends, the holder is collected and the
    session closed (unless it belongs to the parent of a fork)."""

    __slots__ = ("__weakref__", "finalizer", "session")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.finalizer = weakref.finalize(self, _close_if_ours, session)


def _close_if_ours(session: Session) -> None:
    if session.pid == os.getpid():
        try:
            session.close()
        except Exception:  # closing a dead connection may fail; nothing to do about it
            log.debug("error closing a database connection", exc_info=True)


class SqlStore:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._local = threading.local()
        self._holders: weakref.WeakSet[_Holder] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._next_purge = 0.0  # time.monotonic() of the next opportunistic jti purge

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.dialect.describe()}>"

    # --- connections ---------------------------------------------------------------------

    def _session(self) -> Session:
        holder: _Holder | None = getattr(self._local, "holder", None)
        if holder is not None:
            if holder.session.pid != os.getpid():
                # Inherited through fork: the parent's connection. Leave it alone for good.
                holder.finalizer.detach()
                self._local.holder = None
            elif holder.session.broken:
                self._discard(holder)
            else:
                return holder.session
        holder = _Holder(self.dialect.connect())
        self._local.holder = holder
        with self._lock:
            self._holders.add(holder)
        return holder.session

    def _discard(self, holder: _Holder) -> None:
        holder.finalizer()
        self._local.holder = None

    def _run(self, operation: Callable[[Session], T]) -> T:
        """Run ``operation`` on this thread's connection; after a lost connection, reconnect
        and run it once more."""
        session = self._session()
        try:
            return operation(session)
        except self.dialect.disconnect_errors:
            if not session.broken:
                raise
            log.warning("lost the connection to %s; reconnecting", self.dialect.describe())
            holder = getattr(self._local, "holder", None)
            if holder is not None:
                self._discard(holder)
            return operation(self._session())

    def close(self) -> None:
        """Close this process's connections. The store reconnects if it is used again."""
        with self._lock:
            holders = list(self._holders)
            self._holders.clear()
        for holder in holders:
            holder.finalizer()
        self._local = threading.local()

    def ping(self) -> bool:
        try:
            return self._run(lambda s: s.execute("SELECT 1").rows == [(1,)])
        except Exception as error:
            log.warning("database ping failed (%s): %s", self.dialect.describe(), error)
            return False

    # --- schema ----------------------------------------------------------------------------

    def migrate(self) -> None:
        self._run(self._migrate)

    def _migrate(self, session: Session) -> None:
        d = self.dialect
        with session.transaction(migration_lock=True):
            session.execute(d.ddl(SCHEMA_VERSION_TABLE))
            current = int(
                session.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").rows[0][0]
            )
            if current > LATEST_VERSION:
                log.warning(
                    "%s has schema version %d, newer than this release knows (%d); "
                    "running without migrating",
                    d.describe(),
                    current,
                    LATEST_VERSION,
                )
                return
            for migration in MIGRATIONS:
                if migration.version <= current:
                    continue
                for statement in migration.statements:
                    session.execute(d.ddl(statement))
                session.execute(
                    "INSERT INTO schema_version (version, description, applied_at) "
                    "VALUES (?, ?, ?)",
                    (migration.version, migration.description, d.timestamp(_now())),
                )
                log.info("%s: applied schema migration %d", d.describe(), migration.version)

    # --- JWT replay protection -------------------------------------------------------------

    def claim_jti(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        """Record (issuer, jti); False if it was already claimed and has not yet expired."""
        expires = utc(expires_at, "expires_at")
        now = _now()
        d = self.dialect
        reusable_before = d.timestamp(now - JTI_GRACE)

        def claim(session: Session) -> bool:
            # One atomic statement: a new claim inserts; a claim whose previous holder expired
            # takes the row over; a live claim changes nothing (rowcount 0).
            result = session.execute(
                "INSERT INTO jti_claims (issuer, jti, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (issuer, jti) DO UPDATE SET expires_at = excluded.expires_at "
                "WHERE jti_claims.expires_at < ?",
                (issuer, jti, d.timestamp(expires), reusable_before),
            )
            return result.rowcount == 1

        claimed = self._run(claim)
        self._maybe_purge(reusable_before)
        return claimed

    def _maybe_purge(self, reusable_before: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next_purge:
                return
            self._next_purge = now + JTI_PURGE_INTERVAL_SECONDS
        try:
            self._run(
                lambda s: s.execute(
                    "DELETE FROM jti_claims WHERE expires_at < ?", (reusable_before,)
                )
            )
        except Exception:  # housekeeping only; the claim itself has been answered
            log.warning("could not purge expired jti claims", exc_info=True)

    # --- audit trail and feedback ----------------------------------------------------------

    def record_cards(self, entries: Sequence[CardAudit]) -> None:
        if not entries:
            return
        d = self.dialect
        rows = [
            (
                e.hook_instance,
                e.service_id,
                e.card_uuid,
                e.rule,
                None if e.recommendation is None else d.json(e.recommendation),
                d.json(list(e.suggestion_uuids)),
                e.indicator,
                e.summary,
                d.timestamp(utc(e.served_at, "served_at")),
                e.patient_ref,
            )
            for e in entries
        ]

        def insert(session: Session) -> None:
            with session.transaction():
                for row in rows:
                    session.execute(
                        "INSERT INTO card_audit (hook_instance, service_id, card_uuid, rule, "
                        "recommendation, suggestion_uuids, indicator, summary, served_at, "
                        "patient_ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (hook_instance, card_uuid) DO NOTHING",
                        row,
                    )

        self._run(insert)

    def record_feedback(self, service_id: str, items: Sequence[FeedbackItem]) -> FeedbackResult:
        """Store each report once; committed before this returns."""
        d = self.dialect
        received = d.timestamp(_now())
        rows = []
        for item in items:
            if item.outcome not in OUTCOMES:
                raise ValueError(
                    f"outcome must be 'accepted' or 'overridden', not {item.outcome!r}"
                )
            rows.append(
                (
                    service_id,
                    item.card_uuid,
                    item.outcome,
                    d.timestamp(utc(item.outcome_timestamp, "outcome_timestamp")),
                    # A set: the order the EHR lists accepted suggestions in means nothing.
                    dumps_json(sorted(set(item.accepted_suggestion_ids))),
                    item.override_reason_system or "",
                    item.override_reason_code or "",
                    item.override_reason_display or "",
                    item.user_comment,
                    received,
                )
            )

        def insert(session: Session) -> int:
            stored = 0
            with session.transaction(durable=True):
                for row in rows:
                    stored += session.execute(
                        "INSERT INTO feedback (service_id, card_uuid, outcome, outcome_timestamp, "
                        "accepted_suggestions, override_reason_system, override_reason_code, "
                        "override_reason_display, user_comment, received_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        row,
                    ).rowcount
            return stored

        stored = self._run(insert) if rows else 0
        return FeedbackResult(stored=stored, duplicates=len(rows) - stored)

    # --- reporting -------------------------------------------------------------------------

    def rule_report(self, since: datetime | None = None) -> list[RuleStats]:
        """Per rule: cards shown, and each card's latest reported outcome.

        With ``since``: cards served since then, and their feedback; feedback on cards never
        audited counts when its outcome timestamp is since then.
        """
        d = self.dialect
        params = (d.timestamp(utc(since, "since") if since is not None else BEGINNING),)

        def query(session: Session) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
            shown = session.execute(SHOWN_SQL, params).rows
            return shown, session.execute(OUTCOMES_SQL, params).rows

        shown_rows, outcome_rows = self._run(query)
        shown: dict[str, int] = defaultdict(int)
        accepted: dict[str, int] = defaultdict(int)
        overridden: dict[str, int] = defaultdict(int)
        reasons: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for rule, count in shown_rows:
            shown[str(rule)] += _int(count)
        for rule, outcome, reason, count in outcome_rows:
            if outcome == "accepted":
                accepted[str(rule)] += _int(count)
            else:
                overridden[str(rule)] += _int(count)
                reasons[str(rule)][str(reason) if reason else NO_REASON] += _int(count)
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


def _now() -> datetime:
    return datetime.now(UTC)


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _rule_order(rule: str) -> tuple[bool, str]:
    return (rule == UNKNOWN_RULE, rule)
