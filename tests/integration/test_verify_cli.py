"""``ixazomib-cds verify``, run as an engineer runs it (the installed command, in a subprocess)
against a real FHIR server: the in-process service and the deployed one (gunicorn, auth on, a
real ES384 key signing a JWT per call), its table, its JUnit file, its ids and tag, --cleanup,
and exit statuses that fail when the advice is not what the scenario expects."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from fhirserver import FhirServer
from live_server import ISSUER, LiveService, start_service

from cds_service.fixtures import SCENARIO_DIR, load_scenarios

pytestmark = pytest.mark.integration

# One of each service: order-sign, order-select, lab-result.
SCENARIOS = ("hep-moderate", "hep-moderate-order-select", "lab-platelets-1st-onset")
TAG_SYSTEM = "urn:ixazomib-cds:verify-run"


def run_verify(*args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "ixazomib-cds"), "verify", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


def scenario_args(*ids: str) -> list[str]:
    return [arg for scenario_id in ids for arg in ("--scenario", scenario_id)]


def table_rows(stdout: str) -> dict[tuple[str, str], list[str]]:
    """(scenario, path) -> the row's cells, read from the printed table."""
    lines = stdout.splitlines()
    header = lines[0].split()
    assert header == ["scenario", "path", "expected", "got", "result"], lines[0]
    rows = {}
    for line in lines[2:]:
        if not line.strip():
            break
        cells = line.split()
        rows[(cells[0], cells[1])] = cells
    return rows


def run_code(stdout: str) -> str:
    return stdout.split("(run ", 1)[1].split(":", 1)[0]


def tagged(server: FhirServer, resource_type: str, code: str) -> list[dict[str, object]]:
    return server.search(f"{resource_type}?_tag={TAG_SYSTEM}|{code}")


@pytest.fixture(scope="module")
def live_service() -> Iterator[LiveService]:
    service = start_service(workers=1)
    yield service
    service.stop()


def test_in_process_service_passes_and_tags_its_own_resources(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    junit = tmp_path / "verify.xml"
    # --scenario takes several ids at once, or is repeated (the other tests).
    result = run_verify(
        "--fhir-server", fhir_server.base_url, "--junit", str(junit), "--scenario", *SCENARIOS
    )
    assert result.returncode == 0, result.stdout + result.stderr

    rows = table_rows(result.stdout)
    assert set(rows) == {(s, p) for s in SCENARIOS for p in ("prefetch", "fetch")}
    assert all(cells[-1] == "pass" for cells in rows.values()), result.stdout
    hepatic = rows[("hep-moderate", "fetch")]
    assert " ".join(hepatic[2:-1]).count("hepatic-start-dose ixazomib start-reduced 3 mg") == 2
    assert "6 passed, 0 failed, 0 skipped" in result.stdout

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("6", "0", "0")
    cases = {(c.get("classname"), c.get("name")) for c in suite.iter("testcase")}
    assert ("verify.prefetch", "lab-platelets-1st-onset") in cases
    assert not list(suite.iter("failure"))

    # The run's patients are on the server under ids of its own, with its tag; without
    # --cleanup they stay there.
    code = run_code(result.stdout)
    patients = tagged(fhir_server, "Patient", code)
    originals = {s.patient_id for s in load_scenarios() if s.id in SCENARIOS}
    assert {str(p["id"]) for p in patients} == {f"v{code}-{pid}" for pid in originals}


def test_cleanup_deletes_what_the_run_loaded(fhir_server: FhirServer) -> None:
    result = run_verify(
        "--fhir-server", fhir_server.base_url, "--cleanup", *scenario_args("hep-moderate")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    code = run_code(result.stdout)
    loaded = int(result.stdout.split(" resources loaded")[0].rsplit(" ", 1)[1])
    assert loaded > 0
    assert f"; {loaded} deleted" in result.stdout
    for resource_type in ("Patient", "Observation", "MedicationRequest"):
        assert tagged(fhir_server, resource_type, code) == [], resource_type


def test_deployed_service_with_a_signed_jwt_per_call(
    fhir_server: FhirServer, live_service: LiveService, tmp_path: Path
) -> None:
    key_file = tmp_path / "cds-client.pem"
    key_file.write_bytes(
        live_service.keys["es384-1"].private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    junit = tmp_path / "verify.xml"
    result = run_verify(
        "--fhir-server", fhir_server.base_url,
        "--fhir-token", "verify-test-token",
        "--service", live_service.base_url,
        "--jwt-key", str(key_file), "--jwt-iss", ISSUER, "--jwt-kid", "es384-1",
        "--junit", str(junit), "--cleanup",
        *scenario_args(*SCENARIOS),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr + live_service.logs()[-3000:]
    rows = table_rows(result.stdout)
    assert len(rows) == 6
    assert all(cells[-1] == "pass" for cells in rows.values())
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "0"


def test_deployed_service_that_refuses_the_calls_fails_the_run(
    fhir_server: FhirServer, live_service: LiveService
) -> None:
    # No --jwt-key: the service (auth on) answers 401, so nothing can pass.
    result = run_verify(
        "--fhir-server", fhir_server.base_url, "--service", live_service.base_url,
        *scenario_args("hep-moderate"),
    )  # fmt: skip
    assert result.returncode != 0
    assert "HTTP 401" in result.stderr


def test_an_expectation_the_service_does_not_meet_fails_the_run(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    scenario = json.loads((SCENARIO_DIR / "hep-moderate.json").read_text())
    scenario["expected"][0]["ixazomib"] = {"action": "start-reduced", "doseMg": 2.3}
    (tmp_path / "hep-moderate.json").write_text(json.dumps(scenario))
    junit = tmp_path / "verify.xml"
    result = run_verify(
        "--fhir-server", fhir_server.base_url, "--fixtures", str(tmp_path),
        "--junit", str(junit), "--cleanup",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    rows = table_rows(result.stdout)
    assert rows[("hep-moderate", "prefetch")][-1] == "FAIL"
    assert rows[("hep-moderate", "fetch")][-1] == "FAIL"
    assert "missing" in result.stdout.split("Failures:")[1]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "2"
    failure = next(suite.iter("failure"))
    assert "2.3" in (failure.text or "")
    assert "start-reduced 3 mg" in (failure.text or "")  # what the service said
