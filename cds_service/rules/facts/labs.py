"""Laboratory values and vital signs, by LOINC code, converted exactly to one unit per kind.

Only results with status final, amended or corrected count. Preliminary results are not used
for decisions (a preliminary count can still change; the final one will fire the lab hook
again); registered, cancelled and entered-in-error results are ignored. A NEW result at the
lab-result hook that is not used for its status is named (``unused_new_result``), so that a
preliminary ANC of 200/mm3 never passes in silence, unless a counted new result of the same lab,
taken as late or later, is judged in its place (``overtaken``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from enum import Enum
from typing import Any

from fhir.resources.R4B.observation import Observation

from cds_service.rules.codes import (
    ANC_CODES,
    BILIRUBIN_CODES,
    CRCL_CODES,
    CREATININE_CODES,
    EGFR_CODES,
    LOINC_SYSTEMS,
    NEUTROPHIL_PERCENT_CODES,
    PAIN_SCORE_CODES,
    PLATELET_CODES,
    PREGNANCY_STATUS_CODES,
    WBC_CODES,
    WEIGHT_CODES,
)
from cds_service.rules.facts.reading import (
    Problems,
    as_instant,
    as_list,
    codings,
    dict_field,
    reference_of,
    text_field,
    validate,
)
from cds_service.rules.inputs import JsonDict
from cds_service.rules.units import Kind, convert, plain

COUNTING_STATUSES = frozenset({"final", "amended", "corrected"})
# A result in one of these never was (not done, or recorded in error): nothing to name.
NO_RESULT_STATUSES = frozenset({"cancelled", "entered-in-error"})


# The count thresholds the label compares, per mm3 (label 2.2 and Table 3).
ANC_HOLD_BELOW = Decimal(500)
PLATELETS_HOLD_BELOW = Decimal(30000)
ANC_NEW_CYCLE_AT_LEAST = Decimal(1000)
PLATELETS_NEW_CYCLE_AT_LEAST = Decimal(75000)


class Lab(Enum):
    ANC = "ANC"
    PLATELETS = "platelets"
    BILIRUBIN = "total bilirubin"
    CREATININE = "creatinine"
    CRCL = "creatinine clearance"
    EGFR = "eGFR"
    WEIGHT = "body weight"
    PAIN_SCORE = "pain score"


_LAB_BY_CODE = {
    **dict.fromkeys(ANC_CODES, Lab.ANC),
    **dict.fromkeys(PLATELET_CODES, Lab.PLATELETS),
    **dict.fromkeys(BILIRUBIN_CODES, Lab.BILIRUBIN),
    **dict.fromkeys(CREATININE_CODES, Lab.CREATININE),
    **dict.fromkeys(CRCL_CODES, Lab.CRCL),
    **dict.fromkeys(EGFR_CODES, Lab.EGFR),
    **dict.fromkeys(WEIGHT_CODES, Lab.WEIGHT),
    **dict.fromkeys(PAIN_SCORE_CODES, Lab.PAIN_SCORE),
}
_KIND = {
    Lab.ANC: Kind.CELL_COUNT,
    Lab.PLATELETS: Kind.CELL_COUNT,
    Lab.BILIRUBIN: Kind.BILIRUBIN,
    Lab.CREATININE: Kind.CREATININE,
    Lab.CRCL: Kind.CLEARANCE,
    Lab.EGFR: Kind.EGFR,
    Lab.WEIGHT: Kind.WEIGHT,
}


@dataclass(frozen=True)
class LabValue:
    lab: Lab
    value: Decimal  # in the target unit of its kind (cells/uL, umol/L, mL/min, kg; score)
    sent: str  # value and unit as sent
    at: datetime
    reference: str
    zone_assumed: bool
    upper_limit: Decimal | None = None  # bilirubin only: referenceRange.high, same unit
    upper_limit_sent: str | None = None


# What a bound a count is sent as must clear to be used: every threshold compared for its lab.
_COUNT_THRESHOLDS = {
    Lab.ANC: (ANC_HOLD_BELOW, ANC_NEW_CYCLE_AT_LEAST),
    Lab.PLATELETS: (PLATELETS_HOLD_BELOW, PLATELETS_NEW_CYCLE_AT_LEAST),
}


def loinc_codes(concept: Any) -> set[str]:
    """The LOINC codes of a concept, under LOINC's URL or its OID."""
    return {code for system, code in codings(concept) if system in LOINC_SYSTEMS}


def lab_of(raw: JsonDict) -> Lab | None:
    """Which lab a raw Observation is, by LOINC code (selection before validation)."""
    found = {_LAB_BY_CODE[code] for code in loinc_codes(raw.get("code")) if code in _LAB_BY_CODE}
    return found.pop() if len(found) == 1 else None


_COMPONENT_CODES = ANC_CODES | PLATELET_CODES | NEUTROPHIL_PERCENT_CODES | WBC_CODES


def component_labs(raw: JsonDict) -> bool:
    """Whether a raw Observation carries counts the rules read as components (a CBC panel)."""
    components = raw.get("component")
    return isinstance(components, list) and any(
        isinstance(c, dict) and loinc_codes(c.get("code")) & _COMPONENT_CODES for c in components
    )


# The codes of the results the lab readers read (read_results, specimen_ancs): a lab of its
# own, or a neutrophil percentage or WBC of a specimen.
LAB_RESULT_CODES = frozenset(_LAB_BY_CODE) | NEUTROPHIL_PERCENT_CODES | WBC_CODES


def read_by_lab_rules(raw: JsonDict, codes: set[str]) -> bool:
    """Whether the lab readers could read anything of a raw Observation whose LOINC codes are
    ``codes``: a result of a code they read, a CBC panel (its components), or a panel whose
    members may be a specimen's percentage and WBC (hasMember)."""
    return bool(codes & LAB_RESULT_CODES) or "hasMember" in raw or component_labs(raw)


def read_labs(
    raw: JsonDict, zone: tzinfo, problems: Problems
) -> tuple[LabValue | AncNotComputed, ...]:
    """The lab values of one Observation: its own value, and the counts among its components
    (a CBC panel), with the ANC a neutrophil percentage and a WBC among them give (or why it
    could not be computed: see ``anc_not_computed``)."""
    if text_field(raw, "status") not in COUNTING_STATUSES:
        return ()
    lab = lab_of(raw)
    if lab is None and not component_labs(raw):
        return ()
    observation = validate(Observation, raw, zone, problems)
    if observation is None:
        return ()
    found: list[LabValue | AncNotComputed] = []
    if lab is not None:
        value = _read_value(observation, raw, lab, zone, problems)
        if value is not None:
            found.append(value)
    at = _observation_time(observation, zone)
    if at is None or not observation.component:
        return tuple(found)
    reference = reference_of(raw)
    zone_assumed = reference in problems.zone_assumed
    parts = _SpecimenParts(reference, at, zone_assumed)
    for component in observation.component:
        codes = loinc_codes(component.code)
        component_lab = next((_LAB_BY_CODE[c] for c in codes if c in _LAB_BY_CODE), None)
        if component_lab in (Lab.ANC, Lab.PLATELETS):
            value = _count_value(component, component_lab, reference, at, zone_assumed, problems)
            if value is not None:
                found.append(value)
        elif codes & NEUTROPHIL_PERCENT_CODES:
            parts.percents.append(component)
        elif codes & WBC_CODES:
            parts.wbcs.append(component)
    measured = any(isinstance(v, LabValue) and v.lab is Lab.ANC for v in found)
    if parts.percents and not measured:
        found.append(parts.anc())
    return tuple(found)


@dataclass(frozen=True)
class AncNotComputed:
    """A neutrophil percentage whose ANC could not be computed, and why (for review)."""

    reference: str
    at: datetime
    why: tuple[str, ...]


@dataclass
class _SpecimenParts:
    """The neutrophil percentages and WBCs (Observations or components) of one specimen."""

    reference: str  # where the ANC is filed: the panel, or the first percentage
    at: datetime
    zone_assumed: bool
    percents: list[Any] = field(default_factory=list)
    wbcs: list[Any] = field(default_factory=list)

    def anc(self) -> LabValue | AncNotComputed:
        """Neutrophil percentage / 100 x WBC, exactly (Decimal), shown with both factors
        ("396/mm3 = 12 % x WBC 3.3 10*9/L"); or why not (no WBC, a value that cannot be read,
        two different percentages or counts for one specimen)."""
        noted = Problems()
        read = [_percent(holder, self.reference, self.at, noted) for holder in self.percents]
        percents = [p for p in read if p is not None]
        counted = [
            # A WBC is a cell count read like the ANC (same units), never filed as one.
            _count_value(holder, Lab.ANC, self.reference, self.at, self.zone_assumed, noted, "WBC")
            for holder in self.wbcs
        ]
        wbcs = [w for w in counted if w is not None]
        if len({p for p, _ in percents}) == 1 and len({w.value for w in wbcs}) == 1:
            (percent, percent_sent), wbc = percents[0], wbcs[0]
            value = percent * wbc.value / 100
            sent = f"{count_text(value)}/mm3 = {percent_sent} x WBC {wbc.sent}"
            return LabValue(Lab.ANC, value, sent, self.at, self.reference, self.zone_assumed)
        if not noted.uninterpretable:
            why = "no WBC count of the same specimen" if not wbcs else "conflicting values"
            shown = ", ".join(text for _, text in percents)
            noted.uninterpretable.append(
                f"neutrophils {self.reference} ({shown}, {self.at:%Y-%m-%d}): {why}; the ANC "
                "could not be computed from the neutrophil percentage"
            )
        return AncNotComputed(self.reference, self.at, tuple(noted.uninterpretable))


def anc_not_computed(attempts: list[AncNotComputed], ancs: list[LabValue]) -> list[str]:
    """Why the ANC of a percentage could not be computed, for the percentages that would be
    the latest word on the ANC (newer than every ANC read). An older one is overtaken by a
    count that was read; naming it would ask, on every call, to review a superseded result."""
    latest = max((v.at for v in ancs), default=None)
    return [
        why for attempt in attempts if latest is None or attempt.at > latest for why in attempt.why
    ]


def specimen_ancs(
    raws: list[JsonDict], zone: tzinfo, problems: Problems
) -> list[LabValue | AncNotComputed]:
    """The ANC of each specimen whose neutrophil percentage and WBC were filed as Observations
    of their own: the same specimen reference, or members of one panel (hasMember) taken at
    the same time. A specimen, or a time, with a measured ANC keeps that one."""
    parts = [
        raw
        for raw in raws
        if text_field(raw, "status") in COUNTING_STATUSES
        and loinc_codes(raw.get("code")) & (NEUTROPHIL_PERCENT_CODES | WBC_CODES)
    ]
    if not parts:
        return []
    panel_of = {
        str(member.get("reference")): reference_of(panel)
        for panel in raws
        for member in as_list(panel.get("hasMember"))
        if isinstance(member, dict)
    }

    def tie(raw: JsonDict) -> tuple[str, str]:
        """What could put a result in a group with others (before its time is read)."""
        specimen, reference = _specimen(raw), reference_of(raw)
        if specimen is not None:
            return ("specimen", specimen)
        if reference in panel_of:
            return ("panel", panel_of[reference])
        return ("alone", reference)

    # A WBC is read only for the ANC of a percentage of its specimen or panel: one that no
    # percentage could share a group with is never read (a chemistry panel's WBCs cost nothing).
    is_percent = [bool(loinc_codes(raw.get("code")) & NEUTROPHIL_PERCENT_CODES) for raw in parts]
    ties = {tie(raw) for raw, percent in zip(parts, is_percent, strict=True) if percent}
    parts = [
        raw for raw, percent in zip(parts, is_percent, strict=True) if percent or tie(raw) in ties
    ]
    if not parts:
        return []
    measured = [raw for raw in raws if lab_of(raw) is Lab.ANC]
    measured_specimens = {_specimen(raw) for raw in measured} - {None}
    measured_times = {_instant_sent(raw, zone) for raw in measured} - {None}
    # Specimen (or panel and time) -> its percentages and WBCs, with their references and times.
    groups: dict[tuple[str, ...], tuple[list[tuple[Any, str, datetime]], list[Any]]] = {}
    for raw in parts:
        observation = validate(Observation, raw, zone, problems)
        at = _observation_time(observation, zone) if observation is not None else None
        specimen = _specimen(raw)
        if observation is None or at is None or at in measured_times:
            continue
        if specimen in measured_specimens:
            continue
        reference = reference_of(raw)
        if specimen is not None:
            key: tuple[str, ...] = ("specimen", specimen)
        elif reference in panel_of:
            key = ("panel", panel_of[reference], at.isoformat())
        else:
            key = ("alone", reference)  # nothing ties it to a WBC
        percents, wbcs = groups.setdefault(key, ([], []))
        if loinc_codes(raw.get("code")) & NEUTROPHIL_PERCENT_CODES:
            percents.append((observation, reference, at))
        else:
            wbcs.append(observation)
    found: list[LabValue | AncNotComputed] = []
    for percents, wbcs in groups.values():
        if percents:
            _, reference, at = percents[0]  # the ANC is filed under the first percentage
            group = _SpecimenParts(reference, at, reference in problems.zone_assumed)
            group.percents = [observation for observation, _, _ in percents]
            group.wbcs = wbcs
            found.append(group.anc())
    return found


def _specimen(raw: JsonDict) -> str | None:
    specimen = raw.get("specimen")
    reference = specimen.get("reference") if isinstance(specimen, dict) else None
    return reference if isinstance(reference, str) and reference else None


def count_text(value: Decimal) -> str:
    """A count in cells/mm3 with thousands separators (exact: no rounding)."""
    whole = value.to_integral_value()
    return f"{int(whole):,}" if whole == value else plain(value)


def _observation_time(observation: Observation, zone: tzinfo) -> datetime | None:
    return as_instant(
        observation.effectiveDateTime
        or observation.effectiveInstant
        or (observation.effectivePeriod.start if observation.effectivePeriod else None)
        or observation.issued,
        zone,
    )


def _percent(
    component: Any, reference: str, at: datetime, problems: Problems
) -> tuple[Decimal, str] | None:
    quantity = component.valueQuantity
    if quantity is None or quantity.value is None:
        return None
    sent = f"{quantity.comparator or ''}{quantity.value} {quantity.unit or quantity.code or ''}"
    # The LOINC code says it is a percentage (Neutrophils/100 leukocytes): a unit, when sent,
    # must say so too.
    if quantity.comparator or (quantity.code or quantity.unit or "%").strip() != "%":
        problems.uninterpretable.append(
            f"neutrophils {reference} ({sent.strip()}, {at:%Y-%m-%d}): not a percentage of "
            "leukocytes that can be read exactly"
        )
        return None
    return Decimal(quantity.value), f"{plain(Decimal(quantity.value))} %"


# A count sent as text: "<20", "< 20 x10^3/uL", ">= 150 K/uL" (a comparator, a number, a unit).
_VALUE_STRING = re.compile(r"^\s*(<=|>=|<|>|\u2264|\u2265)?\s*(\d+(?:\.\d+)?)\s*(\S.*)?$")
_COMPARATOR_WORDS = {"\u2264": "<=", "\u2265": ">="}


def _count_value(
    holder: Any,
    lab: Lab,
    reference: str,
    at: datetime,
    zone_assumed: bool,
    problems: Problems,
    name: str | None = None,
) -> LabValue | None:
    """A cell count from a valueQuantity or valueString of an Observation or component, in
    cells/mm3. A bound ("<20" x10^3/uL) is used when it lies on one side of every threshold
    the label compares the count with (below 30,000 and 75,000 for platelets: "<20" is both);
    otherwise it is named for review, never guessed ("<50" x10^3/uL against 30,000)."""
    shown = name or lab.value
    quantity = holder.valueQuantity
    if quantity is not None and quantity.value is not None:
        number, comparator = Decimal(quantity.value), quantity.comparator
        code, system, unit = quantity.code, quantity.system, quantity.unit
    elif isinstance(holder.valueString, str) and (match := _VALUE_STRING.match(holder.valueString)):
        number, comparator = Decimal(match.group(2)), match.group(1)
        comparator = _COMPARATOR_WORDS.get(comparator or "", comparator)
        code, system, unit = None, None, (match.group(3) or "").strip() or None
    else:
        if holder.dataAbsentReason is None:
            problems.uninterpretable.append(f"{shown} {reference}: no numeric value")
        return None
    sent = f"{comparator or ''}{number} {unit or code or ''}".strip()
    converted = convert(Kind.CELL_COUNT, number, code, system, unit)
    if converted is None:
        problems.uninterpretable.append(
            f"{shown} {reference} ({sent}, {at:%Y-%m-%d}): unit "
            f"'{unit or code or 'none'}' cannot be converted exactly"
        )
        return None
    if comparator:
        thresholds = _COUNT_THRESHOLDS[lab] if name is None else ()
        below_all = comparator in ("<", "<=") and all(converted.value < t for t in thresholds)
        above_all = comparator in (">", ">=") and all(converted.value >= t for t in thresholds)
        if not thresholds or not (below_all or above_all):
            problems.uninterpretable.append(
                f"{shown} {reference} ({sent}, {at:%Y-%m-%d}): a bound, not a value"
                + (
                    ", and not decidable against the label's thresholds ("
                    + ", ".join(f"{count_text(t)}/mm3" for t in thresholds)
                    + ")"
                    if thresholds
                    else ""
                )
            )
            return None
    return LabValue(lab, converted.value, sent, at, reference, zone_assumed)


def _read_value(
    observation: Observation, raw: JsonDict, lab: Lab, zone: tzinfo, problems: Problems
) -> LabValue | None:
    """The Observation's own value of ``lab``."""
    reference = reference_of(raw)
    at = _observation_time(observation, zone)
    if at is None:
        problems.uninterpretable.append(f"{lab.value} {reference}: no date")
        return None
    zone_assumed = reference in problems.zone_assumed
    if lab in (Lab.ANC, Lab.PLATELETS):
        return _count_value(observation, lab, reference, at, zone_assumed, problems)
    if lab is Lab.PAIN_SCORE:
        score: Decimal | None = (
            Decimal(observation.valueInteger) if observation.valueInteger is not None else None
        )
        if score is None and observation.valueQuantity is not None:
            score = observation.valueQuantity.value
        if score is None:
            return None
        return LabValue(lab, Decimal(score), str(score), at, reference, zone_assumed)
    quantity = observation.valueQuantity
    if quantity is None or quantity.value is None:
        if observation.dataAbsentReason is None:
            problems.uninterpretable.append(f"{lab.value} {reference}: no numeric value")
        return None
    sent = f"{quantity.comparator or ''}{quantity.value} {quantity.unit or quantity.code or ''}"
    if quantity.comparator:
        problems.uninterpretable.append(
            f"{lab.value} {reference} ({sent.strip()}, {at:%Y-%m-%d}): a bound, not a value"
        )
        return None
    value = convert(
        _KIND[lab], Decimal(quantity.value), quantity.code, quantity.system, quantity.unit
    )
    if value is None:
        problems.uninterpretable.append(
            f"{lab.value} {reference} ({sent.strip()}, {at:%Y-%m-%d}): unit "
            f"'{quantity.unit or quantity.code or 'none'}' cannot be converted exactly"
        )
        return None
    upper_limit = upper_limit_sent = None
    if lab is Lab.BILIRUBIN:
        upper_limit, upper_limit_sent = _upper_limit(observation, lab, reference, problems)
    return LabValue(
        lab, value.value, value.sent, at, reference, zone_assumed, upper_limit, upper_limit_sent
    )


def _upper_limit(
    observation: Observation, lab: Lab, reference: str, problems: Problems
) -> tuple[Decimal | None, str | None]:
    """referenceRange.high in the lab's target unit. Read for bilirubin only, the one lab whose
    limit a rule uses (the ULN): an unreadable range of any other lab would put a review card
    beside the real advice for a number nothing looks at."""
    for reference_range in observation.referenceRange or []:
        high = reference_range.high
        if high is None or high.value is None:
            continue
        converted = convert(_KIND[lab], Decimal(high.value), high.code, high.system, high.unit)
        if converted is None:
            problems.uninterpretable.append(
                f"{lab.value} {reference}: reference range unit "
                f"'{high.unit or high.code or 'none'}' cannot be converted exactly"
            )
            return None, None
        return converted.value, converted.sent
    return None, None


def unused_new_result(raw: JsonDict) -> str | None:
    """Why a new result of a kind the rules read is not used for its status (preliminary,
    registered, unknown or none), in words for the review card; None when it is used, never
    was a result (cancelled, entered-in-error) or is of a kind no rule reads.

    Read from the raw JSON, unvalidated: the text only names what was sent."""
    lab = lab_of(raw)
    codes = loinc_codes(raw.get("code"))
    if lab is not None:
        kind = lab.value
    elif codes & PREGNANCY_STATUS_CODES:
        kind = "pregnancy status"
    elif component_labs(raw):
        kind = "blood count panel"
    elif codes & NEUTROPHIL_PERCENT_CODES:
        kind = "neutrophil percentage"
    else:
        return None
    status = text_field(raw, "status")
    if status in COUNTING_STATUSES or status in NO_RESULT_STATUSES:
        return None
    stated = f"status {status}" if status else "no status"
    return (
        f"{kind} {reference_of(raw)} ({_value_sent(raw)}, {_when_sent(raw)}): {stated}; not used "
        "(only final, amended or corrected results count; the final result will be checked "
        "when it is filed)"
    )


def _scalar(value: object) -> str:
    return str(value) if isinstance(value, (str, int, float, Decimal)) else ""


def _value_sent(raw: JsonDict) -> str:
    quantity = raw.get("valueQuantity")
    if isinstance(quantity, dict):
        unit = _scalar(quantity.get("unit")) or _scalar(quantity.get("code"))
        value = f"{_scalar(quantity.get('comparator'))}{_scalar(quantity.get('value'))} {unit}"
        return value.strip() or "no value"
    concept = raw.get("valueCodeableConcept")
    if isinstance(concept, dict):
        coding = concept.get("coding")
        codings = [c for c in coding if isinstance(c, dict)] if isinstance(coding, list) else []
        names = [concept.get("text"), *(c.get("display") or c.get("code") for c in codings)]
        return next((_scalar(n) for n in names if _scalar(n)), "no value")
    for key in ("valueInteger", "valueString"):
        if _scalar(raw.get(key)):
            return _scalar(raw.get(key))
    return "no value"


def overtaken(raw: JsonDict, counted: Iterable[LabValue], zone: tzinfo) -> bool:
    """Whether a new result not used for its status is overtaken by a ``counted`` result of the
    same lab taken at the same time or later (a preliminary count filed in one Bundle with its
    final version, or with a later final draw). The rules judged that one, so naming the
    preliminary would ask for a review of data that was read. A preliminary taken after every
    counted result, or whose time cannot be read, is not overtaken: it is the latest word.

    Read from the raw JSON, unvalidated, with the times in the order ``read_lab`` takes them."""
    lab = lab_of(raw)
    taken = _instant_sent(raw, zone)
    if lab is None or taken is None:
        return False
    return any(value.lab is lab and value.at >= taken for value in counted)


def unused_latest_count(
    raw: JsonDict, counted: Iterable[LabValue], zone: tzinfo, since: datetime
) -> str | None:
    """Why a recorded ANC or platelet count that is not used for its status (preliminary) is
    named at an order hook: taken after ``since`` and after every counted result of its lab,
    it is the latest word on the count. None for anything else."""
    if text_field(raw, "status") in COUNTING_STATUSES:  # most results: one look, then done
        return None
    if lab_of(raw) not in (Lab.ANC, Lab.PLATELETS) and not component_labs(raw):
        return None
    why = unused_new_result(raw)
    taken = _instant_sent(raw, zone)
    if why is None or taken is None or taken < since or overtaken(raw, counted, zone):
        return None
    return why


def _instant_sent(raw: JsonDict, zone: tzinfo) -> datetime | None:
    """``_time_sent`` as an aware datetime (a naive one in ``zone``), or None if unreadable."""
    text = _time_sent(raw)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return as_instant(text, zone)  # a partial date ("2026", "2026-12"), else None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _time_sent(raw: JsonDict) -> str | None:
    period = raw.get("effectivePeriod")
    for value in (
        raw.get("effectiveDateTime"),
        raw.get("effectiveInstant"),
        period.get("start") if isinstance(period, dict) else None,
        raw.get("issued"),
    ):
        if isinstance(value, str) and value:
            return value
    return None


def _when_sent(raw: JsonDict) -> str:
    return _time_sent(raw) or "no date"


# --- which results a decision rests on ---------------------------------------------------------
#
# A history holds years of results, and validating one costs tens of microseconds to a
# millisecond. The decisions read, of the chemistry and the weight, the latest result only
# (start_dose); of the counts, the latest (new-cycle gate) and the episodes below a threshold
# with the result that ended each (count_episodes: a count at or above every threshold that
# follows another one changes no episode); of the pain scores, those near now or near a
# toxicity finding ("with pain": episodes._pain_near, shared.with_pain_now), within the pain
# window on either side. So each result is first previewed from its raw JSON
# (which lab, when, and for a count whether it is below a threshold), and only the results those
# readings rest on are validated and read. A preview is trusted only where the reading agrees
# with it; where one does not, every result is read, as if nothing had been previewed.

_LATEST_ONLY = frozenset({Lab.BILIRUBIN, Lab.CREATININE, Lab.CRCL, Lab.EGFR, Lab.WEIGHT})


@dataclass(frozen=True)
class PainMoments:
    """When a pain score counts: within ``window`` of one of ``moments`` (now, and the time of
    each toxicity finding)."""

    moments: list[datetime]
    window: timedelta

    def near(self, at: datetime) -> bool:
        return any(abs(at - moment) <= self.window for moment in self.moments)


# A count below one of these is part of an episode, or ends one, for some threshold compared.
_COUNT_CLEAR_AT = {lab: max(thresholds) for lab, thresholds in _COUNT_THRESHOLDS.items()}


@dataclass(frozen=True)
class _Preview:
    lab: Lab
    at: datetime
    reference: str
    low: bool  # a count below a threshold (False for the chemistry and the weight)


def _preview(raw: JsonDict, lab: Lab | None) -> _Preview | None:
    """What a result of ``lab`` (``lab_of(raw)``) would read as, from its raw JSON, when that is
    plain to see: one value of a lab read for its latest result or a count, a time with its
    zone. None: it must be read."""
    if (
        lab is None
        or "component" in raw
        or (lab not in _LATEST_ONLY and lab not in _COUNT_CLEAR_AT and lab is not Lab.PAIN_SCORE)
    ):
        return None
    text = _time_sent(raw)
    try:
        at = datetime.fromisoformat(text) if text is not None else None
    except ValueError:
        return None
    if at is None or at.tzinfo is None:
        return None
    low = False
    if lab in _COUNT_CLEAR_AT:
        quantity = dict_field(raw, "valueQuantity")
        value = quantity.get("value")
        if (
            not isinstance(value, (int, Decimal))
            or isinstance(value, bool)
            or "comparator" in quantity
        ):
            return None
        code, system, unit = (quantity.get(key) for key in ("code", "system", "unit"))
        if not all(part is None or isinstance(part, str) for part in (code, system, unit)):
            return None
        converted = convert(Kind.CELL_COUNT, Decimal(value), code, system, unit)
        if converted is None:
            return None
        low = converted.value < _COUNT_CLEAR_AT[lab]
    return _Preview(lab, at, reference_of(raw), low)


def _needed(
    previews: list[_Preview], read: list[LabValue], until: datetime, pain: PainMoments | None
) -> set[str]:
    """The references of the previewed results the decisions rest on (see above); every pain
    score when ``pain`` is None."""
    needed: set[str] = set()
    for lab in Lab:
        items: list[_Preview | LabValue] = [p for p in previews if p.lab is lab]
        if not items:
            continue
        items += [v for v in read if v.lab is lab]
        items.sort(key=lambda item: (item.at, item.reference))
        # Dated in the future: named for review, so read.
        needed |= {i.reference for i in items if i.at > until and isinstance(i, _Preview)}
        past = [i for i in items if i.at <= until]
        if not past:
            continue
        needed.add(past[-1].reference)
        if lab is Lab.PAIN_SCORE:
            needed |= {i.reference for i in past if pain is None or pain.near(i.at)}
        if lab in _COUNT_CLEAR_AT:
            lows = [_is_low(i) for i in past]
            for position, item in enumerate(past):
                if lows[position] or (position and lows[position - 1]):
                    needed.add(item.reference)
    return needed


def _is_low(item: _Preview | LabValue) -> bool:
    if isinstance(item, _Preview):
        return item.low
    return item.value < _COUNT_CLEAR_AT[item.lab]


def read_results(
    raws: list[JsonDict],
    always: set[str],
    until: datetime,
    zone: tzinfo,
    problems: Problems,
    pain: PainMoments | None = None,
) -> list[LabValue | AncNotComputed]:
    """The values of the results the decisions rest on (see above), as ``read_labs`` gives
    them, in the order of ``raws``; then the ANCs computed per specimen (``specimen_ancs``).
    ``always``: references read whatever they show (the new results of a lab-result call);
    ``until``: a result taken after it is in the future (named for review, so read);
    ``pain``: when a pain score counts (None: every one is read).

    What could not be read is noted in ``problems`` in the order of ``raws``, as if each had
    been read in turn."""
    candidates: list[JsonDict] = []
    previews: dict[int, _Preview] = {}
    for raw in raws:
        if text_field(raw, "status") not in COUNTING_STATUSES:
            continue
        lab = lab_of(raw)
        if lab is None and not component_labs(raw):
            continue
        if reference_of(raw) not in always and (preview := _preview(raw, lab)) is not None:
            previews[len(candidates)] = preview
        candidates.append(raw)
    outcomes: dict[int, tuple[tuple[LabValue | AncNotComputed, ...], Problems]] = {}

    def read(position: int) -> tuple[LabValue | AncNotComputed, ...]:
        noted = Problems()
        values = read_labs(candidates[position], zone, noted)
        outcomes[position] = (values, noted)
        return values

    plain = [
        value
        for position in range(len(candidates))
        if position not in previews
        for value in read(position)
        if isinstance(value, LabValue)
    ]
    specimen_noted = Problems()
    specimen = specimen_ancs(raws, zone, specimen_noted)
    computed = [value for value in specimen if isinstance(value, LabValue)]
    needed = _needed(list(previews.values()), plain + computed, until, pain)
    for position, preview in previews.items():
        if preview.reference not in needed:
            continue
        values = read(position)
        agrees = (
            len(values) == 1
            and isinstance(value := values[0], LabValue)
            and (value.lab, value.at, value.reference)
            == (preview.lab, preview.at, preview.reference)
            and (preview.lab not in _COUNT_CLEAR_AT or _is_low(value) == preview.low)
            and not value.zone_assumed
        )
        if not agrees:  # the preview was wrong: trust none, read every result
            for other in previews:
                if other not in outcomes:
                    read(other)
            break
    found: list[LabValue | AncNotComputed] = []
    for position in sorted(outcomes):
        values, noted = outcomes[position]
        found += values
        problems.add(noted)
    problems.add(specimen_noted)
    return found + specimen
