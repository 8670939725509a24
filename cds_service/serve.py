"""Run the production server: gunicorn, several workers, the settings in gunicorn_settings.

``ixazomib-cds serve --host H --port P`` calls ``run_server``. The gunicorn configuration file
used is, in order: the file named by ``CDS_GUNICORN_CONFIG``; ``deploy/gunicorn.conf.py`` next
to the package (a source checkout); otherwise the same settings taken straight from
``cds_service.gunicorn_settings`` (an installed wheel). ``host``/``port`` and ``workers``
given here override the file.

With the nginx front (``--front nginx``; the default ``auto`` picks it whenever nginx is
installed), nginx listens on host:port (with TLS when ``CDS_TLS_CERT_FILE`` and
``CDS_TLS_KEY_FILE`` name a certificate and its key) and gunicorn on a Unix socket in a private
run directory; this process supervises the two (see ``run_behind_nginx``). Without it
(``--front none``, or ``auto`` where there is no nginx) gunicorn listens on host:port itself,
and warns at start-up when that address is not a loopback one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from gunicorn.app.base import Application
from gunicorn.util import import_app

from cds_service import gunicorn_settings
from cds_service.config import ConfigError
from cds_service.nginx_front import FrontSettings, find_nginx, render_config

REPO_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "gunicorn.conf.py"
FRONTS = ("auto", "nginx", "none")
# How long gunicorn may take to load the app and listen before nginx is started anyway.
GUNICORN_START_SECONDS = 60.0
# 107 bytes of a socket path, less "/ixazomib-cds-front-XXXXXXXX/gunicorn.sock".
_MAX_RUN_DIR_PARENT_BYTES = 107 - 42
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_PR_SET_CHILD_SUBREAPER = 36


def config_file() -> Path | None:
    """The gunicorn configuration file ``run_server`` loads, or None for the embedded one."""
    explicit = os.environ.get("CDS_GUNICORN_CONFIG", "").strip()
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"CDS_GUNICORN_CONFIG: no such file {explicit!r}")
        return path
    return REPO_CONFIG if REPO_CONFIG.is_file() else None


def bind_address(host: str, port: int) -> str:
    if not 0 < port < 65536:
        raise ValueError(f"port must be between 1 and 65535, not {port}")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    return f"{host}:{port}"


class CdsServer(Application):  # type: ignore[misc]
    """gunicorn loading our configuration file (or embedded settings) plus overrides."""

    def __init__(self, overrides: dict[str, Any], config_path: Path | None) -> None:
        self.overrides = overrides
        self.config_path = config_path
        self.app_uri = str(overrides.get("wsgi_app", gunicorn_settings.WSGI_APP))
        super().__init__(prog="ixazomib-cds serve")

    def init(self, parser: Any, opts: Any, args: Any) -> None:  # pragma: no cover - unused
        return None

    def load_config(self) -> None:
        if self.config_path is not None:
            self.cfg.set("config", str(self.config_path))
            self.load_config_from_module_name_or_filename(str(self.config_path))
        else:
            for name, value in gunicorn_settings.bootstrap().items():
                self._set(name, value)
        for name, value in self.overrides.items():
            self._set(name, value)

    def _set(self, name: str, value: Any) -> None:
        if name in self.cfg.settings and value is not None:  # older gunicorn: skip unknown
            self.cfg.set(name, value)

    def load(self) -> Any:
        return import_app(self.app_uri)


@dataclass(frozen=True)
class FrontChoice:
    """Which front ``serve`` runs, and its TLS certificate and key (PEM files) if any."""

    front: str
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None


def front_choice(front: str | None, environ: Mapping[str, str] | None = None) -> FrontChoice:
    """``--front`` (else ``CDS_FRONT``, default ``auto``) and the ``CDS_TLS_*`` files, checked.

    ``auto`` is nginx when it is installed, else gunicorn alone: a plain ``serve`` survives
    slow clients wherever it can, and still starts (for development on loopback) where
    there is no nginx. With a TLS certificate configured, ``auto`` needs nginx.
    """
    env = os.environ if environ is None else environ
    chosen = (front or env.get("CDS_FRONT", "").strip() or "auto").lower()
    if chosen not in FRONTS:
        raise ConfigError(f"CDS_FRONT (--front) must be auto, nginx or none, not {chosen!r}")
    cert = env.get("CDS_TLS_CERT_FILE", "").strip()
    key = env.get("CDS_TLS_KEY_FILE", "").strip()
    if chosen == "auto":
        if find_nginx() is not None:
            chosen = "nginx"
        elif cert or key:
            raise ConfigError(
                "CDS_TLS_CERT_FILE/CDS_TLS_KEY_FILE: TLS ends at the nginx front, and nginx "
                "is not installed (Debian: apt-get install nginx)"
            )
        else:
            chosen = "none"
    if not cert and not key:
        return FrontChoice(chosen)
    if not (cert and key):
        raise ConfigError("CDS_TLS_CERT_FILE and CDS_TLS_KEY_FILE must be set together")
    if chosen != "nginx":
        raise ConfigError(
            "CDS_TLS_CERT_FILE/CDS_TLS_KEY_FILE: TLS ends at the nginx front; "
            "use --front nginx or auto (CDS_FRONT)"
        )
    for name, value in (("CDS_TLS_CERT_FILE", cert), ("CDS_TLS_KEY_FILE", key)):
        if not Path(value).is_file():
            raise ConfigError(f"{name}: no such file {value!r}")
    return FrontChoice(chosen, Path(cert).resolve(), Path(key).resolve())


def run_server(
    host: str,
    port: int,
    workers: int | None = None,
    *,
    app_uri: str | None = None,
    front: FrontChoice | None = None,
    max_body_bytes: int = 8 * 1024 * 1024,
) -> int:
    """Serve ``cds_service.wsgi:app`` (or ``app_uri``) on host:port until stopped.

    Returns the exit status (the nginx front's supervisor); gunicorn alone exits itself.
    """
    overrides: dict[str, Any] = {"bind": [bind_address(host, port)]}
    if workers is not None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        overrides["workers"] = workers
    if app_uri is not None:
        overrides["wsgi_app"] = app_uri
    if front is not None and front.front == "nginx":
        return run_behind_nginx(overrides, front, max_body_bytes)
    CdsServer(overrides, config_file()).run()
    return 0


# --- the nginx front ---------------------------------------------------------------------------


def run_behind_nginx(overrides: dict[str, Any], front: FrontChoice, max_body_bytes: int) -> int:
    """nginx on the public address, gunicorn on a Unix socket; until one of them stops.

    gunicorn runs in a forked child (its master, as without the front), nginx in another, both
    in the foreground. SIGTERM or SIGINT stops both gracefully (gunicorn: TERM; nginx: QUIT,
    which lets requests in flight finish); if either exits by itself, the other is stopped and
    this process exits with a failure, so a supervisor (systemd, Kubernetes) restarts both.
    """
    nginx = find_nginx()
    if nginx is None:
        raise ConfigError(
            "--front nginx: nginx is not installed (Debian: apt-get install nginx); "
            "or run without the front (--front none)"
        )
    run_dir = Path(tempfile.mkdtemp(prefix="ixazomib-cds-front-", dir=_run_dir_parent()))
    try:
        # nginx started as root runs its workers as "nobody": they must reach the socket.
        run_dir.chmod(0o711)
        socket_path = run_dir / "gunicorn.sock"
        conf = run_dir / "nginx.conf"
        conf.write_text(
            render_config(
                FrontSettings(
                    listen=overrides["bind"][0],
                    upstream=f"unix:{socket_path}",
                    pid_file=str(run_dir / "nginx.pid"),
                    temp_dir=str(run_dir),
                    max_body_bytes=max_body_bytes,
                    tls_cert_file=str(front.tls_cert_file) if front.tls_cert_file else None,
                    tls_key_file=str(front.tls_key_file) if front.tls_key_file else None,
                )
            ),
            encoding="utf-8",
        )
        command = [nginx, "-e", "stderr", "-p", str(run_dir), "-c", str(conf)]
        check = subprocess.run(  # noqa: S603 - our own binary and arguments
            [*command, "-t", "-q", "-g", "daemon off;"],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            raise ConfigError(f"--front nginx: nginx refused its configuration: {check.stderr}")
        return _supervise(
            {**overrides, "bind": [f"unix:{socket_path}"]},
            [*command, "-g", "daemon off;"],
            socket_path,
        )
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _run_dir_parent() -> str:
    """Where the private run directory (the socket, nginx's configuration) goes: the temporary
    directory, unless nginx could not use a socket there. A Unix socket's path has at most 107
    bytes (nginx refuses a longer one), and nginx started as root runs its workers as
    "nobody", who must be able to pass every directory above the socket (with TMPDIR inside a
    private directory every call got 502)."""
    base = Path(tempfile.gettempdir()).resolve()
    short = len(os.fsencode(base)) <= _MAX_RUN_DIR_PARENT_BYTES
    if short and (
        os.geteuid() != 0 or all(d.stat().st_mode & stat.S_IXOTH for d in (base, *base.parents))
    ):
        return str(base)
    return "/tmp"  # noqa: S108 - sticky and world-passable; mkdtemp makes a private directory


def _supervise(gunicorn_overrides: dict[str, Any], nginx_command: list[str], sock: Path) -> int:
    stop_signals = (signal.SIGTERM, signal.SIGINT)
    children: dict[int, str] = {}
    stopping = False

    def stop_all(signum: int, frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for pid, name in list(children.items()):
            _signal(pid, signal.SIGQUIT if name == "nginx" else signal.SIGTERM)

    def reload_all(signum: int, frame: FrameType | None) -> None:
        for pid in list(children):
            _signal(pid, signal.SIGHUP)

    # Orphans of our children become ours: nginx's workers outlive a master killed by SIGKILL
    # and keep the port (answering 502); they are found and stopped below.
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    sys.stdout.flush()
    sys.stderr.flush()
    supervisor = os.getpid()
    gunicorn_pid = os.fork()
    if gunicorn_pid == 0:  # the child: gunicorn's master
        _stop_with_parent(supervisor, signal.SIGTERM)
        os._exit(_run_gunicorn_child(gunicorn_overrides))
    children[gunicorn_pid] = "gunicorn"
    for signum in stop_signals:
        signal.signal(signum, stop_all)
    signal.signal(signal.SIGHUP, reload_all)

    status = _wait_until_listening(sock, gunicorn_pid)
    if status is not None:  # gunicorn stopped before it listened
        return 0 if stopping else status
    if not stopping:
        nginx = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            nginx_command,
            preexec_fn=lambda: _stop_with_parent(supervisor, signal.SIGQUIT),
        )
        children[nginx.pid] = "nginx"
    first_failure: int | None = None
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        name = children.pop(pid, None)
        if name is None:
            continue
        code = os.waitstatus_to_exitcode(wait_status)
        if not stopping:  # it stopped by itself: take the other down too
            print(f"ixazomib-cds serve: {name} exited ({code}); stopping", file=sys.stderr)
            first_failure = code or 1
            stop_all(signal.SIGTERM)
    _kill_orphans()
    return first_failure or 0


def _kill_orphans() -> None:
    """SIGKILL and reap whatever children are left (orphans of a child that died)."""
    pid = os.getpid()
    try:
        left = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii").split()
    except OSError:  # pragma: no cover - not Linux
        return
    for orphan in (int(text) for text in left):
        _signal(orphan, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(orphan, 0)


def _run_gunicorn_child(overrides: dict[str, Any]) -> int:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    try:
        CdsServer(overrides, config_file()).run()
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # the child must never return into the parent's code
        traceback.print_exc()
        return 1
    return 0


def _wait_until_listening(sock: Path, gunicorn_pid: int) -> int | None:
    """None once gunicorn accepts on its socket; its exit status if it stopped first."""
    deadline = time.monotonic() + GUNICORN_START_SECONDS
    while time.monotonic() < deadline:
        pid, wait_status = os.waitpid(gunicorn_pid, os.WNOHANG)
        if pid:
            return os.waitstatus_to_exitcode(wait_status) or 1
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(sock))
                return None
            except OSError:
                pass
        time.sleep(0.05)
    return None


def _stop_with_parent(parent: int, signum: int) -> None:
    """In a child: get ``signum`` when the supervisor dies (even by SIGKILL), so neither
    gunicorn nor nginx outlives it. Linux only (prctl PR_SET_PDEATHSIG); elsewhere a no-op."""
    if _prctl(_PR_SET_PDEATHSIG, signum) and os.getppid() != parent:  # it died before
        os.kill(os.getpid(), signum)


def _prctl(option: int, value: int) -> bool:
    """Linux's prctl(2); False where there is none."""
    try:
        return int(ctypes.CDLL(None, use_errno=True).prctl(option, value)) == 0
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return False


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has just exited
        os.kill(pid, signum)
