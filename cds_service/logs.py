"""Structured JSON logs with a per-request correlation id and credential redaction.

``configure_logging(level)`` sends every log record to stderr as one JSON object per line::

    {"time": "2026-11-22T00:10:00.123+00:00", "level": "INFO", "logger": "cds_service.x",
     "message": "...", "hook_instance": "d1577c69-...", "service": "ixazomib-order-sign", ...}

``hook_instance`` and ``service`` appear while a request is being handled: set them with
``set_hook_instance(...)`` / ``set_service(...)`` (or the ``request_context`` context
manager) once the request body is parsed; ``init_app(app)`` clears them at the start and end
of every Flask request so a worker thread never carries one request's id into the next.
Fields passed with ``extra={...}`` are added to the object.

Every handler installed here carries a ``RedactingFilter``: whatever looks like a bearer
token, a JWT (``eyJ...``), an ``access_token``/``refresh_token``/``id_token``/
``client_secret``/``password`` value or an ``Authorization`` header is replaced by
``[REDACTED]`` before the line is written, including in extra fields and tracebacks; so are
the patient-identifying parts of FHIR URLs: a URL's query string (``Observation?patient=...``
becomes ``Observation?[REDACTED]``), the id after a FHIR resource type in a path
(``/Patient/[REDACTED]``) and a ``Patient/<id>`` reference. That holds at every level:
at DEBUG, urllib3 logs the request line of each FHIR query. It is a safeguard, not a
licence: do not log request bodies, headers or patient data.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from flask import Flask

REDACTED = "[REDACTED]"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_hook_instance: ContextVar[str | None] = ContextVar("cds_hook_instance", default=None)
_service: ContextVar[str | None] = ContextVar("cds_service", default=None)

# --- correlation id --------------------------------------------------------------------------


def set_hook_instance(value: str | None) -> Token[str | None]:
    """Tag every following log line of this request (this thread/context) with the id."""
    return _hook_instance.set(_clean_id(value))


def get_hook_instance() -> str | None:
    return _hook_instance.get()


def set_service(value: str | None) -> Token[str | None]:
    """Tag every following log line of this request with the CDS service id."""
    return _service.set(_clean_id(value))


def get_service() -> str | None:
    return _service.get()


def clear_request_context() -> None:
    _hook_instance.set(None)
    _service.set(None)


@contextmanager
def request_context(hook_instance: str | None, service: str | None = None) -> Iterator[None]:
    """Set hook_instance and service for the block; restore the previous values after it."""
    hook_token = set_hook_instance(hook_instance)
    service_token = set_service(service)
    try:
        yield
    finally:
        _service.reset(service_token)
        _hook_instance.reset(hook_token)


def init_app(app: Flask) -> None:
    """Clear the correlation fields before and after every request of ``app``."""

    def _clear(*_: object) -> None:
        clear_request_context()

    app.before_request(_clear)
    app.teardown_request(_clear)


def _clean_id(value: str | None) -> str | None:
    # The id comes from the client: keep it short and printable, and never a credential.
    if value is None:
        return None
    text = str(value)
    if _PLAIN_ID.fullmatch(text) and "eyJ" not in text:
        # A UUID or a service id, as every call sends: none of the redaction patterns can
        # match it (they need whitespace, ":", "=", "/" or "eyJ"), so it is already clean.
        return text
    text = redact(text)
    text = "".join(ch for ch in text if ch.isprintable())
    return text[:128] or None


# --- redaction -------------------------------------------------------------------------------

_SENSITIVE_KEYS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "http_authorization",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "password",
        "cookie",
        "set-cookie",
        "x-api-key",
    }
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: <scheme> <credentials>   (header text, dict reprs, JSON, HTTP_AUTHORIZATION)
    (
        re.compile(
            r"""(?ix)
            ( (?<![a-z0-9])(?:proxy-)?authorization["']? \s* [:=] \s* ["']? )
            ( [^"'\r\n,;}]+ )
            """
        ),
        r"\1" + REDACTED,
    ),
    # key=value / "key": "value" for OAuth and other secrets (query strings, JSON, reprs)
    (
        re.compile(
            r"""(?ix)
            ( (?<![a-z0-9])(?:access_token|refresh_token|id_token|client_secret|password)["']?
              \s* [:=] \s* ["']? )
            ( [^"'&\s,;}]+ )
            """
        ),
        r"\1" + REDACTED,
    ),
    # Bearer <token> anywhere
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*"), r"\1 " + REDACTED),
    # JWT / JWS / JWE compact serialisation, or any base64url JSON object ("eyJ...")
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{6,}(?:\.[A-Za-z0-9_\-]*){0,4}"), REDACTED),
    # The query string of a URL or request target (FHIR searches name the patient there)
    (re.compile(r"""(/[^\s"'?<>]*)\?[^\s"'<>]+"""), r"\1?" + REDACTED),
    # The id in a FHIR RESTful path (/Patient/<id>, /Medication/<id>, /Observation/<id>/...)
    (re.compile(r"(/[A-Z][A-Za-z]{2,})/(?!\[REDACTED\])[A-Za-z0-9\-.]{1,64}"), r"\1/" + REDACTED),
    # A reference to a patient outside a path ("Patient/<id>" in a message or an error)
    (
        re.compile(r"\b(Patient|Person|RelatedPerson)/(?!\[REDACTED\])[^\s\"'/?#,;)\]}]+"),
        r"\1/" + REDACTED,
    ),
)


# Short ids of letters, digits and "_.-" only (see _clean_id).
_PLAIN_ID = re.compile(r"[0-9A-Za-z_.\-]{1,128}")


def redact(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``[REDACTED]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any, _depth: int = 0) -> Any:
    """Redact strings, and mappings' sensitive keys, recursively (JSON-like values)."""
    if _depth > 8:
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            str(key): (
                REDACTED if str(key).lower() in _SENSITIVE_KEYS else redact_value(item, _depth + 1)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item, _depth + 1) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


class RedactingFilter(logging.Filter):
    """Rewrites a record so that no credential reaches any handler's output.

    The message is rendered (``msg % args``) and redacted; extra fields and the exception text
    are redacted too. Never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        for key, value in list(vars(record).items()):
            if key in _RECORD_ATTRIBUTES or key.startswith("_"):
                continue
            if key.lower() in _SENSITIVE_KEYS:
                setattr(record, key, REDACTED)
            else:
                setattr(record, key, redact_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            record.exc_info = None  # the (redacted) text replaces it
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# --- JSON formatter --------------------------------------------------------------------------

_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, correlation and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        hook_instance = _hook_instance.get()
        if hook_instance is not None:
            entry["hook_instance"] = hook_instance
        service = _service.get()
        if service is not None:
            entry["service"] = service
        for key, value in vars(record).items():
            if key in _RECORD_ATTRIBUTES or key.startswith("_") or key in entry:
                continue
            entry[key] = REDACTED if key.lower() in _SENSITIVE_KEYS else redact_value(value)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


# --- set-up ----------------------------------------------------------------------------------


class _CdsHandler(logging.StreamHandler[TextIO]):
    """Marks the handler configure_logging installed, so a second call replaces it."""


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    """JSON lines to stderr (or ``stream``) for every logger, at ``level`` and above.

    Idempotent: calling it again replaces the handler it installed before. Flask's default
    (plain text) handler is removed from any logger it was attached to.
    """
    name = level.strip().upper()
    if name not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _CdsHandler):
            root.removeHandler(handler)
            handler.close()
    handler = _CdsHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(name)
    _remove_flask_default_handler()
    logging.captureWarnings(True)


def _remove_flask_default_handler() -> None:
    try:
        from flask.logging import default_handler
    except ImportError:  # pragma: no cover - Flask is a dependency
        return
    for logger in logging.root.manager.loggerDict.values():
        if isinstance(logger, logging.Logger) and default_handler in logger.handlers:
            logger.removeHandler(default_handler)
