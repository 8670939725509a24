"""Liveness and readiness of the real server (``ixazomib-cds serve``, gunicorn) while its
store cannot be written, and the Kubernetes probes as the manifest runs them.

Liveness (``/livez``) says whether the process can serve and touches no database; readiness
(``/healthz``) says whether the database takes a write. A database outage must make the pod
unready, never restarted: a restarted pod cannot even start until the database is back (the
schema is migrated at start-up), so restarts work against the automatic recovery.

The SQLite file and its write-ahead log are made unwritable with ``chattr +i`` (as root,
permission bits do not stop writes); without root or chattr the test is skipped and says why.
"""

from __future__ import annotations

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

DEPLOYMENT = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "deployment.yaml"


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


def app_probe_command(probe: str, service: LiveService) -> list[str]:
    """The app container's exec probe from the manifest, aimed at this service's port (the
    manifest's is the pod's loopback port 8081) and run with this Python."""
    deployment = yaml.safe_load(DEPLOYMENT.read_text(encoding="utf-8"))
    app = next(
        c
        for c in deployment["spec"]["template"]["spec"]["containers"]
        if c["name"] == "ixazomib-cds"
    )
    command: list[str] = list(app[probe]["exec"]["command"])
    assert command[0] == "python"
    port = service.base_url.rsplit(":", 1)[1]
    return [
        sys.executable,
        *command[1:-1],
        re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", command[-1]),
    ]


def test_store_unwritable_the_process_is_live_but_not_ready(tmp_path: Path) -> None:
    """Before: the only probe was /healthz, so liveness failed with the database and the
    kubelet restarted pods that could not start again until the database was back."""
    database = tmp_path / "cds.sqlite3"
    service = start_service(auth=False, env={"CDS_DATABASE_URL": f"sqlite:///{database}"})
    try:
        for probe in ("startupProbe", "livenessProbe"):
            assert subprocess.run(app_probe_command(probe, service), timeout=10).returncode == 0
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
            for probe in ("startupProbe", "livenessProbe"):  # the kubelet would not restart it
                done = subprocess.run(app_probe_command(probe, service), timeout=10)
                assert done.returncode == 0, probe
        finally:
            restore()
        # Ready again by itself, without a restart.
        ready = requests.get(service.base_url + "/healthz", timeout=20)
        assert ready.status_code == 200, ready.text[:300]
    finally:
        service.stop()
