"""The treatment history the label needs: episodes, their order, and the dose level due.

Dose levels only go down (4 -> 3 -> 2.3 mg; lenalidomide 25 -> 20 -> 15 -> 10 -> 5 -> 2.5 mg).
The course is replayed in time order:

- an ixazomib (lenalidomide) order sets the level to min(level, ordered dose): a prescriber's
  lower dose counts, a higher one never undoes a reduction the label required;
- each recovery from an episode that owes a reduction lowers the drug it names by one level
  (platelets < 30,000, ANC < 500 and rash Grade 2-3 alternate: the 1st, 3rd... recovery
  lowers lenalidomide, the 2nd, 4th... ixazomib; neuropathy Grade 2 with pain or Grade 3,
  and other Grade 3-4 toxicity attributed to ixazomib, lower ixazomib);
- below 2.3 mg ixazomib is discontinued.

Episodes count from the day ixazomib was first started; each kind (platelets, ANC, rash) has
its own alternation, as each Table 3 row describes its own recurrences.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from cds_service.rules.codes import IXAZOMIB_LEVELS, LENALIDOMIDE_LEVELS
from cds_service.rules.facts import Drug, Facts, MedicationOrder

from .episodes import Step, next_lower, step_ordered
from .label import registry


@dataclass
class DoseCourse:
    started: datetime | None  # first ixazomib order; None: never had ixazomib
    start_dose: Decimal | None
    ixazomib_level: Decimal | None  # the level due now; None when the label says stop
    ixazomib_known: bool  # False when no ixazomib order gave a readable dose
    lenalidomide_level: Decimal | None
    steps: list[Step] = field(default_factory=list)
    last_ixazomib_order: MedicationOrder | None = None

    @property
    def ixazomib_discontinued(self) -> bool:
        return self.ixazomib_known and self.ixazomib_level is None

    def pending_steps(self, orders: list[MedicationOrder]) -> list[Step]:
        """Advice the prescriber has not yet acted on. A lenalidomide reduction is acted on
        when a later lenalidomide order (a draft signed now included) has that dose or less;
        any other step when an ixazomib order followed it."""
        last = self.last_ixazomib_order
        after = last.starts if last is not None and last.starts is not None else None

        def pending(step: Step) -> bool:
            if step.drug is Drug.LENALIDOMIDE and step.to_mg is not None:
                return not step_ordered(step, orders)
            return after is None or step.at > after

        return [s for s in self.steps if pending(s)]


def _ixazomib_orders(facts: Facts) -> list[MedicationOrder]:
    return [o for o in facts.history if o.drug is Drug.IXAZOMIB]


def dose_course(facts: Facts, pain_window: timedelta) -> DoseCourse:
    ixazomib_orders = _ixazomib_orders(facts)
    if not ixazomib_orders:
        return DoseCourse(None, None, None, False, None)
    started = ixazomib_orders[0].starts or facts.now
    dosed = [o for o in ixazomib_orders if o.dose_mg is not None]
    start_dose = dosed[0].dose_mg if dosed else None
    lenalidomide_orders = [
        o for o in facts.history if o.drug is Drug.LENALIDOMIDE and o.dose_mg is not None
    ]
    before_start = [o for o in lenalidomide_orders if (o.starts or started) < started]
    since_start = [o for o in lenalidomide_orders if (o.starts or started) >= started]

    # (time, kind, payload): orders first at equal times so a same-day recovery counts after.
    events: list[tuple[datetime, int, object]] = []
    for order in dosed:
        events.append((order.starts or started, 0, order))
    for order in since_start:
        events.append((order.starts or started, 0, order))
    for step_event in _reduction_events(facts, started, pain_window):
        events.append((step_event.at, 1, step_event))
    events.sort(key=lambda e: (e[0], e[1]))

    ixazomib: Decimal | None = None
    lenalidomide = before_start[-1].dose_mg if before_start else None
    # The levels after each event, to look up the dose an episode began on.
    levels: list[tuple[datetime, Decimal | None, Decimal | None]] = []
    steps: list[Step] = []
    for at, _, payload in events:
        if isinstance(payload, MedicationOrder):
            dose = payload.dose_mg
            if payload.drug is Drug.IXAZOMIB:
                ixazomib = dose if ixazomib is None or dose is None else min(ixazomib, dose)
            else:
                lenalidomide = (
                    dose if lenalidomide is None or dose is None else min(lenalidomide, dose)
                )
        else:
            assert isinstance(payload, Step)
            # The dose the episode began on: a lower dose ordered during the hold already is
            # the reduction, and is not reduced again.
            before = next((lv for lv in reversed(levels) if lv[0] <= payload.onset), None)
            if payload.drug is Drug.IXAZOMIB:
                if ixazomib is not None:  # None: already discontinued, nothing lower
                    at_onset = before[1] if before is not None else None
                    to = _one_level_lower(IXAZOMIB_LEVELS, ixazomib, at_onset)
                    steps.append(replace(payload, from_mg=at_onset or ixazomib, to_mg=to))
                    ixazomib = to
            elif lenalidomide is None:
                steps.append(payload)  # the lenalidomide dose is not known
            else:
                at_onset = before[2] if before is not None else None
                to = _one_level_lower(LENALIDOMIDE_LEVELS, lenalidomide, at_onset)
                steps.append(replace(payload, from_mg=at_onset or lenalidomide, to_mg=to))
                lenalidomide = to
        levels.append((at, ixazomib, lenalidomide))
    return DoseCourse(
        started=started,
        start_dose=start_dose,
        ixazomib_level=ixazomib,
        ixazomib_known=bool(dosed),
        lenalidomide_level=lenalidomide,
        steps=steps,
        last_ixazomib_order=ixazomib_orders[-1],
    )


def _one_level_lower(
    levels: tuple[Decimal, ...], now: Decimal, at_onset: Decimal | None
) -> Decimal | None:
    """One level below the dose an episode began on, and never above the dose now."""
    lower = next_lower(levels, now if at_onset is None else max(at_onset, now))
    return None if lower is None else min(lower, now)


def _reduction_events(facts: Facts, started: datetime, pain_window: timedelta) -> list[Step]:
    """Every recovery that owes a reduction, with the drug it lowers (levels filled in later):
    each Table 3 row says which of its episodes owe one."""
    return [step for row in registry.TABLE3 for step in row.owed(facts, started, pain_window)]
