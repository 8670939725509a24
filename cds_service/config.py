"""Configuration, read once from the environment and validated at start-up.

The contract fixes four variables (CDS_BASE_URL, CDS_AUTH, CDS_TRUSTED_ISSUERS,
CDS_DATABASE_URL); the others tune behaviour and all have safe defaults. README.md lists
them all. A bad value stops start-up with a message that names the variable.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta, tzinfo
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_DATABASE_URL = "sqlite:///ixazomib-cds.sqlite3"
ASYMMETRIC_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the variable."""


@dataclass(frozen=True)
class Config:
    base_url: str = "http://localhost:8080"
    auth_required: bool = True
    trusted_issuers_path: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    jwt_algorithms: tuple[str, ...] = ("ES384", "RS384")
    jwks_min_refresh_seconds: float = 10.0
    default_timezone: tzinfo = field(default_factory=lambda: ZoneInfo("UTC"))
    cbc_max_age: timedelta = timedelta(days=7)
    fhir_timeout_seconds: float = 2.0
    fhir_deadline_seconds: float = 3.0
    max_body_bytes: int = 8 * 1024 * 1024
    audit_patient_id: bool = False
    log_level: str = "INFO"
    # Test set-ups only (see protocol/fhir_policy.py): query a fhirServer without a token,
    # and send the EHR's token over plain http to a host that is not loopback.
    allow_open_fhir_servers: bool = False
    allow_plain_http_fhir: bool = False
    console_enabled: bool = False  # the review console at /console (CDS_CONSOLE)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        auth = env.get("CDS_AUTH", "required").strip().lower()
        if auth not in ("required", "disabled"):
            raise ConfigError(f"CDS_AUTH must be 'required' or 'disabled', not {auth!r}")
        config = cls(
            base_url=env.get("CDS_BASE_URL", cls.base_url).strip(),
            auth_required=auth == "required",
            trusted_issuers_path=env.get("CDS_TRUSTED_ISSUERS") or None,
            database_url=env.get("CDS_DATABASE_URL", DEFAULT_DATABASE_URL).strip(),
            jwt_algorithms=_algorithms(env.get("CDS_JWT_ALGORITHMS", "ES384,RS384")),
            jwks_min_refresh_seconds=_number(env, "CDS_JWKS_MIN_REFRESH_SECONDS", 10.0, 0, 3600),
            default_timezone=_timezone(env.get("CDS_DEFAULT_TIMEZONE", "UTC")),
            cbc_max_age=timedelta(days=_number(env, "CDS_CBC_MAX_AGE_DAYS", 7, 1, 90)),
            fhir_timeout_seconds=_number(env, "CDS_FHIR_TIMEOUT_SECONDS", 2.0, 0.1, 60),
            fhir_deadline_seconds=_number(env, "CDS_FHIR_DEADLINE_SECONDS", 3.0, 0.1, 60),
            max_body_bytes=int(_number(env, "CDS_MAX_BODY_BYTES", 8 * 1024 * 1024, 1024, 2**30)),
            audit_patient_id=_flag(env, "CDS_AUDIT_PATIENT_ID"),
            log_level=env.get("CDS_LOG_LEVEL", "INFO").upper(),
            allow_open_fhir_servers=_flag(env, "CDS_ALLOW_OPEN_FHIR_SERVERS"),
            allow_plain_http_fhir=_flag(env, "CDS_ALLOW_PLAIN_HTTP_FHIR"),
            console_enabled=_console(env.get("CDS_CONSOLE", "disabled")),
        )
        config.validate()
        return config

    @classmethod
    def for_testing(cls, **overrides: object) -> Config:
        """Auth disabled and a fresh SQLite file in a temporary directory."""
        database = Path(tempfile.mkdtemp(prefix="ixazomib-cds-test-")) / "cds.sqlite3"
        config = replace(cls(auth_required=False, database_url=f"sqlite:///{database}"))
        return replace(config, **overrides)  # type: ignore[arg-type]

    def validate(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"CDS_BASE_URL must be the service's public http(s) URL, not {self.base_url!r}"
            )
        if self.auth_required and not self.trusted_issuers_path:
            raise ConfigError(
                "CDS_AUTH=required (the default) needs CDS_TRUSTED_ISSUERS, the path of a JSON "
                "file listing the CDS clients you trust; set CDS_AUTH=disabled for development"
            )
        if self.trusted_issuers_path and not Path(self.trusted_issuers_path).is_file():
            raise ConfigError(f"CDS_TRUSTED_ISSUERS: no such file {self.trusted_issuers_path!r}")
        if self.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("CDS_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        if self.fhir_timeout_seconds > self.fhir_deadline_seconds:
            raise ConfigError("CDS_FHIR_TIMEOUT_SECONDS must not exceed CDS_FHIR_DEADLINE_SECONDS")

    @property
    def service_base(self) -> str:
        return self.base_url.rstrip("/")


def _algorithms(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unsafe = [name for name in names if name not in ASYMMETRIC_ALGORITHMS]
    if not names or unsafe:
        raise ConfigError(
            "CDS_JWT_ALGORITHMS must list asymmetric JWS algorithms (e.g. ES384,RS384); "
            f"refused: {', '.join(unsafe) or '(empty)'}"
        )
    return names


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, not {raw}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "false").strip().lower()
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{name} must be true or false, not {raw!r}")
    return raw in ("true", "1", "yes")


def _console(value: str) -> bool:
    chosen = value.strip().lower()
    if chosen not in ("enabled", "disabled"):
        raise ConfigError(f"CDS_CONSOLE must be 'enabled' or 'disabled', not {value!r}")
    return chosen == "enabled"


def _timezone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"CDS_DEFAULT_TIMEZONE must be an IANA time zone, not {name!r}") from None
