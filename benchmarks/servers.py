"""Start, probe and stop the two gunicorn servers of the benchmark (loopback only).

Each server is a process group of its own (gunicorn master plus workers) started by us; it is
stopped with SIGTERM to the master (gunicorn's graceful shutdown) and, if it has not gone
after a bounded wait, SIGKILL to that same group. Nothing else is ever signalled.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """A server did not start or did not answer as it should."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    """One gunicorn server we started, with its log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    cwd: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: master and workers
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace_seconds: float = 15.0) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                # Still alive (so not reaped): its group id is certainly ours to end.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by a process and its live descendants (Linux).

    Read from /proc before and after a timed run, the difference is the CPU the server spent
    on that run, whatever else the machine was doing: a figure that stays comparable on a
    shared, busy machine where requests per second do not. 0.0 where /proc is unavailable.
    """
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    pending, seen = [pid], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            # Fields after the command name (which may hold spaces): utime is the 12th, stime 13th.
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(child) for child in children)
        except (OSError, ValueError, IndexError):
            continue
    return total / ticks


def service_argv() -> list[str]:
    """``ixazomib-cds serve --front none`` from this virtual environment (the console script):
    gunicorn alone, as the bare app runs and as the pod's app container runs behind its
    sidecar, so the two are compared under the same server."""
    script = Path(sys.executable).with_name("ixazomib-cds")
    if script.is_file():
        return [str(script), "serve", "--front", "none"]
    return [sys.executable, "-m", "cds_service.cli", "serve", "--front", "none"]


def module_argv(module: str) -> list[str]:
    """A baseline app's ``python -m`` command line (``benchmarks.bare_app``, ...)."""
    return [sys.executable, "-m", module]


def make_server(
    name: str,
    argv: list[str],
    port: int,
    env: Mapping[str, str],
    workdir: Path,
    cwd: Path,
    workers: int | None,
) -> Server:
    full = [*argv, "--host", HOST, "--port", str(port)]
    if workers is not None:
        full += ["--workers", str(workers)]
    return Server(name, full, dict(env), port, workdir / f"{name}.log", cwd)


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass(frozen=True)
class Startup:
    """Time from starting the process to its first answers, in seconds."""

    first_response_s: float  # any HTTP answer to the probe request
    first_200_s: float  # the probe answered 200
    probe: str


def wait_until_serving(
    server: Server,
    probe: Callable[[], tuple[int, bytes]],
    probe_name: str,
    limit_seconds: float = 60.0,
    interval_seconds: float = 0.01,
) -> Startup:
    """Poll ``probe`` until it answers 200; bounded by ``limit_seconds``."""
    first_response: float | None = None
    deadline = server.started_at + limit_seconds
    last = ""
    while time.perf_counter() < deadline:
        if not server.running():
            raise ServerError(
                f"{server.name} exited with {server.process.returncode if server.process else '?'}"
                f" before serving; its log:\n{server.log_tail()}"
            )
        try:
            status, body = probe()
        except (ConnectionError, OSError, http.client.HTTPException) as error:
            last = repr(error)
            time.sleep(interval_seconds)
            continue
        now = time.perf_counter()
        if first_response is None:
            first_response = now - server.started_at
        if status == 200:
            return Startup(round(first_response, 3), round(now - server.started_at, 3), probe_name)
        last = f"{status} {body[:300]!r}"
        time.sleep(interval_seconds)
    raise ServerError(
        f"{server.name} did not answer 200 within {limit_seconds:.0f} s (last: {last}); "
        f"its log:\n{server.log_tail()}"
    )
