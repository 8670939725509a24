"""The parts of ``ixazomib-cds verify`` that need no server: a run's own ids and tag, the JUnit
file, and the CDS Hooks JWTs it signs (verified by the service's own Authenticator). The
command itself, against a real FHIR server and service, is tests/integration/test_verify_cli.py.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from jwt_tools import (
    MemoryJtiStore,
    jwk_of,
    jwks_of,
    make_es256_key,
    make_es384_key,
    make_rs384_key,
)

from cds_service.auth import AuthenticationError, Authenticator, TrustedIssuer
from cds_service.fixtures import load_scenarios
from cds_service.verify.isolation import RUN_TAG_SYSTEM, Run, isolate
from cds_service.verify.output import format_table, write_junit
from cds_service.verify.runner import Outcome, VerifyResult
from cds_service.verify.signing import load_signer

SCENARIOS = load_scenarios()
ISS = "https://ehr.example.org"


def references(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [r for item in value.values() for r in references(item)]
    if isinstance(value, list):
        return [r for item in value for r in references(item)]
    return []


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_a_run_gets_ids_of_its_own_and_references_follow(scenario: Any) -> None:
    run = Run("0a1b2c3d")
    before = json.dumps([scenario.resources, scenario.context], sort_keys=True)
    isolated = isolate(scenario, run)
    assert json.dumps([scenario.resources, scenario.context], sort_keys=True) == before

    loaded = {f"{r['resourceType']}/{r['id']}" for r in isolated.resources}
    assert all(r["id"].startswith("v0a1b2c3d-") for r in isolated.resources)
    assert all(len(r["id"]) <= 64 for r in isolated.resources)
    assert all(run.tag in r["meta"]["tag"] for r in isolated.resources)
    assert isolated.patient_id == f"v0a1b2c3d-{scenario.patient_id}"
    # Every reference that named a loaded resource names its new id; none names an old one.
    originals = {f"{r['resourceType']}/{r['id']}" for r in scenario.resources}
    for reference in references([isolated.resources, isolated.context]):
        assert reference not in originals - loaded, reference
    patient = f"Patient/{isolated.patient_id}"
    for resource in isolated.context_resources():
        subject = (resource.get("subject") or {}).get("reference")
        if subject is not None:
            assert subject == patient
    if scenario.read(f"Patient/{scenario.patient_id}") is not None:
        assert isolated.read(patient) is not None
    for selection in isolated.context.get("selections", []):
        assert selection in {f"{r['resourceType']}/{r['id']}" for r in isolated.context_resources()}


def test_the_tag_is_the_runs() -> None:
    run = Run.new()
    assert run.tag["system"] == RUN_TAG_SYSTEM
    assert run.tag_search == f"{RUN_TAG_SYSTEM}|{run.code}"
    assert Run.new().code != run.code


def test_junit_file_and_table(tmp_path: Path) -> None:
    outcomes = [
        Outcome("a", "prefetch", "r ixazomib hold", "r ixazomib hold", True, seconds=0.5),
        Outcome("a", "fetch", "r ixazomib hold", "(no recommendation)", False, ["missing r"]),
        Outcome("b", "fetch", "x", problems=["its client sends no fhirServer"]),
    ]
    result = VerifyResult(Run("0a1b2c3d"), outcomes, loaded=3)
    path = tmp_path / "junit.xml"
    write_junit(result, path)
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    failure = suite.find("testcase[@name='a'][@classname='verify.fetch']/failure")
    assert failure is not None
    assert failure.get("message") == "missing r"
    skipped = suite.find("testcase[@name='b']/skipped")
    assert skipped is not None
    assert "no fhirServer" in (skipped.get("message") or "")
    assert not result.passed

    table = format_table(outcomes).splitlines()
    assert table[0].split() == ["scenario", "path", "expected", "got", "result"]
    assert [line.split()[-1] for line in table[2:5]] == ["pass", "FAIL", "skip"]
    assert "    - missing r" in table


def test_a_run_with_nothing_run_does_not_pass() -> None:
    assert not VerifyResult(Run("0a1b2c3d"), [Outcome("b", "fetch", "x")]).passed


def _pem(key: Any, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.mark.parametrize("make_key", [make_es384_key, make_rs384_key])
def test_signed_tokens_pass_the_services_checks(make_key: Any, tmp_path: Path) -> None:
    key = make_key()
    authenticator = Authenticator(
        [TrustedIssuer(ISS, jwks=jwks_of(jwk_of(key, "k1")))], MemoryJtiStore()
    )
    sign = load_signer(_pem(key, tmp_path / "key.pem"), ISS, "k1")
    url = "https://cds.example.org/cds-services/ixazomib-order-sign"
    token = sign(url)
    claims = authenticator.verify(f"Bearer {token}", [url])
    assert claims["aud"] == url
    # A fresh token per call: the service refuses a replayed jti.
    authenticator.verify(f"Bearer {sign(url)}", [url])
    with pytest.raises(AuthenticationError):
        authenticator.verify(f"Bearer {token}", [url])


def test_a_key_the_service_would_refuse_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="P-384"):
        load_signer(_pem(make_es256_key(), tmp_path / "p256.pem"), ISS, "k1")
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(ValueError, match="PEM"):
        load_signer(tmp_path / "junk.pem", ISS, "k1")
