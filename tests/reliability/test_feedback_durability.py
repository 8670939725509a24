"""Feedback durability: concurrent clients post feedback while a gunicorn worker is killed
with SIGKILL mid-run. Every feedback answered 200 is in the database afterwards, exactly once
(read straight from the SQLite file); a client that retries after a broken connection never
stores a report twice.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from live_server import LiveService, start_service

from reliability.support import kill, wait_for_workers, worker_pids

THREADS = 16
POSTS_PER_THREAD = 60
KILL_AFTER = (200, 600)  # successful posts before each SIGKILL (one per original worker)
PATH = "/cds-services/ixazomib-order-sign/feedback"


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: dict[str, dict[str, int]] = field(default_factory=dict)  # card -> answer
    failed_attempts: int = 0
    retried_cards: set[str] = field(default_factory=set)
    given_up: set[str] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)


@pytest.fixture(scope="module")
def live() -> Iterator[LiveService]:
    service = start_service(workers=2)
    yield service
    service.stop()


def _client(live: LiveService, tokens: list[str], ledger: Ledger, index: int) -> None:
    session = requests.Session()
    for post in range(POSTS_PER_THREAD):
        card = str(uuid.uuid4())
        body: dict[str, Any] = {
            "feedback": [
                {
                    "card": card,
                    "outcome": "overridden" if post % 2 else "accepted",
                    "outcomeTimestamp": "2026-11-21T10:00:00Z",
                    "overrideReason": {
                        "reason": {
                            "system": "urn:x",
                            "code": "clinical-judgement",
                            "display": "Clinical judgement",
                        },
                        "userComment": f"client {index} post {post}",
                    },
                }
            ]
        }
        for attempt in range(6):
            token = tokens.pop()
            try:
                response = session.post(
                    live.base_url + PATH,
                    json=body,
                    timeout=15,
                    headers={"Authorization": f"Bearer {token}"},
                )
            except requests.RequestException:
                response = None
            status = response.status_code if response is not None else 0
            with ledger.lock:
                ledger.statuses[status] = ledger.statuses.get(status, 0) + 1
                if status == 200:
                    ledger.acknowledged[card] = response.json()  # type: ignore[union-attr]
                    if attempt:
                        ledger.retried_cards.add(card)
                    break
                ledger.failed_attempts += 1
            session = requests.Session()  # the old connection may be to the dead worker
            time.sleep(0.2)
        else:
            with ledger.lock:
                ledger.given_up.add(card)


def test_every_acknowledged_feedback_is_stored_exactly_once_across_a_worker_kill(
    live: LiveService,
) -> None:
    master = live.process.pid
    before = wait_for_workers(master, 2)
    total = THREADS * POSTS_PER_THREAD
    tokens = [live.token(PATH) for _ in range(total * 2)]  # minted outside the run
    ledger = Ledger()
    threads = [
        threading.Thread(target=_client, args=(live, tokens, ledger, i), daemon=True)
        for i in range(THREADS)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    victims: list[int] = []
    killed_at: list[int] = []
    for threshold, victim in zip(KILL_AFTER, before, strict=True):
        while time.monotonic() - started < 60:
            with ledger.lock:
                if len(ledger.acknowledged) >= threshold:
                    break
            time.sleep(0.005)
        kill(victim)
        victims.append(victim)
        killed_at.append(len(ledger.acknowledged))
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads), "clients did not finish"
    after = wait_for_workers(master, 2, exclude=set(victims))
    assert not set(victims) & set(worker_pids(master)), "a killed worker is still listed"
    assert len(after) >= 2, "gunicorn did not restart the killed workers"

    database = live.workdir / "cds.sqlite3"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        rows = dict(
            connection.execute(
                "SELECT card_uuid, COUNT(*) FROM feedback GROUP BY card_uuid"
            ).fetchall()
        )
    missing = [card for card in ledger.acknowledged if rows.get(card) != 1]
    twice = {card: count for card, count in rows.items() if count != 1}
    print(
        f"\nfeedback durability: {total} posts by {THREADS} clients in {elapsed:.1f} s; "
        f"workers {victims} SIGKILLed after {killed_at} acks; statuses {ledger.statuses}; "
        f"failed attempts {ledger.failed_attempts}, retried {len(ledger.retried_cards)}, "
        f"gave up {len(ledger.given_up)}; rows {len(rows)}, each acknowledged card once"
    )
    assert not missing, f"acknowledged but not stored exactly once: {missing[:5]}"
    assert not twice, f"stored more than once: {list(twice.items())[:5]}"
    assert len(ledger.acknowledged) == total
    assert not ledger.given_up
    assert set(rows) == set(ledger.acknowledged)
    for card in ledger.retried_cards:  # a retry of a stored report is a duplicate, not a row
        answer = ledger.acknowledged[card]
        assert answer["stored"] + answer["duplicates"] == 1
    assert all(status in (0, 200, 502, 503) for status in ledger.statuses), ledger.statuses
