"""SQLAlchemy engines for SQLite and PostgreSQL, and what makes the store "unavailable".

Everything that differs between the two databases is here or in ``schema.py``'s types.

SQLite: one local file in WAL mode, shared by the gunicorn workers of one host. Writers take
the lock up front (``BEGIN IMMEDIATE``, emitted for every transaction) and wait up to the busy
timeout for it. A pooled connection is bound to the file it opened: a connection whose file was
deleted or replaced since, or that SQLite opened read-only, is thrown away rather than used
(see ``_watch_sqlite``), so that a write is never acknowledged into a file nobody will read.

PostgreSQL: psycopg 3 behind SQLAlchemy's pool. A pooled connection is pinged before each use,
so a restarted server costs no failed call once it is back. A server that stops answering
without refusing connections (a host gone from the network, a frozen process, a stuck disk)
costs a call at most about ``PG_ANSWER_DEADLINE_SECONDS``, then a 503: the server cancels a
statement that runs too long (``statement_timeout``), the kernel gives up on data the host
does not acknowledge (``tcp_user_timeout``) and finds idle connections to a vanished host dead
(TCP keepalives), and a connection whose server has not answered within the deadline is cut
(``_watch_postgres``): libpq itself would wait for ever on a server whose kernel acknowledges
but that never answers.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sqlite3
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection, ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, QueuePool

from cds_service.errors import ServiceUnavailable
from cds_service.store.schema import dumps_json

log = logging.getLogger(__name__)

MIB = 1024 * 1024
SQLITE_BUSY_TIMEOUT_SECONDS = 15.0
# The write-ahead log is truncated back to this after a checkpoint (SQLite checkpoints every
# 1,000 pages, 4 MiB, unless a reader holds it back).
SQLITE_JOURNAL_SIZE_LIMIT_BYTES = 4 * MIB
# Free space the SQLite file's volume must have at start-up: the write-ahead log, the shared
# memory index and room for the database to grow.
SQLITE_MIN_FREE_BYTES = 16 * MIB
# SQLite errors after which a connection is thrown away (the next one may succeed: permissions
# restored, space freed, the file put back).
SQLITE_CONNECTION_FAULTS = (
    "SQLITE_READONLY",
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_CANTOPEN",
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
)
# A hung PostgreSQL costs a call at most about the FHIR deadline (CDS_FHIR_DEADLINE_SECONDS, 3):
# a connection checked out of the pool is cut if its server has not answered by then (the
# ping, the statements and the commit of one store operation).
PG_ANSWER_DEADLINE_SECONDS = 3.0
PG_CONNECT_TIMEOUT_SECONDS = 3  # libpq's minimum is 2
# The server cancels a statement running longer (waiting for a lock, say): a 503 before the
# deadline cuts the connection, which then stays usable.
PG_STATEMENT_TIMEOUT_MS = 2500
# Data sent and not acknowledged by the host for this long: the kernel drops the connection.
PG_TCP_USER_TIMEOUT_MS = 3000
# An idle pooled connection to a host that vanished is found dead after 10 + 3 x 3 s.
PG_KEEPALIVES_IDLE_SECONDS = 10
PG_KEEPALIVES_INTERVAL_SECONDS = 3
PG_KEEPALIVES_COUNT = 3
# Per worker process: gunicorn's threads (CDS_THREADS, 4) each hold at most one connection.
POOL_SIZE = 4
POOL_MAX_OVERFLOW = 8
POOL_TIMEOUT_SECONDS = 5.0


class StoreUnavailable(ServiceUnavailable):
    """The database cannot be reached or written now (a 503 with Retry-After)."""

    def __init__(self, reason: str) -> None:
        super().__init__("The service's database cannot be written just now; try again shortly.")
        self.reason = reason


class InsufficientSpace(RuntimeError):
    """The SQLite file's volume is too small to run on (found at start-up)."""


FileIdentity = tuple[int, int]


def file_identity(path: Path) -> FileIdentity | None:
    """(device, inode) of the file now at ``path``; None when there is none."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return (found.st_dev, found.st_ino)


# --- SQLite ------------------------------------------------------------------------------------


def sqlite_engine(path: Path) -> Engine:
    engine = create_engine(
        "sqlite+pysqlite://",
        creator=lambda: _open_sqlite(path),
        poolclass=QueuePool,
        pool_size=POOL_SIZE,
        max_overflow=POOL_MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        json_serializer=dumps_json,
    )
    _watch_sqlite(engine, path)
    return engine


def prepare_sqlite_file(path: Path) -> None:
    """Create the file (and its directory) if missing, after checking the volume's free space.

    Connections never create the file (``mode=rw``): a file deleted while the service runs is
    then an error, not a new empty database that would silently take the place of the old."""
    path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path.parent).free
    if free < SQLITE_MIN_FREE_BYTES:
        raise InsufficientSpace(
            f"CDS_DATABASE_URL: the volume holding {path} has {_size(free)} free; the SQLite "
            f"store needs at least {_size(SQLITE_MIN_FREE_BYTES)} free there (its write-ahead "
            f"log alone takes up to {_size(SQLITE_JOURNAL_SIZE_LIMIT_BYTES)} between "
            "checkpoints). Give the volume more space or point CDS_DATABASE_URL at a bigger one."
        )
    if not path.exists():
        path.touch()  # an empty file is an empty SQLite database


def _size(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n // 1024} KiB"


def _open_sqlite(path: Path) -> sqlite3.Connection:
    # SQLite opens a file it may not write read-only without saying so, and such a connection
    # stays read-only after the permissions are fixed: refuse to open it instead.
    for needed in (path, path.parent):
        if needed.exists() and not os.access(needed, os.W_OK):
            raise sqlite3.OperationalError(f"{needed} is not writable by this process")
    conn = sqlite3.connect(
        f"file:{quote(str(path))}?mode=rw",
        uri=True,
        timeout=SQLITE_BUSY_TIMEOUT_SECONDS,
        isolation_level=None,  # the sqlite3 module opens no transactions of its own
        check_same_thread=False,  # the pool hands a connection to one thread at a time
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
        mode = _enable_wal(conn)
        if mode.lower() != "wal":
            log.warning("SQLite %s: WAL mode unavailable (journal_mode=%s)", path, mode)
        # NORMAL under WAL: a commit survives a crash of the process (a killed worker) but is
        # not flushed to disk each time. Feedback asks for more (SqlStore, ``durable``).
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {SQLITE_JOURNAL_SIZE_LIMIT_BYTES}")
    except BaseException:
        conn.close()
        raise
    return conn


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


def _watch_sqlite(engine: Engine, path: Path) -> None:
    @event.listens_for(engine, "connect")
    def _remember_file(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info["file"] = file_identity(path)

    @event.listens_for(engine, "checkout")
    def _same_file(
        dbapi_connection: DBAPIConnection,
        record: ConnectionPoolEntry,
        proxy: PoolProxiedConnection,
    ) -> None:
        # The pool replaces a connection refused here with a fresh one (or fails to open it).
        if not is_live_file(record.info, path):
            raise DisconnectionError(f"{path} was deleted or replaced since it was opened")

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        # Take the write lock now: no deadlock-prone read-to-write upgrade later, and
        # concurrent migrations run one after the other.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    @event.listens_for(engine, "handle_error")
    def _fault_discards_connection(context: ExceptionContext) -> None:
        name = getattr(context.original_exception, "sqlite_errorname", "")
        if name.startswith(SQLITE_CONNECTION_FAULTS):
            context.is_disconnect = True


def is_live_file(info: dict[Any, Any], path: Path) -> bool:
    """True if the connection whose pool ``info`` this is writes to the file now at ``path``."""
    opened = info.get("file")
    return opened is not None and opened == file_identity(path)


# --- PostgreSQL --------------------------------------------------------------------------------


def postgres_url(database_url: str) -> URL:
    """The URL for SQLAlchemy's psycopg 3 dialect; libpq query parameters pass through."""
    return make_url(database_url).set(drivername="postgresql+psycopg")


def postgres_connect_args(url: URL) -> dict[str, object]:
    """libpq parameters; defaults only: whatever the URL says (e.g. ?connect_timeout=10) wins,
    and a statement timeout is added to the URL's own ``options`` unless they set one."""
    defaults: dict[str, object] = {
        "connect_timeout": PG_CONNECT_TIMEOUT_SECONDS,
        "application_name": "ixazomib-cds",
        "keepalives": 1,
        "keepalives_idle": PG_KEEPALIVES_IDLE_SECONDS,
        "keepalives_interval": PG_KEEPALIVES_INTERVAL_SECONDS,
        "keepalives_count": PG_KEEPALIVES_COUNT,
        "tcp_user_timeout": PG_TCP_USER_TIMEOUT_MS,
    }
    args = {key: value for key, value in defaults.items() if key not in url.query}
    given = url.query.get("options", "")
    options = " ".join(given) if isinstance(given, tuple) else given
    if "statement_timeout" not in options:
        args["options"] = f"{options} -c statement_timeout={PG_STATEMENT_TIMEOUT_MS}".strip()
    return args


def postgres_engine(database_url: str) -> Engine:
    url = postgres_url(database_url)
    engine = create_engine(
        url,
        connect_args=postgres_connect_args(url),
        pool_size=POOL_SIZE,
        max_overflow=POOL_MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        json_serializer=dumps_json,
    )
    _watch_postgres(engine)
    return engine


def _watch_postgres(engine: Engine) -> None:
    """Ping each connection taken from the pool, and cut it if its server has not answered
    within ``PG_ANSWER_DEADLINE_SECONDS`` of being taken (until it is returned).

    The ping is done here rather than by ``pool_pre_ping``, which runs before any pool event
    and so could not be bounded."""

    @event.listens_for(engine, "checkout")
    def _ping_within_deadline(
        dbapi_connection: DBAPIConnection,
        record: ConnectionPoolEntry,
        proxy: PoolProxiedConnection,
    ) -> None:
        if record.info.pop(CUT, False):  # cut after its last use: replaced by the pool
            raise DisconnectionError("the connection was cut after the answer deadline")
        _watchdog.arm(record.info, dbapi_connection)
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            lift_deadline(record.info)
            if record.info.pop(CUT, False):
                # The server did not answer: a fresh connection would wait as long again.
                raise StoreUnavailable(_not_answering()) from None
            raise DisconnectionError(str(error).splitlines()[0][:300]) from None

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        lift_deadline(record.info)

    @event.listens_for(engine, "handle_error")
    def _cut_is_unavailable(context: ExceptionContext) -> None:
        connection = context.connection
        if connection is None or connection.closed or connection.invalidated:
            return  # nothing of ours (a failed connect; the ping's own failures are above)
        if connection.connection.info.pop(CUT, False):
            context.is_disconnect = True
            # Not retried on a fresh connection: it would wait as long again.
            raise StoreUnavailable(_not_answering())


CUT = "cut"  # record.info key: the deadline passed and the connection's socket was shut down


class _Watchdog:
    """Cuts the connections whose server has not answered by their deadline.

    One daemon thread per process keeps the armed deadlines, so arming and lifting one is a dict
    operation under a lock (a ``threading.Timer`` per checkout cost a thread start per store
    operation). Every deadline is ``PG_ANSWER_DEADLINE_SECONDS`` from its arming, so the thread
    never sleeps longer than that and no arming needs to wake it."""

    def __init__(self) -> None:
        self.start_afresh()
        # A forked child has none of the parent's threads, and the parent's lock may have been
        # held at the fork (by its watchdog): the child starts afresh, with nothing armed.
        os.register_at_fork(after_in_child=self.start_afresh)

    def start_afresh(self) -> None:
        self._lock = threading.Lock()
        # id(record.info) -> (deadline on time.monotonic(), record.info, DBAPI connection); the
        # entry holds ``info``, so its id is not reused while it is armed.
        self._armed: dict[int, tuple[float, dict[Any, Any], Any]] = {}
        self._thread: threading.Thread | None = None  # started on the first arming

    def arm(self, info: dict[Any, Any], dbapi_connection: Any) -> None:
        deadline = time.monotonic() + PG_ANSWER_DEADLINE_SECONDS
        with self._lock:
            self._armed[id(info)] = (deadline, info, dbapi_connection)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="postgres-answer-deadline", daemon=True
                )
                self._thread.start()

    def lift(self, info: dict[Any, Any]) -> None:
        # Under the lock: once this returns, the connection has been cut (CUT set) or never will be.
        with self._lock:
            self._armed.pop(id(info), None)

    def _watch(self) -> None:
        while True:
            cut = 0
            with self._lock:
                now = time.monotonic()
                for key, (deadline, info, dbapi_connection) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[key]
                        cut += _cut(info, dbapi_connection)
                wake = min((deadline for deadline, _, _ in self._armed.values()), default=None)
            for _ in range(cut):  # not under the lock: a slow log would hold up every checkout
                log.error(
                    "PostgreSQL has not answered for %.0f s: cutting the connection",
                    PG_ANSWER_DEADLINE_SECONDS,
                )
            # Anything armed while this sleeps falls due after it ends.
            time.sleep(PG_ANSWER_DEADLINE_SECONDS if wake is None else wake - now)


def _cut(info: dict[Any, Any], dbapi_connection: Any) -> bool:
    """Shut the connection's socket down: the read libpq is blocked in fails at once, and the
    connection is thrown away. False if it was closed already."""
    try:
        if dbapi_connection.closed:
            return False
        info[CUT] = True
        with suppress(OSError), socket.socket(fileno=os.dup(dbapi_connection.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except Exception:  # closed by its own thread meanwhile: the watchdog must keep running
        log.warning("could not cut a PostgreSQL connection", exc_info=True)
    return True


_watchdog = _Watchdog()


def lift_deadline(info: dict[Any, Any]) -> None:
    """No deadline for the connection whose pool ``info`` this is, until it is taken again
    (``ixazomib-cds report``: a long query on a live server)."""
    _watchdog.lift(info)


def _not_answering() -> str:
    return f"the database has not answered within {PG_ANSWER_DEADLINE_SECONDS:.0f} s"


def describe_postgres(database_url: str) -> str:
    """Where the data goes, for logs; never the password."""
    url = postgres_url(database_url)
    host = url.host or url.query.get("host") or "localhost"
    return f"PostgreSQL database {url.database or '?'} on {host}:{url.port or 5432}"
