"""Store outages against the real server (``ixazomib-cds serve``, gunicorn, 2 workers) and real
databases: a throwaway PostgreSQL server that is stopped mid-run, an SQLite file on a small
tmpfs volume that fills up, an SQLite file deleted or made unwritable while the service runs.

What must hold: a store that cannot be written is answered 503 with an OperationOutcome and
``Retry-After`` (never a 401 that sends the EHR's engineers after their keys, never a 500);
``/healthz`` (readiness) says 503 while it lasts; nothing answered 200 is lost; and service
resumes by itself, without a restart, once the database is back.

The tmpfs volumes need root (``mount -t tmpfs``); making a file unwritable for root needs
``chattr +i``. Where neither is possible the test is skipped and says why.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from builders import order_sign_request
from live_server import LiveService, free_port, start_service
from pg import PgServer, start_postgres

from reliability.support import assert_operation_outcome, wait_for_workers, worker_pids

SIGN = "/cds-services/ixazomib-order-sign"
FEEDBACK = SIGN + "/feedback"


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PgServer]:
    server = start_postgres()  # its own server: the tests stop and start it
    yield server
    server.stop()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        directory = tmp_path / f"volume-{len(mounted)}"
        directory.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs volume needs root")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"mount -t tmpfs is not permitted here: {done.stderr!r}")
        mounted.append(directory)
        return directory

    yield mount
    for directory in mounted:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def feedback_body(card: str) -> dict[str, Any]:
    return {
        "feedback": [
            {"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-11-21T10:00:00Z"}
        ]
    }


def post_feedback(service: LiveService, card: str, *, auth: bool = True) -> requests.Response:
    headers = service.headers(FEEDBACK) if auth else {}
    return requests.post(
        service.base_url + FEEDBACK, json=feedback_body(card), headers=headers, timeout=20
    )


def call_order_sign(service: LiveService) -> requests.Response:
    return requests.post(
        service.base_url + SIGN,
        json=order_sign_request(),
        headers=service.headers(SIGN),
        timeout=20,
    )


def healthz(service: LiveService) -> requests.Response:
    return requests.get(service.base_url + "/healthz", timeout=20)


def assert_store_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers.get("Retry-After", "").isdigit(), dict(response.headers)
    assert "WWW-Authenticate" not in response.headers
    assert_operation_outcome(response.json(), mentions="database")


def stored_cards(database: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return dict(
            connection.execute("SELECT card_uuid, COUNT(*) FROM feedback GROUP BY 1").fetchall()
        )


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


# --- PostgreSQL stopped -----------------------------------------------------------------------


def test_postgres_outage_is_a_503_not_a_401_and_service_resumes_by_itself(
    own_postgres: PgServer,
) -> None:
    """Before: every call got 401 "Authentication required" while PostgreSQL was down."""
    service = start_service(env={"CDS_DATABASE_URL": own_postgres.create_database()})
    try:
        assert call_order_sign(service).status_code == 200
        assert post_feedback(service, "before").status_code == 200
        own_postgres.halt()
        try:
            for _ in range(6):  # both workers, several threads
                assert_store_unavailable(call_order_sign(service))
                assert_store_unavailable(post_feedback(service, f"during-{uuid.uuid4()}"))
            assert_store_unavailable(healthz(service))
        finally:
            own_postgres.resume()
        # The pooled connections died with the server; the ping at checkout replaces them.
        assert wait_until(lambda: healthz(service).status_code == 200)
        for _ in range(10):
            assert call_order_sign(service).status_code == 200
        assert post_feedback(service, "after").status_code == 200
    finally:
        service.stop()


# --- SQLite: a full volume ---------------------------------------------------------------------


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb") as out:
        try:
            while True:
                out.write(chunk)
                out.flush()
        except OSError:
            pass
    return filler


def test_sqlite_volume_full_is_a_503_and_nothing_acknowledged_is_lost(
    tmpfs: Callable[[str], Path],
) -> None:
    """Before: feedback on a full volume got 500 (auth off here, so the write itself fails)."""
    volume = tmpfs("20m")
    database = volume / "cds.sqlite3"
    service = start_service(auth=False, env={"CDS_DATABASE_URL": f"sqlite:///{database}"})
    acknowledged: set[str] = set()
    statuses: dict[int, int] = {}
    try:
        for n in range(5):
            card = f"before-{n}"
            assert post_feedback(service, card, auth=False).status_code == 200
            acknowledged.add(card)
        filler = fill(volume)
        for n in range(300):
            card = f"full-{n}"
            response = post_feedback(service, card, auth=False)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 200:
                acknowledged.add(card)
            else:
                assert_store_unavailable(response)
        assert statuses.get(503), f"the full volume was never noticed: {statuses}"
        filler.unlink()
        for n in range(20):  # recovered without a restart
            card = f"after-{n}"
            assert post_feedback(service, card, auth=False).status_code == 200
            acknowledged.add(card)
        assert healthz(service).status_code == 200
    finally:
        service.stop()
    rows = stored_cards(database)
    print(f"\nSQLite volume full: statuses while full {statuses}; {len(acknowledged)} acked")
    assert {card for card in acknowledged if rows.get(card) != 1} == set()


# --- SQLite: the file deleted, or not writable --------------------------------------------------


def test_sqlite_file_deleted_while_running_is_refused_and_readiness_says_so(
    tmp_path: Path,
) -> None:
    """Before: feedback was acknowledged into the deleted file and /healthz said 200."""
    database = tmp_path / "cds.sqlite3"
    service = start_service(auth=False, env={"CDS_DATABASE_URL": f"sqlite:///{database}"})
    try:
        assert post_feedback(service, "before", auth=False).status_code == 200
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        for n in range(20):
            assert_store_unavailable(post_feedback(service, f"lost-{n}", auth=False))
        assert_store_unavailable(healthz(service))
        assert not database.exists()
    finally:
        service.stop()


def make_unwritable(path: Path) -> Callable[[], object]:
    """As root, permission bits do not stop writes; the immutable attribute does."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        return lambda: path.chmod(0o644)
    if subprocess.run(["chattr", "+i", str(path)], check=False).returncode != 0:
        pytest.skip("root on a file system without chattr +i: cannot make a file unwritable")
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


def test_sqlite_workers_started_while_not_writable_recover_when_it_is_writable_again(
    tmp_path: Path,
) -> None:
    """Before: workers that started while the file was not writable kept read-only connections
    after the permissions were restored (about half the calls refused until a restart)."""
    database = tmp_path / "cds.sqlite3"
    service = start_service(auth=False, env={"CDS_DATABASE_URL": f"sqlite:///{database}"})
    try:
        assert post_feedback(service, "before", auth=False).status_code == 200
        master = service.process.pid
        restore = make_unwritable(database)
        try:
            old = wait_for_workers(master, 2)
            for pid in old:  # gunicorn starts fresh workers while the file is not writable
                os.kill(pid, 9)
            wait_for_workers(master, 2, exclude=set(old))
            for n in range(20):
                assert_store_unavailable(post_feedback(service, f"read-only-{n}", auth=False))
            assert_store_unavailable(healthz(service))
        finally:
            restore()
        assert set(worker_pids(master)).isdisjoint(old)
        for n in range(40):
            response = post_feedback(service, f"after-{n}", auth=False)
            assert response.status_code == 200, (n, response.status_code, response.text[:200])
        assert healthz(service).status_code == 200
    finally:
        service.stop()
    assert len(stored_cards(database)) == 41


# --- SQLite: a volume too small for the write-ahead log ------------------------------------------


def test_a_volume_too_small_for_the_wal_stops_start_up_with_a_clear_message(
    tmpfs: Callable[[str], Path],
) -> None:
    """Before: the service started on a 256 KiB volume and failed for good once the WAL had
    filled it."""
    volume = tmpfs("256k")
    environment = {
        **os.environ,
        "CDS_AUTH": "disabled",
        "CDS_DATABASE_URL": f"sqlite:///{volume}/cds.sqlite3",
        "CDS_WORKERS": "1",
    }
    command = [
        str(Path(sys.executable).parent / "ixazomib-cds"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(free_port()),
    ]
    try:
        done = subprocess.run(
            command, env=environment, capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the service started on a 256 KiB volume instead of refusing to")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "CDS_DATABASE_URL" in output
    assert "KiB free" in output, output
    assert "Traceback" not in output, output
