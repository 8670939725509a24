"""Fixtures for the integration tests: a real FHIR R4 server.

``fhir_server`` (session): the server named by ``CDS_TEST_FHIR_SERVER`` (a FHIR base URL, with
an optional bearer token in ``CDS_TEST_FHIR_TOKEN``) when it answers ``GET metadata``; otherwise
the local in-memory server (Medplum under Node, see ``tests/fhirserver.py``), installed with npm
on first use. Skips with the reason when neither is available (fails instead under CI=true).

``clean_fhir_server`` (function): the same server, emptied first when it is the local one (an
external server is never reset, so tests on it must use their own ids).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from fhirserver import FhirServer, FhirServerError, FhirServerProcess, start_fhir_server

_STARTUP_STASH = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def fhir_server(request: pytest.FixtureRequest) -> Iterator[FhirServer]:
    """A FHIR R4 server for the session: external if configured and reachable, else local."""
    problems: list[str] = []
    external_url = os.environ.get("CDS_TEST_FHIR_SERVER", "").strip()
    if external_url:
        external = FhirServer(external_url, os.environ.get("CDS_TEST_FHIR_TOKEN") or None)
        problem = external.reachable()
        if problem is None:
            request.config.stash[_STARTUP_STASH] = f"external FHIR server {external_url}"
            yield external
            external.close()
            return
        problems.append(f"CDS_TEST_FHIR_SERVER={external_url} not usable: {problem}")
    started = time.monotonic()
    try:
        local = start_fhir_server()
    except FhirServerError as exc:
        problems.append(f"local FHIR server (tests/fhir_server, needs node >= 20 + npm): {exc}")
        message = "no FHIR server for the integration tests: " + " | ".join(problems)
        if os.environ.get("CI"):
            # In CI a skip would pass a run whose own files failed to install the server.
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    request.config.stash[_STARTUP_STASH] = (
        f"local FHIR server {local.base_url} started in {time.monotonic() - started:.2f}s"
    )
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def clean_fhir_server(fhir_server: FhirServer) -> FhirServer:
    """The session's FHIR server, emptied (local server only) before the test."""
    if isinstance(fhir_server, FhirServerProcess):
        fhir_server.reset()
    return fhir_server


@pytest.fixture
def local_fhir_server(fhir_server: FhirServer) -> FhirServerProcess:
    """The local server, emptied; skips the test when the session uses an external server."""
    if not isinstance(fhir_server, FhirServerProcess):
        pytest.skip("needs the local FHIR server (CDS_TEST_FHIR_SERVER is set)")
    fhir_server.reset()
    return fhir_server


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    line = config.stash.get(_STARTUP_STASH, None)
    if line:
        terminalreporter.write_line(line)
