"""Label 2.2 and 5.1: the hold and new-cycle criteria need a recent ANC and platelet count."""

from __future__ import annotations

from collections.abc import Iterable

from cds_service.rules.facts import Facts
from cds_service.rules.prefetch_keys import LABS
from cds_service.rules.settings import RuleSettings

from ..model import Action, Decision, DrugAdvice, Indicator, count_line
from .rule import CountRow, OrderCheck

RULE = OrderCheck(
    id="cbc-missing",
    section="2.2, 5.1 (Thrombocytopenia)",
    reads="ANC and platelets within the CBC window",
    label_text="No ANC or platelet count recent enough to check the hold and new-cycle "
    "criteria: review.",
    needs=(LABS,),
)


def decide(facts: Facts, settings: RuleSettings, rows: Iterable[CountRow]) -> list[Decision]:
    """A review when a count of the Table 3 count ``rows`` is missing or older than the CBC
    window (a stale count below its hold level still holds: the row says so)."""
    zone = str(settings.default_timezone)
    missing: list[str] = []
    for row in rows:
        latest = facts.labs[row.lab][-1] if facts.labs[row.lab] else None
        if latest is None:
            missing.append(f"no {row.lab.value} result")
        elif facts.now - latest.at > settings.cbc_max_age:
            missing.append(
                f"latest {row.lab.value} is older than {settings.cbc_max_age.days} days: "
                f"{count_line(latest, zone)}"
            )
    if not missing:
        return []
    return [
        Decision(
            rule=RULE.id,
            indicator=Indicator.WARNING,
            summary="No recent CBC: ANC and platelets must be checked before this cycle",
            ixazomib=DrugAdvice(Action.REVIEW),
            evidence=tuple(missing),
            notes=(
                f"A CBC within {settings.cbc_max_age.days} days is needed to check the hold "
                "(ANC < 500, platelets < 30,000) and new-cycle criteria; they were not "
                "checked on current data.",
            ),
        )
    ]
