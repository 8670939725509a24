"""``ixazomib-cds load-fixtures`` puts every scenario's resources on a real FHIR server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fhirserver import FhirServerProcess

from cds_service.fixtures import load_scenarios

pytestmark = pytest.mark.integration


def test_load_fixtures_uploads_every_scenario(local_fhir_server: FhirServerProcess) -> None:
    command = [
        str(Path(sys.executable).parent / "ixazomib-cds"),
        "load-fixtures",
        "--fhir-server",
        local_fhir_server.base_url,
        "--token",
        "any-token",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    scenarios = load_scenarios()
    assert f"loaded {len(scenarios)} scenarios" in result.stdout
    for scenario in scenarios[:: max(1, len(scenarios) // 10)]:
        patient = local_fhir_server.request("GET", f"Patient/{scenario.patient_id}")
        assert patient.status_code == 200, scenario.id
