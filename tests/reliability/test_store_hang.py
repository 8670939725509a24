"""A PostgreSQL server that stops answering without refusing connections, against the real
server (``ixazomib-cds serve``, gunicorn, 2 workers, authentication on) and a throwaway
PostgreSQL server of its own.

The server and all its backends are stopped with SIGSTOP (``PgServer.freeze``): connections
are still accepted and what is sent is acknowledged by the kernel, but nothing answers, as
with a hung host or a stuck disk. No timeout of libpq fires then (keepalives and
``tcp_user_timeout`` are answered by the kernel; ``statement_timeout`` is the frozen server's
own): only the service's answer deadline bounds the wait.

What must hold: every call is answered within a bounded time (503 with ``Retry-After``, never
a hang, a 401 or a 500) while the server is frozen, and calls succeed again by themselves once
it is thawed (SIGCONT). A table lock held by another session (the server alive, a statement
waiting) is answered 503 by the statement timeout, and the next call succeeds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests
from builders import order_sign_request
from live_server import LiveService, start_service
from pg import PgServer, start_postgres

from cds_service.store.engines import PG_ANSWER_DEADLINE_SECONDS
from reliability.support import assert_operation_outcome

SIGN = "/cds-services/ixazomib-order-sign"
FEEDBACK = SIGN + "/feedback"
# The deadline plus scheduling on a busy machine; before, calls waited for ever.
ANSWER_WITHIN_SECONDS = PG_ANSWER_DEADLINE_SECONDS + 2.5
CLIENT_TIMEOUT_SECONDS = 30


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PgServer]:
    server = start_postgres()  # its own server: the tests freeze it
    yield server
    server.thaw()
    server.stop()


@pytest.fixture
def database_url(own_postgres: PgServer) -> str:
    return own_postgres.create_database()


@pytest.fixture
def service(database_url: str) -> Iterator[LiveService]:
    live = start_service(env={"CDS_DATABASE_URL": database_url})
    yield live
    live.stop()


def order_sign(service: LiveService) -> requests.Response:
    return requests.post(
        service.base_url + SIGN,
        json=order_sign_request(),
        headers=service.headers(SIGN),
        timeout=CLIENT_TIMEOUT_SECONDS,
    )


def feedback(service: LiveService) -> requests.Response:
    body = {
        "feedback": [
            {
                "card": str(uuid.uuid4()),
                "outcome": "accepted",
                "outcomeTimestamp": "2026-11-21T10:00:00Z",
            }
        ]
    }
    return requests.post(
        service.base_url + FEEDBACK,
        json=body,
        headers=service.headers(FEEDBACK),
        timeout=CLIENT_TIMEOUT_SECONDS,
    )


def healthz(service: LiveService) -> requests.Response:
    return requests.get(service.base_url + "/healthz", timeout=CLIENT_TIMEOUT_SECONDS)


def timed(call: Callable[[], requests.Response]) -> tuple[int, float, requests.Response]:
    started = time.monotonic()
    response = call()
    return response.status_code, time.monotonic() - started, response


def assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers.get("Retry-After") == "5"
    assert "WWW-Authenticate" not in response.headers
    assert_operation_outcome(response.json(), mentions="database")


def test_a_frozen_postgres_costs_a_call_the_deadline_then_503_and_recovers_by_itself(
    own_postgres: PgServer, service: LiveService
) -> None:
    """Before: pooled connections waited for the frozen server for ever (the client gave up
    after 30 s); only a new connection was bounded (connect_timeout, 5 s)."""
    for _ in range(8):  # pooled connections in both workers
        assert order_sign(service).status_code == 200
    calls = [lambda: order_sign(service), lambda: feedback(service), lambda: healthz(service)]
    own_postgres.freeze()
    try:
        durations: list[float] = []
        # 4 at once (several pooled connections; no more than one worker's 4 threads, so that
        # no call waits for a thread), then one after another.
        with ThreadPoolExecutor(max_workers=4) as pool:
            for _, elapsed, response in pool.map(timed, [calls[0]] * 4):
                assert_unavailable(response)
                durations.append(elapsed)
        for call in calls * 3:
            _, elapsed, response = timed(call)
            assert_unavailable(response)
            durations.append(elapsed)
    finally:
        thawed_at = time.monotonic()
        own_postgres.thaw()
    print(
        f"\nfrozen PostgreSQL: {len(durations)} calls, all 503; slowest {max(durations):.2f} s, "
        f"median {sorted(durations)[len(durations) // 2]:.2f} s"
        f" (deadline {PG_ANSWER_DEADLINE_SECONDS:.0f} s)"
    )
    assert max(durations) <= ANSWER_WITHIN_SECONDS, [round(d, 1) for d in durations]
    # Thawed: calls succeed again without a restart.
    while healthz(service).status_code != 200:
        assert time.monotonic() - thawed_at < 20, "no recovery 20 s after SIGCONT"
        time.sleep(0.1)
    recovered = time.monotonic() - thawed_at
    statuses = [order_sign(service).status_code for _ in range(10)]
    statuses += [feedback(service).status_code for _ in range(5)]
    print(
        f"thawed: /healthz 200 after {recovered:.2f} s; then {statuses.count(200)} of 15 calls 200"
    )
    assert statuses == [200] * 15


def test_a_statement_waiting_for_a_lock_is_cancelled_by_the_statement_timeout(
    database_url: str, service: LiveService
) -> None:
    """The server is alive but the replay cache is locked by another session: the server
    cancels the waiting statement (statement_timeout) and the call gets 503; once the lock is
    released the next call succeeds (the connection was not cut)."""
    assert order_sign(service).status_code == 200
    with psycopg.connect(database_url) as locker:
        locker.execute("LOCK TABLE jti_claims IN ACCESS EXCLUSIVE MODE")
        _, elapsed, response = timed(lambda: order_sign(service))
        assert_unavailable(response)
        locker.rollback()
    print(f"\nlocked table: 503 after {elapsed:.2f} s")
    assert elapsed <= ANSWER_WITHIN_SECONDS
    assert [order_sign(service).status_code for _ in range(6)] == [200] * 6
    assert "cutting the connection" not in service.logs()  # the server answered: no cut


def test_without_a_statement_timeout_a_waiting_statement_is_cut_at_the_deadline(
    database_url: str,
) -> None:
    """The statement timeout switched off in CDS_DATABASE_URL (the URL's own options win): a
    statement waiting for a lock is cut by the answer deadline instead, the call gets 503, and
    calls succeed once the lock is released (the cut connection is replaced)."""
    unlimited = f"{database_url}?options=-c%20statement_timeout%3D0"
    service = start_service(env={"CDS_DATABASE_URL": unlimited})
    try:
        assert order_sign(service).status_code == 200
        with psycopg.connect(database_url) as locker:
            locker.execute("LOCK TABLE jti_claims IN ACCESS EXCLUSIVE MODE")
            _, elapsed, response = timed(lambda: order_sign(service))
            assert_unavailable(response)
            locker.rollback()
        print(f"\nlocked table, no statement timeout: 503 after {elapsed:.2f} s")
        assert PG_ANSWER_DEADLINE_SECONDS <= elapsed <= ANSWER_WITHIN_SECONDS
        assert [order_sign(service).status_code for _ in range(6)] == [200] * 6
        assert "cutting the connection" in service.logs()
    finally:
        service.stop()
