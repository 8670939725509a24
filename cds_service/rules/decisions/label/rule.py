"""What a label rule declares, once: its id, label section and text, the data it reads, and
its behaviour. One module per rule in this package defines one of these; ``registry`` lists
them, and the decisions iterate the registry.

Every decision names its rule as ``<module>.RULE.id``, so a misspelt rule is an import error;
``registry`` checks at import that ids are unique, that each module is named after its id, and
that the data the rules declare are what the prefetch templates (``data_needs``) ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING

from cds_service.rules.codes import IXAZOMIB_LEVELS
from cds_service.rules.facts import Facts, Lab, MedicationOrder
from cds_service.rules.facts.clinical import Toxicity
from cds_service.rules.facts.labs import count_text
from cds_service.rules.settings import RuleSettings

from ..episodes import Step, alternating_drug, count_episodes, next_lower
from ..model import Decision, mg

if TYPE_CHECKING:
    from ..history import DoseCourse
    from ..start_dose import Assessment

# The "section" of a check of the data the rules need rather than of a label row.
DATA_CHECK = "-"


@dataclass(frozen=True, kw_only=True)
class LabelRule:
    """A rule as the label (or a data check) states it: what docs/rules.md and every card show."""

    id: str  # stable: recommendation.rule on the cards, used by tests and analytics
    section: str  # label section cited on the card (DATA_CHECK: not a label rule)
    reads: str  # the data the rule reads, in words
    label_text: str  # what the card advises (our wording of the label fact)
    needs: tuple[str, ...] = ()  # the prefetch keys (data_needs) it reads
    loinc: frozenset[str] = frozenset()  # the LOINC codes it reads from the labs query
    terms: frozenset[tuple[str, str]] = frozenset()  # toxicity terms (system, code) it reads


class Recovery(Enum):
    """What a Table 3 row owes when its condition is over."""

    SAME_DOSE = "resume at the most recent dose"
    IXAZOMIB_LOWER = "resume ixazomib one dose level lower"
    IXAZOMIB_LOWER_IF_ATTRIBUTED = "ixazomib one level lower if attributable to it"
    ALTERNATING = "lenalidomide, then ixazomib, one level lower in turn"
    NONE = "no way back: discontinue the regimen"


@dataclass(frozen=True)
class Now:
    """What the rows decide on at an order hook: the record, the dose course, the drafts."""

    facts: Facts
    settings: RuleSettings
    course: DoseCourse
    drafts: list[MedicationOrder]

    @property
    def zone(self) -> str:
        return str(self.settings.default_timezone)

    @property
    def due(self) -> Decimal | None:
        """The ixazomib dose level due (4 mg before ixazomib was ever given)."""
        return self.course.ixazomib_level if self.course.started else IXAZOMIB_LEVELS[0]

    @property
    def lower_text(self) -> str:
        lower = next_lower(IXAZOMIB_LEVELS, self.due)
        return mg(lower) if lower is not None else "none below 2.3 mg: discontinue ixazomib"


@dataclass(frozen=True, kw_only=True)
class Table3Row(LabelRule):
    """A row of label Table 3 (dose modifications): hold now, and what recovery owes."""

    holds_now: bool  # while its condition lasts a regimen drug is withheld (or discontinued)
    on_recovery: Recovery
    step_name: str = ""  # how the dose history names a reduction this row owed

    def owed(self, facts: Facts, started: datetime, pain_window: timedelta) -> list[Step]:
        """The dose steps the recoveries since ixazomib ``started`` owe (levels filled in by
        ``history.dose_course``)."""
        return []


@dataclass(frozen=True, kw_only=True)
class CountRow(Table3Row):
    """Platelets < 30,000 or ANC < 500: withhold both drugs; recoveries alternate."""

    lab: Lab
    hold_below: Decimal
    new_cycle_at_least: Decimal  # label 2.2: a new cycle waits for this count
    hold_note: str = ""  # added to the hold advice (ANC: consider G-CSF)

    def owed(self, facts: Facts, started: datetime, pain_window: timedelta) -> list[Step]:
        steps = []
        for episode in count_episodes(facts.labs[self.lab], self.hold_below, started):
            if episode.recovery is None:
                continue
            why = (
                f"{self.lab.value} episode {episode.number} (lowest "
                f"{count_text(min(v.value for v in episode.lows))}/mm3) recovered "
                f"{episode.recovery.at:%Y-%m-%d}"
            )
            drug = alternating_drug(episode.number)
            steps.append(
                Step(episode.recovery.at, episode.lows[0].at, self.id, drug, why, episode.number)
            )
        return steps


@dataclass(frozen=True, kw_only=True)
class ToxicityRow(Table3Row):
    """A toxicity row. Rows of one toxicity are listed worst first: the first that decides
    something now decides for that toxicity (Grade 4 before Grade 2-3)."""

    toxicity: Toxicity
    decide: Callable[[Now], list[Decision]]  # the advice while the toxicity lasts
    recoveries: Callable[[Facts, datetime, timedelta], list[Step]] | None = None
    # Advice once it is over, when the record does not say what the recovery owes.
    after_recovery: Callable[[Now], list[Decision]] | None = None
    # Label 2.2: a new cycle waits until a toxicity this row does not hold for (Grade 2 of an
    # "other" toxicity) is back to Grade 1 or baseline (review: the prescriber's discretion).
    new_cycle_gate: bool = False

    def owed(self, facts: Facts, started: datetime, pain_window: timedelta) -> list[Step]:
        return self.recoveries(facts, started, pain_window) if self.recoveries else []


@dataclass(frozen=True, kw_only=True)
class StartDoseRule(LabelRule):
    """Start at 3 mg when an organ's impairment calls for it (label 2.4, 2.5)."""

    assess: Callable[[Facts, RuleSettings], Assessment]
    organ: str  # "hepatic", "renal"
    impairment: str  # in the summary: "Starting ixazomib with <impairment>: start at 3 mg"
    criterion: str  # when 3 mg is due, for the card that says the data are missing


@dataclass(frozen=True, kw_only=True)
class PatientCheck(LabelRule):
    """A check of the patient's record at every order hook (interactions, hypersensitivity...)."""

    check: Callable[[Facts, RuleSettings], list[Decision]]


@dataclass(frozen=True, kw_only=True)
class OrderCheck(LabelRule):
    """A check whose decision function lives in its module and is called where the hook
    needs it (the draft's dose, the new-cycle gate, the data checks)."""
