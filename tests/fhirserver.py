"""Start and drive the local FHIR R4 test server (Medplum's in-memory engine under Node).

The server lives in ``tests/fhir_server`` (``server.mjs`` plus a pinned ``package-lock.json``).
Typical use::

    server = start_fhir_server()          # installs node_modules on first use
    server.load({"resourceType": "Bundle", "type": "transaction", "entry": [...]})
    requests.get(f"{server.base_url}/Observation?patient=p1")
    server.reset()                        # empty the store between tests
    server.stop()                         # also done at interpreter exit

Only ``node`` and ``npm`` from the machine are needed (Node 20 or newer).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

SERVER_DIR = Path(__file__).resolve().parent / "fhir_server"
SERVER_SCRIPT = SERVER_DIR / "server.mjs"
_INSTALLED_MARKER = SERVER_DIR / "node_modules" / "@medplum" / "fhir-router" / "package.json"
_MIN_NODE_MAJOR = 20


class FhirServerError(RuntimeError):
    """The local FHIR server could not be installed or started."""


def node_version() -> tuple[int, int, int] | None:
    """The version of ``node`` on PATH, or None when there is none."""
    node = shutil.which("node")
    if node is None:
        return None
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", out.strip())
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def _check_node() -> str:
    node = shutil.which("node")
    version = node_version()
    if node is None or version is None:
        raise FhirServerError("node is not on PATH (Node.js >= 20 is needed for the FHIR server)")
    if version[0] < _MIN_NODE_MAJOR:
        raise FhirServerError(f"Node.js >= {_MIN_NODE_MAJOR} needed, found {version}")
    return node


def ensure_installed(timeout: float = 600.0) -> None:
    """Install the server's npm dependencies unless they are already there.

    Runs ``npm ci`` from the committed lockfile (``npm install`` if there is no lockfile yet).
    Quick and idempotent once ``node_modules`` exists; safe to call from parallel processes.
    """
    if _INSTALLED_MARKER.is_file():
        return
    _check_node()
    npm = shutil.which("npm")
    if npm is None:
        raise FhirServerError("npm is not on PATH; needed once to install the FHIR server")
    lock_path = SERVER_DIR / ".install.lock"
    with lock_path.open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            if _INSTALLED_MARKER.is_file():  # another process finished meanwhile
                return
            command = "ci" if (SERVER_DIR / "package-lock.json").is_file() else "install"
            result = subprocess.run(
                [npm, command, "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=SERVER_DIR,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if result.returncode != 0 or not _INSTALLED_MARKER.is_file():
                raise FhirServerError(
                    f"npm {command} failed in {SERVER_DIR} (exit {result.returncode}):\n"
                    f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
                )
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    with contextlib.suppress(OSError):
        lock_path.unlink()


class FhirServer:
    """A FHIR R4 server reached over HTTP: ``base_url`` is its FHIR base, ``token`` its bearer."""

    is_local = False

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token or None
        self._session = requests.Session()

    def headers(self) -> dict[str, str]:
        """Headers for FHIR requests (Accept, and the bearer token when there is one)."""
        headers = {"Accept": "application/fhir+json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def request(self, method: str, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        """``method`` on ``path`` relative to the FHIR base (or an absolute URL), with auth."""
        url = path if path.startswith("http") else f"{self.base_url}/{path.lstrip('/')}"
        headers = {**self.headers(), **kwargs.pop("headers", {})}
        if json is not None:
            headers.setdefault("Content-Type", "application/fhir+json")
        return self._session.request(
            method, url, json=json, headers=headers, timeout=kwargs.pop("timeout", 30), **kwargs
        )

    def reachable(self) -> str | None:
        """None when ``GET metadata`` answers with a CapabilityStatement, else why not."""
        try:
            response = self.request("GET", "metadata", timeout=15)
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {exc}"
        if response.status_code != 200:
            return f"GET metadata: HTTP {response.status_code}"
        try:
            kind = response.json().get("resourceType")
        except ValueError:
            kind = None
        if kind != "CapabilityStatement":
            return f"GET metadata returned {kind!r}, not a CapabilityStatement"
        return None

    def load(self, data: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Store resources, keeping their ids; returns the transaction-response Bundle.

        ``data`` is a transaction/batch Bundle (sent as is), any other Bundle (its entries'
        resources are PUT), a single resource, or a list of resources.
        """
        bundle = as_transaction(data)
        response = self.request("POST", "", json=bundle)
        if response.status_code != 200:
            raise FhirServerError(f"load failed: HTTP {response.status_code}: {response.text}")
        result: dict[str, Any] = response.json()
        failed = [
            entry.get("response", {})
            for entry in result.get("entry", [])
            if not str(entry.get("response", {}).get("status", "")).startswith("2")
        ]
        if failed:
            raise FhirServerError(f"load: {len(failed)} entries failed: {failed[:3]}")
        return result

    def search(self, query: str) -> list[dict[str, Any]]:
        """All resources a search returns (``"Observation?code=..."``), following next links."""
        resources: list[dict[str, Any]] = []
        for page in self.search_pages(query):
            resources.extend(
                entry["resource"]
                for entry in page.get("entry", [])
                if entry.get("search", {}).get("mode", "match") == "match"
            )
        return resources

    def search_pages(self, query: str, max_pages: int = 100) -> Iterator[dict[str, Any]]:
        """The searchset Bundles of a search, first page first."""
        url: str | None = query
        for _ in range(max_pages):
            if url is None:
                return
            response = self.request("GET", url)
            response.raise_for_status()
            page: dict[str, Any] = response.json()
            yield page
            url = next(
                (link["url"] for link in page.get("link", []) if link.get("relation") == "next"),
                None,
            )
        raise FhirServerError(f"more than {max_pages} pages for {query}")

    def close(self) -> None:
        self._session.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url}>"


class FhirServerProcess(FhirServer):
    """The local server (a Node process); ``base_url`` is ``http://127.0.0.1:PORT/fhir/R4``."""

    is_local = True

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        port: int,
        token: str | None,
        log_path: Path,
        startup_seconds: float,
    ) -> None:
        self.root_url = f"http://127.0.0.1:{port}"
        super().__init__(f"{self.root_url}/fhir/R4", token)
        self.process = process
        self.port = port
        self.log_path = log_path
        self.startup_seconds = startup_seconds
        self._stopped = False

    def is_running(self) -> bool:
        return not self._stopped and self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's stderr (errors; the access log too with FHIR_SERVER_QUIET=)."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def reset(self) -> None:
        """Empty the store and restore the start-up configuration (e.g. max page size)."""
        response = self._session.post(f"{self.root_url}/reset", timeout=30)
        response.raise_for_status()

    def requests_seen(self) -> list[str]:
        """The FHIR requests the server received ("GET /fhir/R4/Observation?..."), in arrival
        order, since the last ``reset`` or ``forget_requests``."""
        response = self._session.get(f"{self.root_url}/requests", timeout=30)
        response.raise_for_status()
        seen: list[str] = response.json()["requests"]
        return seen

    def forget_requests(self) -> None:
        response = self._session.delete(f"{self.root_url}/requests", timeout=30)
        response.raise_for_status()

    def configure(self, *, max_page_size: int | None) -> None:
        """Cap searchset pages at ``max_page_size`` entries whatever ``_count`` asks for."""
        response = self._session.post(
            f"{self.root_url}/config", json={"maxPageSize": max_page_size}, timeout=30
        )
        response.raise_for_status()

    # -- lifecycle --------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the server process (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._session.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        with contextlib.suppress(OSError):
            self.log_path.unlink()
        atexit.unregister(self.stop)

    def __enter__(self) -> FhirServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<FhirServerProcess {self.base_url} pid={self.process.pid} {state}>"


def as_transaction(data: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A transaction Bundle that PUTs ``data`` (see :meth:`FhirServerProcess.load`)."""
    if isinstance(data, Mapping):
        if data.get("resourceType") == "Bundle":
            if data.get("type") in ("transaction", "batch"):
                return dict(data)
            resources = [entry["resource"] for entry in data.get("entry", [])]
        else:
            resources = [data]
    else:
        resources = list(data)
    entries = []
    for resource in resources:
        resource_type = resource["resourceType"]
        if "id" in resource:
            request = {"method": "PUT", "url": f"{resource_type}/{resource['id']}"}
        else:
            request = {"method": "POST", "url": resource_type}
        entries.append({"resource": dict(resource), "request": request})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def start_fhir_server(
    token: str | None = None,
    *,
    max_page_size: int | None = None,
    startup_timeout: float = 30.0,
    install_timeout: float = 600.0,
) -> FhirServerProcess:
    """Start the local FHIR server on a free port and wait until it answers.

    ``token``: when set, FHIR requests without ``Authorization: Bearer <token>`` get 401
    (``/fhir/R4/metadata``, ``/reset``, ``/config`` and ``/healthz`` stay open).
    ``max_page_size``: cap on entries per searchset page (forces ``next`` links).
    """
    ensure_installed(timeout=install_timeout)
    node = _check_node()
    env = {**os.environ, "PORT": "0", "HOST": "127.0.0.1"}
    env.pop("FHIR_REQUIRE_TOKEN", None)
    env.pop("FHIR_MAX_PAGE_SIZE", None)
    env.setdefault("FHIR_SERVER_QUIET", "1")
    env["FHIR_EXIT_ON_STDIN_CLOSE"] = "1"
    if token:
        env["FHIR_REQUIRE_TOKEN"] = token
    if max_page_size is not None:
        env["FHIR_MAX_PAGE_SIZE"] = str(max_page_size)
    log_fd, log_name = tempfile.mkstemp(prefix="fhir-server-", suffix=".log")
    log_path = Path(log_name)
    started = time.monotonic()
    with os.fdopen(log_fd, "wb") as log_file:
        process = subprocess.Popen(
            [node, str(SERVER_SCRIPT)],
            cwd=SERVER_DIR,
            env=env,
            stdin=subprocess.PIPE,  # closed when we exit, however we exit: the server then stops
            stdout=subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
        )
    try:
        port = _wait_for_port(process, started + startup_timeout)
    except BaseException as exc:
        _kill(process)
        log = log_path.read_text(errors="replace")[-4000:]
        with contextlib.suppress(OSError):
            log_path.unlink()
        if not isinstance(exc, Exception):
            raise
        raise FhirServerError(f"FHIR server did not start ({exc}):\n{log}") from exc
    server = FhirServerProcess(process, port, token, log_path, 0.0)
    atexit.register(server.stop)
    try:
        _wait_healthy(server.root_url, started + startup_timeout)
    except BaseException as exc:
        log = server.log_tail()
        server.stop()
        if not isinstance(exc, Exception):
            raise
        raise FhirServerError(f"FHIR server on port {port} did not answer:\n{log}") from exc
    server.startup_seconds = time.monotonic() - started
    return server


def _wait_for_port(process: subprocess.Popen[bytes], deadline: float) -> int:
    assert process.stdout is not None
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no 'listening on' line")
            if not selector.select(timeout=min(remaining, 0.5)):
                if process.poll() is not None:
                    raise FhirServerError(f"exited with {process.returncode}")
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                raise FhirServerError(f"exited with {process.wait(timeout=5)}")
            buffer += chunk
    match = re.search(rb"listening on (\d+)", buffer)
    if match is None:
        raise FhirServerError(f"unexpected output {buffer!r}")
    return int(match.group(1))


def _wait_healthy(root_url: str, deadline: float) -> None:
    while True:
        try:
            if requests.get(f"{root_url}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("healthz")
        time.sleep(0.05)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()
