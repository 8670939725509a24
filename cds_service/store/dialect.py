"""Everything that differs between SQLite and PostgreSQL, and nothing else.

The store's SQL (``sql_store.py``, ``migrations.py``) is written once, with ``?`` placeholders
and ``{ts}``/``{json}``/``{id}`` type slots; a ``Dialect`` fills the slots, converts the
placeholders, adapts timestamps and JSON, opens connections and takes the migration lock.

Connections run in autocommit mode; a ``Session.transaction()`` block is the only place a
transaction is open, so transactions stay short.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_SECONDS = 15.0
PG_CONNECT_TIMEOUT_SECONDS = 5
# Any constant works; it only has to be the same for every process of this service.
PG_MIGRATION_LOCK_KEY = 0x1AA2_0C05


@dataclass(frozen=True)
class Result:
    rowcount: int
    rows: list[tuple[Any, ...]]


def dumps_json(value: object) -> str:
    """Compact, key-sorted JSON; FHIR numbers parsed as Decimal are written as JSON numbers."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def utc(value: datetime, what: str) -> datetime:
    """``value`` in UTC; a naive datetime is refused (its meaning depends on where it came from)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, not {value.isoformat()}")
    return value.astimezone(UTC)


class Session(ABC):
    """One connection, used by one thread of one process."""

    def __init__(self) -> None:
        self.pid = os.getpid()

    @abstractmethod
    def execute(self, sql: str, params: Sequence[object] = ()) -> Result: ...

    @abstractmethod
    def transaction(self, *, migration_lock: bool = False, durable: bool = False) -> Any:
        """A context manager: one transaction; with ``migration_lock``, serialised across
        every process that migrates the same database; with ``durable``, on disk (not only
        in the operating system's cache) when the block ends."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    @abstractmethod
    def broken(self) -> bool:
        """True when the connection is unusable and a new one should be opened."""


class Dialect(ABC):
    name: str
    types: dict[str, str]
    # Errors after which the connection is discarded and the operation retried once.
    disconnect_errors: tuple[type[BaseException], ...] = ()

    @abstractmethod
    def connect(self) -> Session: ...

    @abstractmethod
    def timestamp(self, value: datetime) -> object:
        """A UTC datetime as the driver should bind it."""

    @abstractmethod
    def json(self, value: object) -> object:
        """A JSON value as the driver should bind it for a ``{json}`` column."""

    def ddl(self, template: str) -> str:
        return template.format(**self.types)

    @abstractmethod
    def describe(self) -> str:
        """Where the data goes, for logs; never includes a password."""


# --- SQLite ---------------------------------------------------------------------------------


class SqliteDialect(Dialect):
    """A local file in WAL mode, safe with several processes (gunicorn workers) writing at once:
    writers take the lock up front (BEGIN IMMEDIATE) and wait up to the busy timeout for it."""

    name = "sqlite"
    # Timestamps are ISO 8601 UTC text with a fixed width, so text order is time order and the
    # same instant always has the same text (unique constraints and comparisons work).
    types = {"ts": "TEXT", "json": "TEXT", "id": "INTEGER PRIMARY KEY AUTOINCREMENT"}

    def __init__(self, path: Path) -> None:
        self.path = path

    def connect(self) -> Session:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteSession(self.path)

    def timestamp(self, value: datetime) -> object:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def json(self, value: object) -> object:
        return dumps_json(value)

    def describe(self) -> str:
        return f"SQLite file {self.path}"


def _enable_wal(conn: sqlite3.Connection) -> str:
    """Switch to WAL; the journal mode the file has afterwards.

    The switch takes its lock without SQLite's busy handler, so gunicorn workers that open a
    fresh file at the same moment get "database is locked" at once: retry within the busy
    timeout. The mode is stored in the file, so once one worker has switched it, the others'
    switches are no-ops."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_SECONDS
    pause = 0.005
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, 0.2)


class SqliteSession(Session):
    def __init__(self, path: Path) -> None:
        super().__init__()
        # isolation_level=None: the sqlite3 module opens no transactions of its own.
        self.conn = sqlite3.connect(
            path,
            timeout=SQLITE_BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            check_same_thread=False,  # only so close() may run in another thread
        )
        self._broken = False
        try:
            self.conn.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
            mode = _enable_wal(self.conn)
            if str(mode).lower() != "wal":
                log.warning("SQLite %s: WAL mode unavailable (journal_mode=%s)", path, mode)
            # NORMAL under WAL: a commit survives a crash of the process (a killed worker) but
            # is not flushed to disk each time. Feedback asks for more (``durable``).
            self.conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            self.conn.close()
            raise

    def execute(self, sql: str, params: Sequence[object] = ()) -> Result:
        cursor = self.conn.execute(sql, tuple(params))
        try:
            rows = cursor.fetchall() if cursor.description else []
            return Result(cursor.rowcount, rows)
        finally:
            cursor.close()

    @contextmanager
    def transaction(self, *, migration_lock: bool = False, durable: bool = False) -> Iterator[None]:
        # FULL: a clinician's feedback is on disk before it is acknowledged, even on power
        # loss. The JWT replay cache and the audit trail do without that fsync per request.
        if durable:
            self.conn.execute("PRAGMA synchronous = FULL")
        try:
            # IMMEDIATE takes the write lock now: no deadlock-prone read-to-write upgrade
            # later, and concurrent migrations run one after the other.
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        finally:
            if durable:
                self.conn.execute("PRAGMA synchronous = NORMAL")

    def close(self) -> None:
        self._broken = True
        self.conn.close()

    @property
    def broken(self) -> bool:
        return self._broken


# --- PostgreSQL -----------------------------------------------------------------------------


class PostgresDialect(Dialect):
    """psycopg 3, one connection per thread (psycopg_pool is not a dependency)."""

    name = "postgresql"
    types = {
        "ts": "TIMESTAMPTZ",
        "json": "JSONB",
        "id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    }

    def __init__(self, url: str) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        # Defaults only: whatever the URL says (e.g. ?connect_timeout=10) wins.
        given = conninfo_to_dict(url)
        defaults = {
            "connect_timeout": str(PG_CONNECT_TIMEOUT_SECONDS),
            "application_name": "ixazomib-cds",
        }
        self.conninfo = make_conninfo(
            url, **{key: value for key, value in defaults.items() if key not in given}
        )
        self.disconnect_errors = (psycopg.OperationalError, psycopg.InterfaceError)

    def connect(self) -> Session:
        return PostgresSession(self.conninfo)

    def timestamp(self, value: datetime) -> object:
        return value.astimezone(UTC)

    def json(self, value: object) -> object:
        from psycopg.types.json import Jsonb

        return Jsonb(value, dumps=dumps_json)

    def describe(self) -> str:
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(self.conninfo)
        except Exception:
            return "PostgreSQL (unparsable URL)"
        host = params.get("host") or "localhost"
        port = params.get("port") or 5432
        return f"PostgreSQL database {params.get('dbname', '?')} on {host}:{port}"


class PostgresSession(Session):
    def __init__(self, conninfo: str) -> None:
        import psycopg

        super().__init__()
        self.conn = psycopg.connect(conninfo, autocommit=True)

    def execute(self, sql: str, params: Sequence[object] = ()) -> Result:
        query = sql.replace("?", "%s")
        with self.conn.cursor() as cursor:
            cursor.execute(query, tuple(params) if params else None)
            rows = cursor.fetchall() if cursor.description else []
            return Result(cursor.rowcount, rows)

    @contextmanager
    def transaction(self, *, migration_lock: bool = False, durable: bool = False) -> Iterator[None]:
        # PostgreSQL commits are durable whatever ``durable`` says.
        with self.conn.transaction():
            if migration_lock:
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (PG_MIGRATION_LOCK_KEY,))
            yield

    def close(self) -> None:
        self.conn.close()

    @property
    def broken(self) -> bool:
        return bool(self.conn.closed or self.conn.broken)
