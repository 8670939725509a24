"""Production gunicorn settings: the one source of truth.

``deploy/gunicorn.conf.py`` (used by ``gunicorn -c deploy/gunicorn.conf.py`` and by the
container image) imports everything from here, and ``cds_service.serve.run_server`` uses the
same values when the deploy directory is not there (an installed wheel). Change a setting here,
not in the deploy file.

Environment variables read here (all optional):

``CDS_WORKERS``
    number of worker processes; default ``2 * CPUs + 1`` capped at ``MAX_DEFAULT_WORKERS``
    (CPUs are those the process may use, including a cgroup CPU quota in a container).
``CDS_THREADS``
    threads per worker (gthread worker); default 4.
``CDS_BIND``
    ``host:port`` for ``gunicorn -c deploy/gunicorn.conf.py``; default ``0.0.0.0:8080``
    (``ixazomib-cds serve --host H --port P`` overrides it).
``CDS_LOG_LEVEL``
    DEBUG, INFO (default), WARNING or ERROR.
``CDS_FORWARDED_ALLOW_IPS`` (or gunicorn's own ``FORWARDED_ALLOW_IPS``)
    comma-separated addresses of the reverse proxies whose ``X-Forwarded-*`` headers are
    trusted; default ``127.0.0.1,::1``.
``PROMETHEUS_MULTIPROC_DIR``
    directory for the per-worker metric files; a fresh temporary directory when unset. It is
    emptied once when the gunicorn master starts (stale files of a previous run would be
    counted again otherwise).

Nothing in this module imports ``prometheus_client`` at import time: the multiprocess mode of
prometheus_client is decided from ``PROMETHEUS_MULTIPROC_DIR`` when the library is first
imported, so the directory must be prepared first.
"""

from __future__ import annotations

import gc
import ipaddress
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger as _GunicornLogger
from gunicorn.glogging import SafeAtoms as _SafeAtoms

from cds_service.logs import JsonFormatter, RedactingFilter, configure_logging

WSGI_APP = "cds_service.wsgi:app"
DEFAULT_BIND = "0.0.0.0:8080"
MAX_DEFAULT_WORKERS = 8
DEFAULT_THREADS = 4
# An EHR waits a few seconds for CDS Hooks answers (ours take ~500 ms); a worker silent for
# longer than this is stuck and is restarted. The app's own FHIR deadline
# (CDS_FHIR_DEADLINE_SECONDS, default 3 s) bounds a request's time.
TIMEOUT_SECONDS = 10
# How long a stopping worker waits for the requests it is answering (each is bounded by the
# FHIR deadline, a few seconds); a worker with none left exits at once (worker_exit), also when
# fetch threads are still reading. Only a slow client talking to gunicorn directly (no nginx
# front) can make it wait this long. Kubernetes' terminationGracePeriodSeconds (30 s in
# deploy/k8s) must exceed this plus the preStop sleep (5 s).
GRACEFUL_TIMEOUT_SECONDS = 20
KEEPALIVE_SECONDS = 5

_DIR_OWNER_ENV = "CDS_PROMETHEUS_DIR_OWNER_PID"
_DIR_CREATED_ENV = "CDS_PROMETHEUS_DIR_CREATED"

# Access log: JSON, one object per line. Only the path (%(U)s): never the query string
# (%(q)s), the request line (%(r)s, which includes the query), the body or any header that may
# carry a credential. JsonAccessLogger escapes the values for JSON and adds the ISO time.
ACCESS_LOG_FORMAT = (
    '{"time": "%(time)s", "level": "INFO", "logger": "gunicorn.access", '
    '"remote": "%(h)s", "forwarded_for": "%({x-forwarded-for}i)s", '
    '"method": "%(m)s", "path": "%(U)s", "protocol": "%(H)s", "status": "%(s)s", '
    '"bytes": "%(b)s", "duration_ms": %(M)s, "user_agent": "%(a)s", "pid": "%(p)s"}'
)

# Atoms an access log format must never be able to print.
_FORBIDDEN_ATOMS = frozenset({"q", "r", "u", "f"})
_FORBIDDEN_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)


class SettingsError(ValueError):
    """An environment variable for the server has a bad value; the message names it."""


def available_cpus() -> int:
    """CPUs this process may use: the affinity mask, lowered by a cgroup (v2 or v1) quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def _cgroup_cpu_quota() -> float | None:
    try:
        raw = Path("/sys/fs/cgroup/cpu.max").read_text(encoding="ascii").split()
        if len(raw) == 2 and raw[0] != "max":
            return int(raw[0]) / int(raw[1])
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text(encoding="ascii"))
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def default_workers(cpus: int | None = None) -> int:
    """``2 * CPUs + 1``, capped at MAX_DEFAULT_WORKERS (never below 2)."""
    cpus = available_cpus() if cpus is None else cpus
    return max(2, min(2 * cpus + 1, MAX_DEFAULT_WORKERS))


def _positive_int(env: Mapping[str, str], name: str, default: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if not 1 <= value <= high:
        raise SettingsError(f"{name} must be between 1 and {high}, not {value}")
    return value


def _log_level(env: Mapping[str, str]) -> str:
    level = env.get("CDS_LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"CDS_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {level!r}")
    return level


def settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The gunicorn settings (name -> value) for this environment."""
    env = os.environ if environ is None else environ
    forwarded = (
        env.get("CDS_FORWARDED_ALLOW_IPS") or env.get("FORWARDED_ALLOW_IPS") or "127.0.0.1,::1"
    )
    values: dict[str, Any] = {
        "wsgi_app": WSGI_APP,
        "bind": [env.get("CDS_BIND", "").strip() or DEFAULT_BIND],
        "workers": _positive_int(env, "CDS_WORKERS", default_workers(), 64),
        "worker_class": "gthread",
        "threads": _positive_int(env, "CDS_THREADS", DEFAULT_THREADS, 64),
        "timeout": TIMEOUT_SECONDS,
        "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
        "keepalive": KEEPALIVE_SECONDS,
        # Load the app once in the master: config errors stop start-up at once, workers fork
        # ready to answer, and the first request is fast. The app must therefore not open
        # database connections or sockets at import time (open them lazily, per process).
        "preload_app": True,
        # Restarting workers every N requests would leave a metrics file per dead worker.
        "max_requests": 0,
        "limit_request_line": 4094,
        "limit_request_fields": 100,
        # Room for a 16 KiB bearer token: the app, not gunicorn, refuses bigger ones (a bare
        # 401 with an OperationOutcome rather than gunicorn's HTML 431).
        "limit_request_field_size": 20480,
        "forwarded_allow_ips": forwarded,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        "loglevel": _log_level(env).lower(),
        "logger_class": "cds_service.gunicorn_settings.JsonAccessLogger",
        "capture_output": False,
        "proc_name": "ixazomib-cds",
        # The heartbeat file: /dev/shm is memory (no disk I/O, works on a read-only root).
        "worker_tmp_dir": "/dev/shm" if Path("/dev/shm").is_dir() else None,  # noqa: S108
        # gunicorn >= 25.1 opens a control socket under $HOME by default: not wanted in a
        # container with a read-only root, nor when several servers share a host.
        "control_socket_disable": True,
        # Hooks.
        "when_ready": when_ready,
        "child_exit": child_exit,
        "worker_exit": worker_exit,
        "on_exit": on_exit,
    }
    return values


# --- start-up --------------------------------------------------------------------------------


def prepare_metrics_dir(environ: MutableMapping[str, str] | None = None) -> Path:
    """Make PROMETHEUS_MULTIPROC_DIR exist and be empty; create a temporary one if unset.

    Done once per gunicorn master (a configuration reload leaves the live files alone). Must
    run before anything imports prometheus_client in the master.
    """
    env = os.environ if environ is None else environ
    raw = env.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if not raw:
        raw = tempfile.mkdtemp(prefix="ixazomib-cds-metrics-")
        env["PROMETHEUS_MULTIPROC_DIR"] = raw
        env[_DIR_CREATED_ENV] = raw
    directory = Path(raw)
    if env.get(_DIR_OWNER_ENV) == str(os.getpid()):
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    env[_DIR_OWNER_ENV] = str(os.getpid())
    return directory


def bootstrap(environ: MutableMapping[str, str] | None = None) -> dict[str, Any]:
    """Prepare the metrics directory and JSON logging, then return the settings."""
    env = os.environ if environ is None else environ
    values = settings(env)
    prepare_metrics_dir(env)
    configure_logging(_log_level(env))
    return values


# --- hooks -----------------------------------------------------------------------------------


def tune_garbage_collector() -> None:
    """Once the app is loaded, before it serves: freezing leaves its objects (fhir.resources
    models, code tables) out of every later collection, and a higher first threshold stops a
    request's parsed JSON from being scanned and promoted mid-request. Measured in the
    workers: full collections went from 2-3 ms per request to well under 1 ms; in process
    (``benchmarks.cold``), a 4-year history's call spent about 20 ms in the collector without
    this and about 2 ms with it."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def when_ready(server: Any) -> None:
    """In the master, after the app is loaded and before workers fork: the collector tuned
    (so the workers inherit it: both apps of the benchmark get this, a server setting), and
    a warning when gunicorn listens with no front."""
    tune_garbage_collector()
    exposed = exposed_addresses(server.cfg.bind)
    if exposed:
        server.log.warning(
            "gunicorn listens on %s with no front: a few slow clients can hold every worker "
            "thread, and calls are plain HTTP. Install nginx (Debian: apt-get install nginx) "
            "and ixazomib-cds serve runs it in front by default (CDS_FRONT=auto; "
            "--front nginx insists on it), or use the Kubernetes sidecar of deploy/k8s, "
            "unless another buffering proxy that ends TLS is in front.",
            ", ".join(exposed),
        )


def exposed_addresses(binds: list[str]) -> list[str]:
    """The TCP addresses of ``binds`` that are not loopback ones (Unix sockets are not)."""
    exposed = []
    for bind in binds:
        if bind.startswith(("unix:", "fd://")):
            continue
        host = bind.rsplit(":", 1)[0].strip("[]") if ":" in bind else bind
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            exposed.append(bind)
    return exposed


def child_exit(server: Any, worker: Any) -> None:
    """A worker died: drop its live-gauge files (counters and histograms stay summed)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def worker_exit(server: Any, worker: Any) -> None:
    """In a worker that is exiting (its requests answered): exit now, joining no thread.

    The only threads still running then are FHIR fetches whose hook call has already been
    answered (its deadline let them go). The interpreter's normal exit joins them, so a FHIR
    server trickling its answer kept a SIGTERM waiting for the whole graceful timeout, until
    the master killed the worker. gunicorn also calls this hook in the master (for a worker
    that vanished): there it does nothing.
    """
    if os.getpid() != getattr(worker, "pid", None):
        return
    stop = sys.exc_info()[1]
    code = stop.code if isinstance(stop, SystemExit) else 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


def on_exit(server: Any) -> None:
    """Remove the metrics directory if this process created it."""
    created = os.environ.get(_DIR_CREATED_ENV)
    if created and created == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(created, ignore_errors=True)


# --- logging ---------------------------------------------------------------------------------


class JsonAtoms(_SafeAtoms):  # type: ignore[misc]
    """Access log atoms made safe for a JSON template: every string value is JSON-escaped."""

    def __init__(self, atoms: Mapping[str, Any]) -> None:
        super().__init__({})
        for key, value in atoms.items():
            self[key] = json.dumps(value)[1:-1] if isinstance(value, str) else value


class JsonAccessLogger(_GunicornLogger):  # type: ignore[misc]
    """gunicorn's logger with JSON lines, redaction, and no query strings or credentials.

    - the access log format may use ``%(time)s`` (ISO 8601, UTC);
    - the atoms that carry the query string, the request line, the user of HTTP basic auth,
      the Referer, credential headers and the WSGI environ are removed (they print ``-``),
      whatever format an operator configures;
    - the error log (``gunicorn.error``) is written as JSON lines, like the app's.
    """

    atoms_wrapper_class = JsonAtoms

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
            _add_redaction(handler)
        for handler in self.access_log.handlers:
            _add_redaction(handler)

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        safe = {
            key: value
            for key, value in atoms.items()
            if key not in _FORBIDDEN_ATOMS
            and not key.endswith("}e")
            and not (key.endswith("}i") and key[1:-2] in _FORBIDDEN_HEADERS)
        }
        safe["time"] = datetime.now(UTC).isoformat(timespec="milliseconds")
        return safe

    def now(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _add_redaction(handler: logging.Handler) -> None:
    if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
        handler.addFilter(RedactingFilter())
