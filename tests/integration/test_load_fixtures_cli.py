"""``ixazomib-cds load-fixtures`` puts every scenario's resources on a real FHIR server, from a
source checkout and from a non-editable install (the scenarios are package data), and loading
nothing is an error."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from fhirserver import FhirServerProcess

from cds_service.fixtures import load_scenarios

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).resolve().parents[2]
CHECKOUT_COMMAND = Path(sys.executable).parent / "ixazomib-cds"


@pytest.fixture(scope="module")
def installed_command(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ixazomib-cds`` of a fresh virtual environment with the package installed from a wheel
    (not editable), built from a copy of the sources, as ``pip install .`` builds it (the
    build backend from the package index): nothing of the checkout is on its path. Its
    dependencies come from this environment's site-packages (added as a path, not a site
    directory, so this environment's editable-install hook is not run).
    """
    root = tmp_path_factory.mktemp("installed")
    source = root / "source"
    shutil.copytree(
        REPOSITORY,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "node_modules", "build", "*.egg-info", "__pycache__", "bench-results"
        ),
    )
    wheels = root / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--wheel-dir", str(wheels), str(source)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    shutil.rmtree(source)
    environment = root / "venv"
    venv.create(environment, with_pip=False)
    site_packages = Path(
        sysconfig.get_path("purelib", vars={"base": str(environment), "platbase": str(environment)})
    )
    dependencies = sysconfig.get_path("purelib")
    (site_packages / "dependencies.pth").write_text(dependencies + "\n", encoding="utf-8")
    (wheel,) = wheels.glob("*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(environment / "bin" / "python"),
         "install", "--quiet", "--no-deps", str(wheel)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return environment / "bin" / "ixazomib-cds"


def load_fixtures(command: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(command), "load-fixtures", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd="/",  # nothing of the checkout in the working directory either
    )


def test_load_fixtures_uploads_every_scenario(local_fhir_server: FhirServerProcess) -> None:
    result = load_fixtures(
        CHECKOUT_COMMAND, "--fhir-server", local_fhir_server.base_url, "--token", "any-token"
    )
    assert result.returncode == 0, result.stderr
    scenarios = load_scenarios()
    assert f"loaded {len(scenarios)} scenarios" in result.stdout
    for scenario in scenarios[:: max(1, len(scenarios) // 10)]:
        patient = local_fhir_server.request("GET", f"Patient/{scenario.patient_id}")
        assert patient.status_code == 200, scenario.id


def test_an_installed_package_loads_its_scenarios(
    installed_command: Path, local_fhir_server: FhirServerProcess
) -> None:
    result = load_fixtures(installed_command, "--fhir-server", local_fhir_server.base_url)
    assert result.returncode == 0, result.stderr
    scenarios = load_scenarios()
    assert f"loaded {len(scenarios)} scenarios" in result.stdout
    patient = local_fhir_server.request("GET", "Patient/hep-moderate")
    assert patient.status_code == 200
    assert patient.json()["name"][0]["given"][0] == "hep-moderate"


def test_loading_nothing_is_an_error(installed_command: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    result = load_fixtures(
        installed_command, "--fhir-server", "http://127.0.0.1:9/fhir", "--fixtures", str(missing)
    )
    assert result.returncode == 1
    assert f"nothing to load: {missing} is not a directory" in result.stderr
    assert "Traceback" not in result.stderr
    assert "loaded" not in result.stdout

    result = load_fixtures(
        installed_command, "--fhir-server", "http://127.0.0.1:9/fhir", "--fixtures", str(tmp_path)
    )
    assert result.returncode == 1
    assert f"nothing to load: {tmp_path} holds no scenario (*.json)" in result.stderr
