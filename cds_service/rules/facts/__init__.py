"""Stage 1: facts from the FHIR data, read exactly, with what could not be read.

``gather_facts`` selects the resources each rule needs by type and code from the raw JSON,
validates only those, and returns plain facts (Decimal values in fixed units, aware
datetimes). Nothing here decides anything clinical.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo

from cds_service.rules import prefetch_keys as keys
from cds_service.rules.codes import PREGNANCY_STATUS_CODES
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
    PainMoments,
    anc_not_computed,
    loinc_codes,
    overtaken,
    read_by_lab_rules,
    read_results,
    unused_latest_count,
    unused_new_result,
)
from cds_service.rules.facts.orders import (
    Drug,
    MedicationOrder,
    names_other_drug,
    order_drug,
    read_order,
)
from cds_service.rules.facts.reading import (
    Problems,
    dict_field,
    of_type,
    reference_of,
    shown,
)
from cds_service.rules.inputs import HookCall, JsonDict, PatientRecord
from cds_service.rules.settings import RuleSettings

__all__ = [
    "Drug",
    "Evidence",
    "Facts",
    "Lab",
    "LabValue",
    "MedicationFacts",
    "MedicationOrder",
    "PatientFacts",
    "Problems",
    "ToxicityFinding",
    "gather_facts",
    "read_medications",
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
    # Ixazomib/lenalidomide orders given but with no start date: not in ``history`` (their
    # place in it is unknown), named in ``unreadable_history``.
    undated: list[MedicationOrder]
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
    # Recorded ixazomib/lenalidomide orders that could not be read into the history (not
    # valid FHIR, or no start date to place them by): "Type/id" -> why. The history has gaps,
    # so "never had ixazomib" cannot be concluded.
    unreadable_history: dict[str, str] = field(default_factory=dict)

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


def _unique(resources: list[JsonDict]) -> list[JsonDict]:
    """The resources by reference, in order; a later copy (a new result) wins."""
    seen: dict[str, JsonDict] = {}
    for resource in resources:
        name = reference_of(resource) if "id" in resource else f"#{len(seen)}"
        seen[name] = resource
    return list(seen.values())


def judged_drafts(call: HookCall) -> list[JsonDict]:
    drafts = of_type(_resources(call.draft_orders), "MedicationRequest")
    if call.selections:  # order-select: the drafts the clinician selected
        drafts = [d for d in drafts if reference_of(d) in call.selections]
    return drafts


@dataclass
class MedicationFacts:
    """What the medication list says, read before anything else: a lab-result call about a
    patient who takes no ixazomib is decided from this alone (``takes_no_ixazomib``)."""

    problems: Problems
    draft_orders: list[MedicationOrder]  # the judged drafts that name a regimen drug or inducer
    all_drafts: list[MedicationOrder]
    draft_references: set[str]
    recorded: list[MedicationOrder]  # recorded orders of regimen drugs and inducers
    history: list[MedicationOrder]
    undated: list[MedicationOrder]  # regimen orders given but with no start: not in history
    unreadable_history: dict[str, str]  # "Type/id" -> why it is not in the history

    def takes_no_ixazomib(self) -> bool:
        """No ixazomib order on record, and none that could not be read."""
        return not self.unreadable_history and all(
            order.drug is not Drug.IXAZOMIB for order in self.history
        )


def read_medications(
    call: HookCall, record: PatientRecord, settings: RuleSettings
) -> MedicationFacts:
    """The draft orders of a drug the rules know, and the recorded orders of the regimen's
    drugs and of strong CYP3A inducers. Only those are validated: any other order (another
    drug's, a past dexamethasone order) is passed over on its raw JSON."""
    zone = settings.default_timezone
    problems = Problems()
    medications = record.medications

    def read_orders(
        raws: list[JsonDict], wanted: Callable[[Drug, str | None], bool]
    ) -> list[MedicationOrder]:
        return [
            order
            for raw in raws
            if wanted(*order_drug(raw, medications))
            and (order := read_order(raw, medications, zone, problems)) is not None
        ]

    def known(drug: Drug, inducer: str | None) -> bool:
        return drug is not Drug.OTHER or inducer is not None

    def regimen_or_inducer(drug: Drug, inducer: str | None) -> bool:
        return drug in REGIMEN_DRUGS or inducer is not None

    drafts = of_type(_resources(call.draft_orders), "MedicationRequest")
    draft_references = {reference_of(d) for d in drafts}
    recorded_raws = [
        r
        for r in of_type(
            _resources(record.resources.get(keys.MEDICATION_REQUESTS, [])), "MedicationRequest"
        )
        if reference_of(r) not in draft_references
    ]
    all_drafts = read_orders(drafts, known)  # each draft read once, judged or not
    judged = {reference_of(d) for d in judged_drafts(call)}
    recorded = read_orders(recorded_raws, regimen_or_inducer)
    # Regimen orders that are not valid FHIR: not history we can read, but history all the same.
    read_references = {o.reference for o in recorded}
    unreadable_history = {
        reference_of(r): "not valid FHIR"
        for r in recorded_raws
        if reference_of(r) not in read_references and order_drug(r, medications)[0] in REGIMEN_DRUGS
    }
    # Drafts are not history; entered-in-error orders never happened; cancelled ones (FHIR R4:
    # withdrawn before any dose was taken) started nothing, so a patient whose only ixazomib
    # order was cancelled is still starting it (starting-dose rules apply).
    given = [o for o in recorded if o.drug in REGIMEN_DRUGS and o.status not in NOT_HISTORY]
    # An order with no start (no authoredOn, no dosage bounds) cannot be placed in the dose
    # history, and a guessed date would count episodes wrongly; but it is history all the same
    # (an active one may be today's): unreadable, so the patient is never taken as off it.
    undated = [o for o in given if o.starts is None]
    for order in undated:
        unreadable_history[order.reference] = "no start date (authoredOn or dosage bounds)"
        problems.uninterpretable.append(
            f"{order.reference} ({order.drug.value}, {order.status}): no start date "
            "(authoredOn or dosage bounds): not placed in the dose history"
        )
    history = sorted((o for o in given if o.starts is not None), key=lambda o: o.starts or call.now)
    return MedicationFacts(
        problems=problems,
        draft_orders=[o for o in all_drafts if o.reference in judged],
        all_drafts=all_drafts,
        draft_references=draft_references,
        recorded=recorded,
        history=history,
        undated=undated,
        unreadable_history=unreadable_history,
    )


def gather_facts(
    call: HookCall,
    record: PatientRecord,
    settings: RuleSettings,
    medication_facts: MedicationFacts | None = None,
) -> Facts:
    """The facts of one call; ``medication_facts``, when given, are those ``read_medications``
    gave for this call (read first, to see whether more is needed)."""
    zone = settings.default_timezone
    orders = medication_facts or read_medications(call, record, settings)
    problems = orders.problems
    resources = {key: _resources(value) for key, value in record.resources.items()}
    history = orders.history

    new_observations = of_type(_resources(call.new_observations), "Observation")
    recorded_labs = of_type(resources.get(keys.LABS, []), "Observation")
    # The results a rule reads, picked once by code: an over-fetched sodium costs one look.
    observation_raws = [
        raw
        for raw in _unique(recorded_labs + new_observations)
        if read_by_lab_rules(raw, codes := loinc_codes(raw.get("code")))
        or codes & PREGNANCY_STATUS_CODES
    ]

    # The toxicities first: a pain score is read only near one of them, or near now.
    toxicity_problems = Problems()
    conditions = of_type(resources.get(keys.CONDITIONS, []), "Condition")
    toxicities = _read_toxicities(
        call, record, resources, conditions, history, zone, toxicity_problems
    )
    pain_moments = [call.now, *(f.at for f in toxicities if f.at is not None)]

    new_references = {reference_of(o) for o in new_observations}
    found: dict[Lab, list[LabValue]] = {lab: [] for lab in Lab}
    not_computed: list[AncNotComputed] = []
    # The results the decisions rest on (read_results): not every result of the history.
    until = call.now + CLOCK_SKEW
    pain_near = PainMoments(pain_moments, settings.pain_score_max_age)
    for value in read_results(observation_raws, new_references, until, zone, problems, pain_near):
        if isinstance(value, AncNotComputed):
            not_computed.append(value)
        else:
            found[value.lab].append(value)
    problems.uninterpretable += anc_not_computed(not_computed, found[Lab.ANC])
    labs = {lab: sorted(series, key=lambda v: (v.at, v.reference)) for lab, series in found.items()}
    # A result dated after now is not the latest word on anything: its date or time zone is
    # wrong, or the clocks disagree. Used as the latest it would stand in front of the real
    # latest result (a normal count "from tomorrow" hiding today's low one), so it is not used,
    # and it is named for review. A minute of clock difference is allowed.
    for lab, series in labs.items():
        future = [v for v in series if v.at > until]
        if future:
            labs[lab] = [v for v in series if v.at <= until]
            problems.uninterpretable.extend(
                f"{v.lab.value} {v.reference} ({v.sent}, {shown(v.at)}): dated in the future "
                f"(now is {shown(call.now)}); not used"
                for v in future
            )
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
    if not new_observations:
        # A call that judges the record as it stands (an order, a chart opened), not new
        # results: a preliminary count newer than every final one is not used, but it is
        # named: a preliminary platelet count of 20,000 must not pass an order in silence.
        counted = [*labs[Lab.ANC], *labs[Lab.PLATELETS]]
        since = call.now - settings.cbc_max_age
        for raw in recorded_labs:
            if (why := unused_latest_count(raw, counted, zone, since)) is not None:
                problems.uninterpretable.append(why)

    problems.add(toxicity_problems)  # noted after the labs', as they were read before

    patients = of_type(resources.get(keys.PATIENT, []), "Patient")
    return Facts(
        now=call.now,
        drafts=[o for o in orders.draft_orders if o.drug is Drug.IXAZOMIB],
        other_drafts=[o for o in orders.all_drafts if o.drug is not Drug.IXAZOMIB],
        history=history,
        # An undated active order is held as well: it may be the one being taken.
        active_orders=[o for o in history + orders.undated if o.status == "active"],
        undated=orders.undated,
        inducers=[
            o
            for o in orders.recorded + orders.all_drafts
            if o.inducer and (o.status == "active" or o.reference in orders.draft_references)
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
        pregnancy=pregnancy_evidence(observation_raws, conditions, call.now, zone, problems),
        hypersensitivity=hypersensitivity_evidence(
            of_type(resources.get(keys.ALLERGIES, []), "AllergyIntolerance"), zone, problems
        ),
        toxicities=toxicities,
        unavailable=dict(record.unavailable),
        left_out=dict(record.left_out),
        problems=problems,
        unreadable_history=orders.unreadable_history,
    )


def _read_toxicities(
    call: HookCall,
    record: PatientRecord,
    resources: dict[str, list[JsonDict]],
    conditions: list[JsonDict],
    history: list[MedicationOrder],
    zone: tzinfo,
    problems: Problems,
) -> list[ToxicityFinding]:
    """The toxicity findings: AdverseEvents, graded Observations (the latest of each is the
    current state) and neuropathic pain on the problem list."""
    medications = record.medications
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
    toxicities = [
        finding
        for raw in of_type(resources.get(keys.ADVERSE_EVENTS, []), "AdverseEvent")
        if (
            finding := read_adverse_event(
                raw, ixazomib_references, zone, problems, other_references
            )
        )
        is not None
    ]
    graded_raws = _unique(
        of_type(resources.get(keys.TOXICITY_GRADES, []), "Observation")
        + of_type(resources.get(keys.TOXICITY_TERM_OBSERVATIONS, []), "Observation")
    )
    graded = [
        finding
        for raw in graded_raws
        if (finding := read_graded_observation(raw, zone, problems)) is not None
    ]
    toxicities += _latest_is_current(graded, call.now)
    # Neuropathic pain on the problem list is "with pain" for the neuropathy rows.
    toxicities += neuropathic_pain_conditions(conditions, zone, problems)
    return toxicities


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
