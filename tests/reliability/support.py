"""Helpers shared by the reliability suites: schema checks, worker processes, timing, and
calls of the live service against a misbehaving FHIR server."""

from __future__ import annotations

import json
import os
import signal
import time
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import requests
import yaml
from live_server import LiveService

from cds_service.fixtures import Scenario

SPEC_PATH = Path(__file__).resolve().parents[2] / "cds_service" / "openapi.yaml"
# The FHIR timing of the suites that point the live service at ``FaultyFhirServer``
# (tests/reliability/test_fhir_*.py): short, so that every fault ends within seconds.
FHIR_TIMEOUT = 1.0  # CDS_FHIR_TIMEOUT_SECONDS: one query
FHIR_DEADLINE = 2.0  # CDS_FHIR_DEADLINE_SECONDS: all of a call's queries
FHIR_TIMING = {
    "CDS_FHIR_TIMEOUT_SECONDS": str(FHIR_TIMEOUT),
    "CDS_FHIR_DEADLINE_SECONDS": str(FHIR_DEADLINE),
}
MARGIN = 1.5  # process, JSON and rules time on a busy 2-core CI machine
REQUIRED_KEYS = ("patient", "medicationRequests", "labs")  # their failure is a 412
GENERIC_401 = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "login", "diagnostics": "Authentication required."}],
}


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    return loaded


def validator(schema_name: str) -> jsonschema.protocols.Validator:
    """A JSON Schema 2020-12 validator for ``#/components/schemas/<schema_name>``."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec()["components"]}
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def schema_errors(schema_name: str, document: Any) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message[:300]}"
        for error in validator(schema_name).iter_errors(document)
    ]


def assert_operation_outcome(body: Any, *, mentions: str | None = None) -> None:
    errors = schema_errors("OperationOutcome", body)
    assert not errors, errors
    if mentions is not None:
        text = " ".join(issue["diagnostics"] for issue in body["issue"])
        assert mentions.lower() in text.lower(), f"{mentions!r} not in {text!r}"


def worker_pids(master_pid: int) -> list[int]:
    """The gunicorn workers: the children of the master process."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    try:
        return sorted(int(pid) for pid in children.read_text().split())
    except OSError:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master_pid:
                found.append(int(stat.parent.name))
        return sorted(found)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_for_workers(
    master_pid: int, count: int, timeout: float = 30.0, exclude: set[int] | None = None
) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in worker_pids(master_pid) if p not in (exclude or set())]
        if len(pids) >= count:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"gunicorn did not have {count} workers within {timeout} s")


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def call_without_prefetch(
    live: LiveService, scenario: Scenario, fhir_server: str
) -> tuple[requests.Response, float]:
    """The scenario's CDS call with NO prefetch and ``fhirServer`` set to ``fhir_server``, so
    the service fetches every resource; the response and the seconds it took (a hung call
    ends well past the deadline, to fail the caller's assertion on the time)."""
    path = f"/cds-services/{scenario.service}"
    body = json.loads(
        json.dumps(scenario.cds_request(prefetch=False, fhir_server=fhir_server), default=str)
    )
    headers = live.headers(path)  # minted before the clock starts
    started = time.monotonic()
    response = requests.post(
        live.base_url + path, json=body, headers=headers, timeout=FHIR_DEADLINE + 30
    )
    return response, time.monotonic() - started
