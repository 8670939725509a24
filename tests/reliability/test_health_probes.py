"""Liveness and readiness of the real server (``ixazomib-cds serve``, gunicorn) while its
store cannot be written, and the Kubernetes probes and the image's ``HEALTHCHECK`` as the
manifest and the Dockerfile run them.

Liveness (``/livez``) says whether the process can serve and touches no database; readiness
(``/healthz``) says whether the database takes a write. A database outage must make the pod
unready, never restarted: a restarted pod cannot even start until the database is back (the
schema is migrated at start-up), so restarts work against the automatic recovery.

The SQLite file and its write-ahead log are made unwritable with ``chattr +i`` (as root,
permission bits do not stop writes); without root or chattr the test is skipped and says why.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import yaml
from live_server import LiveService, start_service

from reliability.support import assert_operation_outcome

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DEPLOYMENT = DEPLOY / "k8s" / "deployment.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"


def make_immutable(paths: list[Path]) -> Callable[[], None]:
    """``chattr +i`` on each existing file; returns the undo."""
    if os.geteuid() != 0:
        pytest.skip("making open SQLite files unwritable needs root (chattr +i)")
    done: list[Path] = []
    for path in paths:
        if not path.exists():
            continue
        if subprocess.run(["chattr", "+i", str(path)], check=False).returncode != 0:
            for undo in done:
                subprocess.run(["chattr", "-i", str(undo)], check=False)
            pytest.skip("this file system has no chattr +i: cannot make a file unwritable")
        done.append(path)

    def restore() -> None:
        for path in done:
            subprocess.run(["chattr", "-i", str(path)], check=True)

    return restore


def _aimed_at(command: list[str], service: LiveService) -> list[str]:
    """A ``python -c`` probe command aimed at this service's port and run with this Python."""
    assert command[0] == "python"
    port = service.base_url.rsplit(":", 1)[1]
    return [
        sys.executable,
        *command[1:-1],
        re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", command[-1]),
    ]


def app_probe_command(probe: str, service: LiveService) -> list[str]:
    """The app container's exec probe from the manifest (the manifest's port is the pod's
    loopback port 8081)."""
    deployment = yaml.safe_load(DEPLOYMENT.read_text(encoding="utf-8"))
    app = next(
        c
        for c in deployment["spec"]["template"]["spec"]["containers"]
        if c["name"] == "ixazomib-cds"
    )
    return _aimed_at(list(app[probe]["exec"]["command"]), service)


def image_healthcheck_command(service: LiveService) -> list[str]:
    """The Dockerfile's ``HEALTHCHECK ... CMD [...]`` (the image's port is 8080)."""
    found = re.search(
        r"^HEALTHCHECK\b.*?\bCMD (\[[^\n]*\])", DOCKERFILE.read_text(encoding="utf-8"), re.M | re.S
    )
    assert found, "no HEALTHCHECK CMD in the Dockerfile"
    return _aimed_at(json.loads(found.group(1)), service)


def liveness_checks(service: LiveService) -> dict[str, list[str]]:
    """Every check whose failure gets the process restarted."""
    return {
        "startupProbe": app_probe_command("startupProbe", service),
        "livenessProbe": app_probe_command("livenessProbe", service),
        "HEALTHCHECK": image_healthcheck_command(service),
    }


def test_store_unwritable_the_process_is_live_but_not_ready(tmp_path: Path) -> None:
    """Before: the only probe was /healthz, so liveness failed with the database and the
    kubelet restarted pods that could not start again until the database was back; the
    image's HEALTHCHECK asked /healthz too (Docker, ECS: the same restarts)."""
    database = tmp_path / "cds.sqlite3"
    service = start_service(auth=False, env={"CDS_DATABASE_URL": f"sqlite:///{database}"})
    try:
        for name, check in liveness_checks(service).items():
            assert subprocess.run(check, timeout=10).returncode == 0, name
        assert requests.get(service.base_url + "/healthz", timeout=10).status_code == 200
        # The file and its write-ahead log; not the shared-memory index (-shm), which SQLite
        # has mapped into memory: a write to that mapping of an immutable file is a SIGBUS.
        restore = make_immutable([database, Path(f"{database}-wal")])
        try:
            for _ in range(4):  # both workers
                ready = requests.get(service.base_url + "/healthz", timeout=20)
                assert ready.status_code == 503, ready.text[:300]
                assert ready.headers.get("Retry-After") == "5"
                assert_operation_outcome(ready.json(), mentions="database")
                live = requests.get(service.base_url + "/livez", timeout=20)
                assert (live.status_code, live.json()) == (200, {"status": "ok"})
            # Neither the kubelet nor Docker would restart it.
            for name, check in liveness_checks(service).items():
                assert subprocess.run(check, timeout=10).returncode == 0, name
        finally:
            restore()
        # Ready again by itself, without a restart.
        ready = requests.get(service.base_url + "/healthz", timeout=20)
        assert ready.status_code == 200, ready.text[:300]
    finally:
        service.stop()
