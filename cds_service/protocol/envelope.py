"""Typed models of the CDS Hooks 2.0 envelope: the service request and the feedback request.

Only the envelope is modelled here. FHIR content (draft orders, prefetch, observations) stays
raw JSON until the rules engine picks out and validates what it needs, so one malformed
resource the rules never read cannot fail a request. The prefetch values stay JSON text until
read (``exact_json.LazyJsonObject``): a key the call never reads is never decoded.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from cds_service.errors import BadRequest
from cds_service.exact_json import LazyJsonObject, loads_exact_lazily

NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
JsonObject = dict[str, Any]
M = TypeVar("M", bound=BaseModel)


class _Envelope(BaseModel):
    # CDS Hooks lets clients add members (e.g. `extension`); unknown ones are kept, not refused.
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class FhirAuthorization(_Envelope):
    access_token: NonEmpty
    token_type: Literal["Bearer"]
    expires_in: int = Field(gt=0)
    scope: NonEmpty
    subject: NonEmpty
    patient: str | None = None

    def __repr__(self) -> str:  # never let the token reach a log line or a traceback
        return "FhirAuthorization(access_token=<redacted>)"

    __str__ = __repr__


class HookRequest(_Envelope):
    # LazyJsonObject; read from a body by loads_hook_request, which leaves out (unread, never
    # refused) the members not modelled here
    model_config = ConfigDict(arbitrary_types_allowed=True)

    hook: NonEmpty
    hookInstance: UUID
    context: JsonObject
    fhirServer: str | None = None
    fhirAuthorization: FhirAuthorization | None = None
    # by key; each value decoded when first read (RecordGathering): an unread key costs nothing
    prefetch: LazyJsonObject | None = None

    @field_validator("prefetch", mode="before")
    @classmethod
    def _lazy(cls, value: Any) -> Any:
        if isinstance(value, dict):  # a request built in Python, decoded already
            return LazyJsonObject(value)
        if value is not None and not isinstance(value, LazyJsonObject):
            raise ValueError("must be an object (prefetch key -> FHIR resource or null)")
        return value

    @field_validator("hookInstance", mode="before")
    @classmethod
    def _uuid_from_string(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("must be a UUID string")
        return UUID(value)

    @field_validator("fhirServer")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        # Schemes are case-insensitive (RFC 3986 3.1): HTTP://host is an http URL.
        if value is not None and not value[:8].lower().startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value


def loads_hook_request(raw: bytes) -> Any:
    """A hook request body as JSON for ``HookRequest``: its prefetch values stay JSON text
    until read, and members it does not model (an ``extension``) are checked as JSON, never
    decoded. Raises as ``exact_json.loads_exact`` does."""
    return loads_exact_lazily(raw, tuple(HookRequest.model_fields), "prefetch")


class Coding(_Envelope):
    """A FHIR Coding, as feedback's override reason carries it (its members are stored)."""

    system: Annotated[str, StringConstraints(min_length=1)] | None = None
    code: Annotated[str, StringConstraints(min_length=1)] | None = None
    display: Annotated[str, StringConstraints(min_length=1)] | None = None


class OverrideReason(_Envelope):
    # null for either member (or for overrideReason) is read as the member left out.
    reason: Coding | None = None
    userComment: str | None = None


class AcceptedSuggestion(_Envelope):
    id: NonEmpty


class FeedbackEntry(_Envelope):
    card: NonEmpty
    outcome: Literal["accepted", "overridden"]
    outcomeTimestamp: NonEmpty
    acceptedSuggestions: list[AcceptedSuggestion] = Field(default_factory=list, max_length=50)
    overrideReason: OverrideReason | None = None

    @field_validator("outcomeTimestamp")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        parse_timestamp(value)
        return value


class FeedbackRequest(_Envelope):
    feedback: list[FeedbackEntry] = Field(min_length=1, max_length=100)


# RFC 3339 date-time; the offset may be left out (read as UTC, as the spec says feedback is).
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})?"
)


def parse_timestamp(value: str) -> datetime:
    """RFC 3339; the spec says UTC, so a timestamp without a zone is read as UTC. Other ISO
    8601 shapes (a date alone, week dates, the basic format) are refused."""
    try:
        if not _RFC3339.fullmatch(value):
            raise ValueError(value)
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(
            "must be an RFC 3339 date-time between the years 0001 and 9999, "
            "e.g. 2026-01-31T09:30:00Z"
        ) from None


def parse_model(model: type[M], document: object, what: str) -> M:
    """Validate ``document`` or raise a 400 that lists each problem with its JSON path."""
    try:
        return model.model_validate(document)
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(part) for part in problem['loc']) or '(body)'}: {problem['msg']}"
            for problem in error.errors(include_url=False, include_input=False)[:20]
        ]
        raise BadRequest(f"The body is not a valid {what}.", details=problems) from None
