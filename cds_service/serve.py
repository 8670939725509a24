"""Run the production server: gunicorn, several workers, the settings in gunicorn_settings.

``ixazomib-cds serve --host H --port P`` calls ``run_server``. The gunicorn configuration file
used is, in order: the file named by ``CDS_GUNICORN_CONFIG``; ``deploy/gunicorn.conf.py`` next
to the package (a source checkout); otherwise the same settings taken straight from
``cds_service.gunicorn_settings`` (an installed wheel). ``host``/``port`` and ``workers``
given here override the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gunicorn.app.base import Application
from gunicorn.util import import_app

from cds_service import gunicorn_settings

REPO_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "gunicorn.conf.py"


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


def run_server(
    host: str, port: int, workers: int | None = None, *, app_uri: str | None = None
) -> None:
    """Serve ``cds_service.wsgi:app`` (or ``app_uri``) on host:port until stopped."""
    overrides: dict[str, Any] = {"bind": [bind_address(host, port)]}
    if workers is not None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        overrides["workers"] = workers
    if app_uri is not None:
        overrides["wsgi_app"] = app_uri
    CdsServer(overrides, config_file()).run()
