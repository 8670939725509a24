"""A throwaway PostgreSQL server for the tests.

``start_postgres()`` runs initdb into a temporary directory and starts a server on a free
loopback port (and a Unix socket in the same directory), with durability switched off for
speed. ``PgServer.create_schema()`` gives each test its own empty schema (cheap),
``create_database()`` its own database;
``PgServer.stop()`` stops the server and removes the directory; ``halt()`` and ``resume()``
stop it as a crash or an outage would and start it again on the same port with the same data
(for outage tests: use a server of your own, not the shared one); ``freeze()`` and ``thaw()``
SIGSTOP and SIGCONT it (a server that accepts connections but does not answer).
``shared_postgres()`` starts one server per test session and stops it at exit.

The binaries are looked up on PATH and in /usr/lib/postgresql/<version>/bin; when missing (a
fresh CI machine) they are installed with ``apt-get install -y postgresql`` (as root). The
server refuses to run as root, so when the tests run as root it runs as the ``postgres`` user
(created by the Debian package), or a system user created for the purpose.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

SERVER_USER = "postgres"
FALLBACK_USER = "ixazomib-pgtest"
START_TIMEOUT_SECONDS = 30


class PostgresUnavailable(RuntimeError):
    """PostgreSQL could not be found, installed or started; the message says why."""


@dataclass
class PgServer:
    url: str
    """Superuser URL of the ``postgres`` database: postgresql://postgres@127.0.0.1:PORT/postgres"""
    port: int
    directory: Path
    bin_dir: Path
    run_as: str | None
    started_in_seconds: float
    _stopped: bool = field(default=False, repr=False)
    _tests_db: bool = field(default=False, repr=False)

    def url_for(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its URL."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"not a plain database name: {name!r}")
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def create_schema(self, name: str | None = None) -> str:
        """A new empty schema in the shared ``tests`` database; a URL whose search_path puts
        it first, so unqualified tables are created and found there. Much cheaper than a
        database per test."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"not a plain schema name: {name!r}")
        if not self._tests_db:
            self.create_database("tests")
            self._tests_db = True
        with psycopg.connect(self.url_for("tests"), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url_for('tests')}?options=-c%20search_path%3D{name}"

    def halt(self) -> None:
        """Stop the server at once (``immediate``: like a crash), keeping its data."""
        _run(
            [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.directory / "data"),
             "-m", "immediate", "-w", "-t", "20"],
            self.run_as,
        )

    def resume(self) -> None:
        """Start the halted server again, on the same port with the same data."""
        _run(
            [str(self.bin_dir / "pg_ctl"), "start", "-D", str(self.directory / "data"), "-w",
             "-t", str(START_TIMEOUT_SECONDS), "-l", str(self.directory / "server.log")],
            self.run_as,
        )

    def freeze(self) -> None:
        """SIGSTOP the server and every backend: it still accepts connections and its kernel
        acknowledges what is sent, but nothing answers (a hung host or disk)."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT what ``freeze`` stopped."""
        for pid in reversed(self._processes()):
            os.kill(pid, signal.SIGCONT)

    def _processes(self) -> list[int]:
        """The postmaster, then its children."""
        postmaster = int((self.directory / "data" / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        return [postmaster, *(int(pid) for pid in children)]

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            _run(
                [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.directory / "data"),
                 "-m", "immediate", "-w", "-t", "20"],
                self.run_as,
            )
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def start_postgres() -> PgServer:
    started = time.monotonic()
    bin_dir = find_bin_dir() or install_postgres()
    run_as = _server_user()
    # Under /tmp when the server runs as another user: $TMPDIR may be private to us.
    directory = Path(tempfile.mkdtemp(prefix="ixazomib-pg-", dir="/tmp" if run_as else None))
    try:
        if run_as is not None:
            entry = pwd.getpwnam(run_as)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        data = directory / "data"
        _run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "--no-sync", "-E", "UTF8", "--locale=C"],
            run_as,
        )
        last_error = ""
        for _ in range(3):  # the free port may be taken between finding and binding it
            port = _free_port()
            _write_settings(data, port, directory, run_as)
            try:
                _run(
                    [str(bin_dir / "pg_ctl"), "start", "-D", str(data), "-w",
                     "-t", str(START_TIMEOUT_SECONDS), "-l", str(directory / "server.log")],
                    run_as,
                )
            except PostgresUnavailable as error:
                last_error = f"{error}\n{_tail(directory / 'server.log')}"
                continue
            return PgServer(
                url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
                port=port,
                directory=directory,
                bin_dir=bin_dir,
                run_as=run_as,
                started_in_seconds=time.monotonic() - started,
            )
        raise PostgresUnavailable(f"PostgreSQL did not start:\n{last_error}")
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


_shared: PgServer | None = None


def shared_postgres() -> PgServer:
    """One server for the whole test session (every test module), stopped at exit."""
    global _shared
    if _shared is None or _shared._stopped:
        _shared = start_postgres()
        atexit.register(_shared.stop)
    return _shared


def stop_shared_postgres() -> None:
    if _shared is not None:
        _shared.stop()


def find_bin_dir() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, else the newest Debian install."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
        candidates.append(Path(on_path).parent)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0],
        reverse=True,
    )
    candidates += versions
    for directory in candidates:
        if all((directory / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def install_postgres() -> Path:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PostgresUnavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) are missing and cannot be installed "
            "here (needs root and apt-get); install the 'postgresql' package, or deselect "
            "these tests with -m 'not postgres'"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]
    attempt = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if attempt.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        attempt = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    found = find_bin_dir()
    if attempt.returncode != 0 or found is None:
        raise PostgresUnavailable(
            f"apt-get install postgresql failed:\n{attempt.stdout[-2000:]}{attempt.stderr[-2000:]}"
        )
    return found


def _server_user() -> str | None:
    """None when not root (the server runs as us); else an unprivileged user to run it as."""
    if os.geteuid() != 0:
        return None
    for name in (SERVER_USER, FALLBACK_USER):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_USER],
        check=True,
        capture_output=True,
    )
    return FALLBACK_USER


def _write_settings(data: Path, port: int, socket_dir: Path, run_as: str | None) -> None:
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{socket_dir}'",
        # Throwaway data: no durability, so start-up and commits are fast.
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "100",
        "shared_buffers": "32MB",
        "log_min_messages": "warning",
    }
    (data / "postgresql.auto.conf").write_text(
        "".join(f"{key} = {value}\n" for key, value in settings.items())
    )
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        os.chown(data / "postgresql.auto.conf", entry.pw_uid, entry.pw_gid)


def _run(command: list[str], run_as: str | None) -> None:
    env = dict(os.environ)
    user = group = None
    extra_groups: list[int] | None = None
    if run_as is not None:  # drop root for this command (the server refuses to run as root)
        entry = pwd.getpwnam(run_as)
        user, group, extra_groups = entry.pw_uid, entry.pw_gid, []
        env.update(HOME=entry.pw_dir or "/", USER=run_as, LOGNAME=run_as)
    try:
        subprocess.run(
            command,
            check=True,
            capture_output=True,
            text=True,
            env=env,
            cwd="/",
            timeout=START_TIMEOUT_SECONDS + 10,
            user=user,
            group=group,
            extra_groups=extra_groups,
        )
    except subprocess.CalledProcessError as error:
        raise PostgresUnavailable(
            f"{' '.join(command)} failed ({error.returncode}):\n{error.stdout}{error.stderr}"
        ) from None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
