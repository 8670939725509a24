"""Replicas as Kubernetes runs them: two ``ixazomib-cds serve`` instances (gunicorn, 2 workers
each, auth on) behind one public base URL, on one PostgreSQL server, started at the same moment
on a fresh database, under load.

What must hold: a token used at one replica is refused at the other; feedback posted to both
is stored once; killing one replica leaves the other answering; a PostgreSQL restart costs
503s while it lasts (never a 401 or a 500) and calls succeed again afterwards without
restarting the service.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
import requests
from builders import order_sign_request
from jwt_tools import jwk_of, jwks_of, make_es384_key, mint
from live_server import LiveService, start_service
from pg import PgServer, start_postgres

from reliability.support import worker_pids

ISSUER = "https://ehr.example.org"
PUBLIC_BASE = "https://cds.example.org"  # the Service's address, the same for every replica
SIGN = "/cds-services/ixazomib-order-sign"
FEEDBACK = SIGN + "/feedback"
KID = "es384-replicas"
LOAD_THREADS = 4


@dataclass
class Cluster:
    postgres: PgServer
    database_url: str
    replicas: list[LiveService]
    key: Any

    def token(self, path: str = SIGN) -> str:
        return mint(self.key, KID, iss=ISSUER, aud=PUBLIC_BASE + path)

    def call(self, replica: LiveService, token: str | None = None) -> requests.Response:
        return requests.post(
            replica.base_url + SIGN,
            json=order_sign_request(),
            headers={"Authorization": f"Bearer {token or self.token()}"},
            timeout=20,
        )

    def feedback(self, replica: LiveService, card: str) -> requests.Response:
        body = {
            "feedback": [
                {"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-11-21T10:00:00Z"}
            ]
        }
        return requests.post(
            replica.base_url + FEEDBACK,
            json=body,
            headers={"Authorization": f"Bearer {self.token(FEEDBACK)}"},
            timeout=20,
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    postgres = start_postgres()  # its own server: the test restarts it
    database_url = postgres.create_database()
    key = make_es384_key()
    issuers = tmp_path_factory.mktemp("replicas") / "trusted-issuers.json"
    issuers.write_text(
        json.dumps({"issuers": [{"iss": ISSUER, "jwks": jwks_of(jwk_of(key, KID))}]})
    )
    env = {
        "CDS_DATABASE_URL": database_url,
        "CDS_TRUSTED_ISSUERS": str(issuers),
        "CDS_BASE_URL": PUBLIC_BASE,
    }
    # Started at the same moment, both migrating the fresh database.
    with ThreadPoolExecutor(2) as pool:
        replicas = list(pool.map(lambda _: start_service(workers=2, env=env), range(2)))
    yield Cluster(postgres, database_url, replicas, key)
    for replica in replicas:
        replica.stop()
    postgres.stop()


@dataclass
class Load:
    """Order-sign calls with fresh tokens, spread over the replicas still alive."""

    cluster: Cluster
    targets: list[LiveService]
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[tuple[int, int]] = field(default_factory=Counter)  # (replica, status)

    def run(self, index: int) -> None:
        n = index
        while not self.stop.is_set():
            with self.lock:
                target = self.targets[n % len(self.targets)]
            n += 1
            try:
                status = self.cluster.call(target).status_code
            except requests.RequestException:
                status = 0
            with self.lock:
                self.statuses[(self.cluster.replicas.index(target), status)] += 1


def kill_replica(replica: LiveService) -> None:
    """As when a pod dies: the gunicorn master and its workers, SIGKILL."""
    workers = worker_pids(replica.process.pid)
    replica.process.send_signal(signal.SIGKILL)
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    replica.process.wait(timeout=10)


def test_two_replicas_on_one_postgres_under_load(cluster: Cluster) -> None:
    first, second = cluster.replicas
    load = Load(cluster, [first, second])
    threads = [
        threading.Thread(target=load.run, args=(i,), daemon=True) for i in range(LOAD_THREADS)
    ]
    for thread in threads:
        thread.start()
    try:
        # 1. A token used at one replica is refused at the other, also when both see it at once.
        for n in range(20):
            token = cluster.token()
            replicas = (first, second) if n % 2 else (second, first)
            if n < 10:
                statuses = [cluster.call(replica, token).status_code for replica in replicas]
            else:
                with ThreadPoolExecutor(2) as pool:
                    statuses = list(
                        pool.map(lambda r, t=token: cluster.call(r, t).status_code, replicas)
                    )
            assert sorted(statuses) == [200, 401], (n, statuses)

        # 2. Feedback posted to both replicas (an EHR retrying elsewhere) is stored once.
        cards = [str(uuid.uuid4()) for _ in range(40)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda job: cluster.feedback(*job).json(),
                    [(replica, card) for card in cards for replica in (first, second)],
                )
            )
        assert sum(answer["stored"] for answer in answers) == len(cards)
        assert sum(answer["duplicates"] for answer in answers) == len(cards)

        # 3. One replica dies: the other keeps answering.
        with load.lock:
            load.targets.remove(first)
        kill_replica(first)
        for _ in range(20):
            assert cluster.call(second).status_code == 200

        # 4. PostgreSQL restarts: 503s while it is down, then calls succeed again by themselves.
        cluster.postgres.halt()
        down = [cluster.call(second).status_code for _ in range(5)]
        cluster.postgres.resume()
        restarted = time.monotonic()
        assert set(down) == {503}, down
        deadline = restarted + 20
        while cluster.call(second).status_code != 200:
            assert time.monotonic() < deadline, "no recovery within 20 s of the restart"
            time.sleep(0.2)
        recovered_in = time.monotonic() - restarted
        for _ in range(20):
            assert cluster.call(second).status_code == 200
        assert requests.get(second.base_url + "/healthz", timeout=10).status_code == 200
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=30)

    with psycopg.connect(cluster.database_url) as db:
        rows = dict(
            db.execute("SELECT card_uuid, COUNT(*) FROM feedback GROUP BY card_uuid").fetchall()
        )
    assert {card: rows.get(card) for card in cards} == dict.fromkeys(cards, 1)
    print(
        f"\nreplicas: load statuses (replica, status): {dict(load.statuses)}; "
        f"calls succeeded again {recovered_in:.1f} s after PostgreSQL restarted"
    )
    # The load saw only answers, 503s while PostgreSQL was down, and refused connections from
    # the replica that was killed; never a 401 or a 500.
    unexpected = {
        key: count
        for key, count in load.statuses.items()
        if key[1] not in (200, 503) and key != (0, 0)
    }
    assert not unexpected, unexpected
    assert load.statuses[(0, 200)] > 0
    assert load.statuses[(1, 200)] > 0
