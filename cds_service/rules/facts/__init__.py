"""Stage 1: facts from the FHIR data, read exactly, with what could not be read.

``gather_facts`` selects the resources each rule needs by type and code from the raw JSON,
validates only those, and returns plain facts (Decimal values in fixed units, aware
datetimes). Nothing here decides anything clinical.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo

from cds_service.exact_json import ItemsMemo
from cds_service.rules import data_needs as keys
from cds_service.rules.facts.clinical import (
    Evidence,
    PatientFacts,
    Toxicity,
    ToxicityFinding,
    hypersensitivity_evidence,
    neuropathic_pain_conditions,
    pregnancy_evidence,
    read_adverse_event,
    read_graded_observation,
    read_patient,
    renal_failure_evidence,
)
from cds_service.rules.facts.labs import (
    AncNotComputed,
    Lab,
    LabValue,
    anc_not_computed,
    overtaken,
    read_labs,
    reads_labs,
    specimen_ancs,
    unused_latest_count,
    unused_new_result,
)
from cds_service.rules.facts.orders import (
    Drug,
    MedicationOrder,
    names_other_drug,
    order_drug,
    read_order,
    referenced_medication,
)
from cds_service.rules.facts.reading import (
    Problems,
    Readings,
    dict_field,
    of_type,
    reference_of,
    shown,
    zone_flag,
)
from cds_service.rules.inputs import (
    HOOK_ORDER_SELECT,
    HOOK_ORDER_SIGN,
    HOOK_PATIENT_VIEW,
    HookCall,
    JsonDict,
    PatientRecord,
)
from cds_service.rules.settings import RuleSettings

__all__ = [
    "Drug",
    "Evidence",
    "Facts",
    "Lab",
    "LabValue",
    "MedicationOrder",
    "PatientFacts",
    "Problems",
    "ToxicityFinding",
    "gather_facts",
]

REGIMEN_DRUGS = (Drug.IXAZOMIB, Drug.LENALIDOMIDE)
# MedicationRequest statuses that say no dose of the order was ever given (see gather_facts).
NOT_HISTORY = frozenset({"draft", "entered-in-error", "cancelled"})
CLOCK_SKEW = timedelta(minutes=1)


@dataclass
class Facts:
    now: datetime
    drafts: list[MedicationOrder]  # the draft ixazomib orders being judged
    other_drafts: list[MedicationOrder]  # other draft orders (inducers ordered together)
    history: list[MedicationOrder]  # past and current ixazomib/lenalidomide orders, by start
    active_orders: list[MedicationOrder]  # active ixazomib/lenalidomide orders (to hold)
    inducers: list[MedicationOrder]  # active or draft strong CYP3A inducers
    labs: dict[Lab, list[LabValue]]  # by time, oldest first
    new_labs: list[LabValue]  # lab-result hook: the new results
    new_references: set[str]  # lab-result hook: "Observation/<id>" of every new result
    patient: PatientFacts
    renal_failure: list[Evidence]
    pregnancy: list[Evidence]
    hypersensitivity: list[Evidence]
    toxicities: list[ToxicityFinding]
    unavailable: dict[str, str]
    left_out: dict[str, str]  # resources that arrived but were not used, by key: why
    problems: Problems = field(default_factory=Problems)
    # Recorded ixazomib/lenalidomide orders that could not be read (not valid FHIR): the
    # history has gaps, so "never had ixazomib" cannot be concluded.
    unreadable_history: list[str] = field(default_factory=list)

    def ixazomib_history(self) -> list[MedicationOrder]:
        return [order for order in self.history if order.drug is Drug.IXAZOMIB]


def _resources(entries: list[JsonDict]) -> list[JsonDict]:
    """Resources from a list that may hold Bundle entries ({"resource": ...}) or resources."""
    found = []
    for entry in entries:
        if isinstance(entry, dict):  # one look-up per entry: this runs for every resource
            inner = entry.get("resource")
            found.append(inner if isinstance(inner, dict) else entry)
    return found


# The same history again gives lists of the same shared resources: pick them out once
# (ItemsMemo). Each call gets a copy of the remembered list.
_RESOURCES: ItemsMemo[list[JsonDict]] = ItemsMemo(max_size=200_000, size=len)
_UNIQUE: ItemsMemo[dict[str, JsonDict]] = ItemsMemo(max_size=200_000, size=len)


def _unique(resources: list[JsonDict]) -> list[JsonDict]:
    return list(_add_unique({}, resources).values())


def _add_unique(seen: dict[str, JsonDict], resources: list[JsonDict]) -> dict[str, JsonDict]:
    """``seen`` (resources by reference, in order) with ``resources`` added to it."""
    for resource in resources:
        name = reference_of(resource) if "id" in resource else f"#{len(seen)}"
        seen[name] = resource  # later copies (the new results) win
    return seen


def judged_drafts(call: HookCall) -> list[JsonDict]:
    drafts = of_type(_resources(call.draft_orders), "MedicationRequest")
    if call.hook == HOOK_ORDER_SELECT and call.selections:
        drafts = [d for d in drafts if reference_of(d) in call.selections]
    return drafts


def gather_facts(call: HookCall, record: PatientRecord, settings: RuleSettings) -> Facts:
    zone = settings.default_timezone
    problems = Problems()
    resources = {
        key: list(_RESOURCES(value, _resources)) for key, value in record.resources.items()
    }

    readings = Readings(zone)
    medications = record.medications

    def read_selected_order(raw: JsonDict, noted: Problems) -> MedicationOrder | None:
        if order_drug(raw, medications) == (Drug.OTHER, None):
            return None
        return read_order(raw, medications, zone, noted)

    def read_orders(raws: list[JsonDict]) -> list[MedicationOrder]:
        orders = []
        for raw in raws:
            # An order also depends on the Medication it references outside itself.
            medication = referenced_medication(raw, medications)
            context = None if medication is None else readings.content(medication)
            if medication is not None and context is None:
                order = read_selected_order(raw, problems)  # not remembered
            else:
                # A remembered order keeps the JSON it was read from: the same content as
                # ``raw`` (never changed in place), so suggestions built from it are the same.
                order = readings.read("order", raw, problems, read_selected_order, context)
                if order and not order.zone_assumed and order.reference in problems.zone_assumed:
                    order = replace(order, zone_assumed=True)
            if order is not None:
                orders.append(order)
        return orders

    draft_raws = judged_drafts(call)
    draft_orders = read_orders(draft_raws)
    draft_references = {
        reference_of(d) for d in of_type(_resources(call.draft_orders), "MedicationRequest")
    }
    recorded_raws = [
        r
        for r in of_type(resources.get(keys.MEDICATION_REQUESTS, []), "MedicationRequest")
        if reference_of(r) not in draft_references
    ]
    recorded = read_orders(recorded_raws)
    # Regimen orders that are not valid FHIR: not history we can read, but history all the same.
    read_references = {o.reference for o in recorded}
    unreadable_history = [
        reference_of(r)
        for r in recorded_raws
        if reference_of(r) not in read_references and order_drug(r, medications)[0] in REGIMEN_DRUGS
    ]
    # Drafts are not history; entered-in-error orders never happened; cancelled ones (FHIR R4:
    # withdrawn before any dose was taken) started nothing, so a patient whose only ixazomib
    # order was cancelled is still starting it (starting-dose rules apply).
    history = sorted(
        (
            o
            for o in recorded
            if o.drug in REGIMEN_DRUGS and o.status not in NOT_HISTORY and o.starts is not None
        ),
        key=lambda o: o.starts or call.now,
    )
    all_drafts = read_orders(of_type(_resources(call.draft_orders), "MedicationRequest"))

    new_observations = of_type(_resources(call.new_observations), "Observation")
    # _unique(history's results + new results), with the history's part done once.
    recorded_labs = of_type(resources.get(keys.LABS, []), "Observation")
    seen = dict(_UNIQUE(recorded_labs, lambda raws: _add_unique({}, raws)))
    observation_raws = list(_add_unique(seen, new_observations).values())

    def read_labs(raws: list[JsonDict], noted: Problems) -> dict[Lab, tuple[LabValue, ...]]:
        found: dict[Lab, list[LabValue]] = {lab: [] for lab in Lab}
        not_computed: list[AncNotComputed] = []
        # Each result's values; then the ANC of each specimen whose neutrophil percentage and
        # WBC were filed as Observations of their own.
        read = [
            value
            for raw in raws
            for value in readings.read("lab", raw, noted, lambda lab, p: _read_labs(lab, zone, p))
        ]
        for value in [*read, *specimen_ancs(raws, zone, noted)]:
            if isinstance(value, AncNotComputed):
                not_computed.append(value)
            else:
                found[value.lab].append(_zone_checked(value, noted))
        noted.uninterpretable += anc_not_computed(not_computed, found[Lab.ANC])
        return {
            lab: tuple(sorted(series, key=lambda v: (v.at, v.reference)))
            for lab, series in found.items()
        }

    # All results as in an earlier call: one serialisation of the lot; else result by result.
    series_by_lab = readings.read("labs", observation_raws, problems, read_labs)
    # No zone assumed anywhere in this call: every value keeps its flag (see _zone_checked).
    zones = bool(problems.zone_assumed)
    labs = {
        lab: [_zone_checked(value, problems) for value in series] if zones else list(series)
        for lab, series in series_by_lab.items()
    }
    # A result dated after now is not the latest word on anything: its date or time zone is
    # wrong, or the clocks disagree. Used as the latest it would stand in front of the real
    # latest result (a normal count "from tomorrow" hiding today's low one), so it is not used,
    # and it is named for review. A minute of clock difference is allowed.
    for lab, series in labs.items():
        future = [v for v in series if v.at > call.now + CLOCK_SKEW]
        if future:
            labs[lab] = [v for v in series if v.at <= call.now + CLOCK_SKEW]
            problems.uninterpretable.extend(
                f"{v.lab.value} {v.reference} ({v.sent}, {shown(v.at)}): dated in the future "
                f"(now is {shown(call.now)}); not used"
                for v in future
            )
    new_references = {reference_of(o) for o in new_observations}
    new_labs = (  # an order hook has no new results: nothing to look for
        [v for series in labs.values() for v in series if v.reference in new_references]
        if new_references
        else []
    )
    # A new result left out for its status (preliminary...) is named, never dropped in silence;
    # earlier ones are not (the hook was called for those already). Nor is one that a counted
    # new result of the same lab, as new or newer, stands in for: that one was judged.
    for raw in _unique(new_observations):
        if (why := unused_new_result(raw)) is not None and not overtaken(raw, new_labs, zone):
            problems.uninterpretable.append(why)
    if call.hook in (HOOK_ORDER_SIGN, HOOK_ORDER_SELECT, HOOK_PATIENT_VIEW):
        # A preliminary count newer than every final one is not used, but it is named: a
        # preliminary platelet count of 20,000 must not pass an order in silence.
        counted = [*labs[Lab.ANC], *labs[Lab.PLATELETS]]
        since = call.now - settings.cbc_max_age
        for raw in recorded_labs:
            if (why := unused_latest_count(raw, counted, zone, since)) is not None:
                problems.uninterpretable.append(why)

    ixazomib_references = {o.reference for o in history if o.drug is Drug.IXAZOMIB}
    ixazomib_references |= {
        str(dict_field(o.raw, "medicationReference").get("reference"))
        for o in history
        if o.drug is Drug.IXAZOMIB
    }
    # Orders of other drugs (and their Medications), so that an adverse event whose suspects are
    # only these (lenalidomide alone) reads as not attributed to ixazomib rather than unstated.
    other_references: set[str] = set()
    for raw in of_type(resources.get(keys.MEDICATION_REQUESTS, []), "MedicationRequest"):
        if names_other_drug(raw, medications):
            medication = dict_field(raw, "medicationReference").get("reference")
            other_references.add(reference_of(raw))
            if isinstance(medication, str) and not medication.startswith("#"):
                other_references.add(medication)
    other_references -= ixazomib_references
    references_context = (frozenset(ixazomib_references), frozenset(other_references))
    toxicities = [
        _with_zone_flag(finding, problems)
        for raw in of_type(resources.get(keys.ADVERSE_EVENTS, []), "AdverseEvent")
        if (
            finding := readings.read(
                "adverse event",
                raw,
                problems,
                lambda event, noted: read_adverse_event(
                    event, ixazomib_references, zone, noted, other_references
                ),
                references_context,
            )
        )
        is not None
    ]
    graded_raws = _unique(
        of_type(resources.get(keys.TOXICITY_GRADES, []), "Observation")
        + of_type(resources.get(keys.TOXICITY_TERM_OBSERVATIONS, []), "Observation")
    )
    graded = [
        _with_zone_flag(finding, problems)
        for raw in graded_raws
        if (
            finding := readings.read(
                "graded observation",
                raw,
                problems,
                lambda graded, noted: read_graded_observation(graded, zone, noted),
            )
        )
        is not None
    ]
    toxicities += _latest_is_current(graded, call.now)
    conditions = of_type(resources.get(keys.CONDITIONS, []), "Condition")
    # Neuropathic pain on the problem list is "with pain" for the neuropathy rows.
    toxicities += neuropathic_pain_conditions(conditions, zone, problems)

    patients = of_type(resources.get(keys.PATIENT, []), "Patient")
    return Facts(
        now=call.now,
        drafts=[o for o in draft_orders if o.drug is Drug.IXAZOMIB],
        other_drafts=[o for o in all_drafts if o.drug is not Drug.IXAZOMIB],
        history=history,
        active_orders=[o for o in history if o.status == "active"],
        inducers=[
            o
            for o in recorded + all_drafts
            if o.inducer and (o.status == "active" or o.reference in draft_references)
        ],
        labs=labs,
        new_labs=new_labs,
        new_references=new_references,
        patient=read_patient(patients[0] if patients else None, zone, problems),
        renal_failure=renal_failure_evidence(
            conditions,
            of_type(resources.get(keys.PROCEDURES, []), "Procedure"),
            call.now,
            zone,
            problems,
        ),
        pregnancy=pregnancy_evidence(
            observation_raws, conditions, call.now, zone, problems, readings
        ),
        hypersensitivity=hypersensitivity_evidence(
            of_type(resources.get(keys.ALLERGIES, []), "AllergyIntolerance"), zone, problems
        ),
        toxicities=toxicities,
        unavailable=dict(record.unavailable),
        left_out=dict(record.left_out),
        problems=problems,
        unreadable_history=unreadable_history,
    )


def _read_labs(
    raw: JsonDict, zone: tzinfo, problems: Problems
) -> tuple[LabValue | AncNotComputed, ...]:
    return read_labs(raw, zone, problems) if reads_labs(raw) else ()


def _zone_checked(value: LabValue, problems: Problems) -> LabValue:
    """The value with its zone flag as this call's ``problems`` say (see Readings)."""
    if value.zone_assumed == zone_flag(value.zone_assumed, value.reference, problems):
        return value
    return replace(value, zone_assumed=True)


def _with_zone_flag(finding: ToxicityFinding, problems: Problems) -> ToxicityFinding:
    if finding.zone_assumed == zone_flag(finding.zone_assumed, finding.reference, problems):
        return finding
    return replace(finding, zone_assumed=True)


def _latest_is_current(findings: list[ToxicityFinding], now: datetime) -> list[ToxicityFinding]:
    """Graded Observations: the latest of each toxicity is the current state, earlier ones past."""

    def series(finding: ToxicityFinding) -> str:  # "other" toxicities differ by term
        return finding.term if finding.toxicity is Toxicity.OTHER else finding.toxicity.value

    latest: dict[str, ToxicityFinding] = {}
    for finding in findings:
        current = latest.get(series(finding))
        if current is None or (finding.at or now) >= (current.at or now):
            latest[series(finding)] = finding
    flags = [latest.get(series(f)) is f and (f.grade or 0) > 0 for f in findings]
    # Findings are frozen: one whose flag is already right is used as it is, not copied.
    return [
        f if f.ongoing == ongoing else replace(f, ongoing=ongoing)
        for f, ongoing in zip(findings, flags, strict=True)
    ]
