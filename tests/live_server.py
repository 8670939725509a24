"""Start the real service as production runs it (``ixazomib-cds serve``: gunicorn, several
workers) on a free loopback port, with authentication on and a real key set."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from jwt_tools import jwk_of, jwks_of, make_es384_key, make_rs384_key, mint

ISSUER = "https://ehr.example.org"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveService:
    base_url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    keys: dict[str, Any] = field(default_factory=dict)
    verify: str | bool = True
    """``requests``' ``verify`` for this service: the certificate file when it speaks TLS."""

    def token(self, path: str = "", alg: str = "ES384", **claims: Any) -> str:
        kid = "es384-1" if alg == "ES384" else "rs384-1"
        claims.setdefault("aud", self.base_url + path)
        return mint(self.keys[kid], kid, alg, iss=ISSUER, **claims)

    def headers(self, path: str = "", **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(path, **claims)}"}

    @property
    def log_path(self) -> Path:
        return self.workdir / "service.log"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_service(
    *,
    workers: int = 2,
    env: dict[str, str] | None = None,
    auth: bool = True,
    ready_timeout: float = 30.0,
    tls: tuple[Path, Path] | None = None,
    front: str | None = "none",
) -> LiveService:
    """``front``: ``serve --front``. ``none`` (gunicorn alone, as the Kubernetes app container
    runs it behind its sidecar) unless said otherwise: the process is then gunicorn's master,
    whose workers tests count and kill. ``None``: no ``--front`` and no ``CDS_FRONT``, the
    shipped default (auto). ``tls``: (certificate, key) PEM files; the service then speaks
    https only, through the nginx front."""
    workdir = Path(tempfile.mkdtemp(prefix="ixazomib-cds-live-"))
    port = free_port()
    base_url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    keys: dict[str, Any] = {"es384-1": make_es384_key(), "rs384-1": make_rs384_key()}
    issuers = workdir / "trusted-issuers.json"
    issuers.write_text(
        json.dumps(
            {
                "issuers": [
                    {
                        "iss": ISSUER,
                        "jwks": jwks_of(*(jwk_of(key, kid) for kid, key in keys.items())),
                    }
                ]
            }
        )
    )
    environment = {
        **os.environ,
        "CDS_BASE_URL": base_url,
        "CDS_AUTH": "required" if auth else "disabled",
        "CDS_TRUSTED_ISSUERS": str(issuers),
        "CDS_DATABASE_URL": f"sqlite:///{workdir / 'cds.sqlite3'}",
        "CDS_WORKERS": str(workers),
        **(env or {}),
    }
    if env and "CDS_FRONT" in env:  # a front asked for by its variable is the one it gets
        front = env["CDS_FRONT"] or None
    if tls is not None:
        front = "nginx"
        environment.update(CDS_TLS_CERT_FILE=str(tls[0]), CDS_TLS_KEY_FILE=str(tls[1]))
    command = [str(Path(sys.executable).parent / "ixazomib-cds"), "serve"]
    if front is None:
        environment.pop("CDS_FRONT", None)
    else:
        command += ["--front", front]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    log = (workdir / "service.log").open("wb")
    process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    service = LiveService(base_url, process, workdir, keys, str(tls[0]) if tls else True)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited at start-up:\n{service.logs()}")
        try:
            healthz = requests.get(f"{base_url}/healthz", timeout=1, verify=service.verify)
            if healthz.status_code == 200:
                return service
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    service.stop()
    raise RuntimeError(f"the service did not become ready:\n{service.logs()}")
