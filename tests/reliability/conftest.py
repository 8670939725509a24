"""Fixtures of the reliability suites, and the ``slow`` switch.

Tests marked ``@pytest.mark.slow`` (the 5-minute soak, long fuzzing) are skipped unless
``CDS_RUN_SLOW=1`` is set or pytest gets ``--run-slow`` (registered in tests/conftest.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_server import LiveService, start_service

from cds_service.fixtures import Scenario, load_scenarios
from reliability.support import FHIR_TIMING

HERE = Path(__file__).resolve().parent


def run_slow(config: pytest.Config) -> bool:
    try:
        flag = bool(config.getoption("--run-slow"))
    except ValueError:  # the option is registered only when this conftest is an initial one
        flag = False
    return flag or os.environ.get("CDS_RUN_SLOW", "").strip().lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if run_slow(config):
        return
    skip = pytest.mark.skip(reason="slow: set CDS_RUN_SLOW=1 (or --run-slow) to run it")
    for item in items:
        if item.get_closest_marker("slow") and HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def scenarios() -> dict[str, Scenario]:
    return {scenario.id: scenario for scenario in load_scenarios()}


@pytest.fixture(scope="module")
def fhir_timed_live() -> Iterator[LiveService]:
    """The live service (gunicorn, 2 workers, auth on) with the short FHIR timing
    (``support.FHIR_TIMING``); one for each test module that asks for it."""
    service = start_service(workers=2, env=FHIR_TIMING)
    yield service
    service.stop()
