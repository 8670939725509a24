"""The values the store takes and gives back. Plain frozen dataclasses, no database types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Outcome = Literal["accepted", "overridden"]
OUTCOMES: tuple[str, ...] = ("accepted", "overridden")

UNKNOWN_RULE = "unknown"
"""The report's rule for feedback on a card that was never audited, or a card without a rule."""


@dataclass(frozen=True)
class CardAudit:
    """One card as served: the audit trail. No patient data beyond ``patient_ref``.

    ``patient_ref`` is only filled when the hospital configures it (CDS_AUDIT_PATIENT_ID).
    """

    hook_instance: str
    service_id: str
    rule: str | None
    recommendation: dict[str, Any] | None
    card_uuid: str
    suggestion_uuids: tuple[str, ...]
    indicator: str
    summary: str
    served_at: datetime
    patient_ref: str | None = None


@dataclass(frozen=True, kw_only=True)
class FeedbackItem:
    """One entry of a CDS Hooks feedback request (keyword arguments only)."""

    card_uuid: str
    outcome: str
    outcome_timestamp: datetime
    accepted_suggestion_ids: tuple[str, ...] = ()
    override_reason_code: str | None = None
    override_reason_system: str | None = None
    override_reason_display: str | None = None
    user_comment: str | None = None


@dataclass(frozen=True)
class FeedbackResult:
    stored: int
    duplicates: int


@dataclass(frozen=True)
class RuleStats:
    """Per rule: cards shown, and how each card's latest reported outcome went.

    ``override_reasons`` is (reason display, else code, else "(no reason given)", count),
    most frequent first; its counts add up to ``overridden``.
    """

    rule: str
    shown: int
    accepted: int
    overridden: int
    override_reasons: list[tuple[str, int]] = field(default_factory=list)

    @property
    def no_response(self) -> int:
        """Cards shown with no feedback (an EHR sends none for a card that was ignored)."""
        return max(self.shown - self.accepted - self.overridden, 0)
