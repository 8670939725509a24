"""The rules' entry points, one per kind of hook call: facts -> decisions.

Each CDS service (``cds_service.services``) names the entry point that decides for it, and the
screen that says, from the data it reads first, whether the rest of the record is needed
(``screen_medication_list``, ``screen_drafts``); the protocol layer renders the decisions as
cards (``cards.render``). Pure: no Flask, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from cds_service.rules.decisions import Decision, decide_lab_result, decide_order
from cds_service.rules.decisions.patient_view import CourseView, course_view
from cds_service.rules.decisions.shared import data_problems, unresolved_medication
from cds_service.rules.facts import (
    Drug,
    MedicationFacts,
    gather_facts,
    judged_drafts,
    read_medications,
)
from cds_service.rules.facts.orders import medication_unknown, names_other_drug, order_drug
from cds_service.rules.facts.reading import reference_of
from cds_service.rules.inputs import HookCall, PatientRecord
from cds_service.rules.prefetch_keys import MEDICATION_REQUESTS, MEDICATIONS
from cds_service.rules.settings import RuleSettings


@dataclass(frozen=True)
class Screened:
    """What a service's screen made of the data it reads first (``services.Screening``)."""

    rest_needed: bool  # False: the call is answered with no cards, and nothing more gathered
    # The medication facts when the screen read them from the whole medication list (the
    # orders and every Medication they reference: a later stage adds none): the decision
    # takes them rather than read them again (about 4 ms for six months of ixazomib).
    medications: MedicationFacts | None = None


def screen_medication_list(
    call: HookCall, record: PatientRecord, settings: RuleSettings
) -> Screened:
    """The screen of the lab-result and patient-view hooks, from the medication list (and the
    Medications its orders reference) alone: the rest of the record is needed unless the
    patient takes no ixazomib (``_takes_no_ixazomib``, as ``decide_new_results`` and
    ``decide_course`` decide it). An ixazomib order that cannot be read, a Medication that
    could not be fetched or a medication list that could not be had may hide ixazomib: then
    the rest is needed."""
    medications = read_medications(call, record, settings)
    return Screened(not _takes_no_ixazomib(medications, record), medications)


def screen_drafts(call: HookCall, record: PatientRecord, settings: RuleSettings) -> Screened:
    """The screen of the order hooks, from the draft orders and the Medications sent with them
    (``record`` holds nothing else yet): whether the order rules will read the record.

    Not needed only when the hook fired for orders that are all, recognisably, of other drugs
    (the EHR may call the order hooks for every order): then nothing is fetched and nothing
    said. An order whose medication cannot be identified yet (a reference to the FHIR server)
    needs the record, which resolves it. The recorded orders are not read yet, so no
    medication facts are handed on.
    """
    bundled = record.medications
    return Screened(
        any(
            medication_unknown(draft, bundled) or order_drug(draft, bundled)[0] is Drug.IXAZOMIB
            for draft in judged_drafts(call)
        )
    )


def decide_orders(
    call: HookCall,
    record: PatientRecord,
    settings: RuleSettings,
    medications: MedicationFacts | None = None,
) -> list[Decision]:
    """order-sign and order-select: the decisions about the draft ixazomib orders judged.
    ``medications``: this call's ``read_medications`` of this record, when read already."""
    facts = gather_facts(call, record, settings, medications)
    if facts.drafts:
        return decide_order(facts, settings)
    if _orders_ixazomib(call, record):
        # An ixazomib draft that could not be read: say so rather than stay silent.
        drafts = {f"MedicationRequest/{d.get('id')}" for d in call.draft_orders}
        return data_problems(facts, only=drafts)
    if unknown := _unresolved_drafts(call, record):
        # Whether the order is for ixazomib cannot be known: never a silent pass.
        return [unresolved_medication(unknown, record.unavailable.get(MEDICATIONS))]
    return []  # the hook fired for another drug


def decide_new_results(
    call: HookCall,
    record: PatientRecord,
    settings: RuleSettings,
    medications: MedicationFacts | None = None,
) -> list[Decision]:
    """The lab-result hook: the decisions about the new results. ``medications``: this call's
    ``read_medications`` of this record, when read already (by the screen)."""
    if medications is None:
        medications = read_medications(call, record, settings)
    if _takes_no_ixazomib(medications, record):
        # A new result of a patient who takes no ixazomib is not the label's business:
        # decided from the medication list alone, no lab or other record read.
        return []
    facts = gather_facts(call, record, settings, medications)
    decisions = decide_lab_result(facts, settings)
    if not decisions and (unknown := _unidentified_current_orders(record)):
        # Whether the patient takes ixazomib cannot be known: never a silent pass.
        decisions = [unresolved_medication(unknown, record.unavailable.get(MEDICATIONS))]
    return decisions


def decide_course(
    call: HookCall,
    record: PatientRecord,
    settings: RuleSettings,
    medications: MedicationFacts | None = None,
) -> CourseView | None:
    """The patient-view hook: the patient's ixazomib course, or None when not on ixazomib.
    ``medications``: this call's ``read_medications`` of this record, when read already."""
    if medications is None:
        medications = read_medications(call, record, settings)
    if _takes_no_ixazomib(medications, record):  # silent, from the medication list alone
        return None
    return course_view(gather_facts(call, record, settings, medications), settings)


def _unresolved_drafts(call: HookCall, record: PatientRecord) -> list[str]:
    # A reference that could not be resolved but whose display names another drug is not
    # unknown: nothing suggests ixazomib.
    return [
        reference_of(d)
        for d in judged_drafts(call)
        if medication_unknown(d, record.medications) and not names_other_drug(d, record.medications)
    ]


def _unidentified_current_orders(record: PatientRecord) -> list[str]:
    """Active or on-hold recorded orders whose medication cannot be read (a Medication the
    FHIR server did not give) and whose display names no other drug: any may be ixazomib."""
    return [
        reference_of(order)
        for order in record.resources.get(MEDICATION_REQUESTS, [])
        if order.get("status") in ("active", "on-hold")
        and medication_unknown(order, record.medications)
        and not names_other_drug(order, record.medications)
    ]


def _orders_ixazomib(call: HookCall, record: PatientRecord) -> bool:
    return any(order_drug(d, record.medications)[0] is Drug.IXAZOMIB for d in call.draft_orders)


def _takes_no_ixazomib(medications: MedicationFacts, record: PatientRecord) -> bool:
    """No ixazomib order on record, and no order's Medication left unread: an order whose
    Medication could not be fetched may be ixazomib, so it is not taken as "not on it"; nor is
    a medication list that could not be had (the screen asks before ``require`` would say so)."""
    return (
        medications.takes_no_ixazomib()
        and MEDICATIONS not in record.unavailable
        and MEDICATION_REQUESTS not in record.unavailable
    )
