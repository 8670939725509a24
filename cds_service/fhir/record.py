"""Gather the patient's record for one hook call: prefetch first, the FHIR server for the rest.

``RecordGathering`` gathers one call's record, in stages when the service screens the call
first: one record, one FHIR client and one deadline for all its stages.

Prefetch values mean what CDS Hooks 2.0 says: an absent key was not fulfilled (fetch it), a
``null`` key means the client found no data, an OperationOutcome means the client's query
failed (fetch it), and a paged Bundle is completed by following its ``next`` link. Whatever
cannot be had is named in ``PatientRecord.unavailable``; ``require`` raises when that is
required data.

Every resource passes one check of whose it is (``patient.patient_of``), whatever path it came
by. Another patient's data in the prefetch is the client's broken request (``PrefetchRefused``);
another patient's data fetched from the FHIR server is left out and named in
``PatientRecord.left_out``, so the cards say so.

Required data is fetched first, optional data with the time left: a FHIR server that answers
one query at a time must not spend the call's deadline on optional queries while the data a
decision needs waits.

A stage gathers the needs asked of it, the Medications their orders reference with them; a
later stage adds to the same record what earlier ones did not gather. A prefetch key is read
(decoded and checked) only by the stage that needs it: the lab-result and patient-view services
screen with the medication list, so for a patient who takes no ixazomib nothing else is ever
decoded, checked or fetched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import requests

from cds_service.exact_json import UnreadableJson
from cds_service.fhir.client import FhirClient, bundle_resources
from cds_service.fhir.errors import FhirUnavailable, PrefetchRefused, RequiredDataMissing
from cds_service.fhir.patient import about_another_patient, another_patient
from cds_service.rules.data_needs import DATA_NEEDS
from cds_service.rules.inputs import DataNeed, JsonDict, PatientRecord
from cds_service.rules.prefetch_keys import MEDICATION_REQUESTS, MEDICATIONS

MAX_MEDICATION_READS = 50
# Years of weekly labs fit easily; more than this in one key is not a patient's record but a
# misconfigured query, and would tie a worker up for seconds.
MAX_PREFETCH_ENTRIES = 5000


@dataclass(frozen=True)
class FhirAccess:
    """Per-process means to reach FHIR servers, made once at start-up."""

    session: requests.Session
    executor: ThreadPoolExecutor
    timeout_seconds: float
    deadline_seconds: float


@dataclass(frozen=True)
class _Query:
    """A fetch still owed: what the EHR's engineer would call it, and how to run it."""

    name: str  # e.g. "Observation?patient=p1&code=..." or "Medication/abc"
    run: Callable[[FhirClient], list[JsonDict]]


class RecordGathering:
    """One hook call's record, gathered in stages (``gather``) into one ``PatientRecord``, with
    one FHIR client and one deadline for them all; every resource, prefetched or fetched,
    passes the patient check. A context manager: leaving it ends what the call started on the
    FHIR server. ``gather`` raises ``PrefetchRefused`` for an unusable prefetch."""

    def __init__(
        self,
        access: FhirAccess,
        *,
        patient_id: str,
        prefetch: Mapping[str, Any] | None,
        fhir_server: str | None,
        access_token: str | None,
        draft_orders: list[JsonDict],
        bundled_medications: Mapping[str, JsonDict],
    ) -> None:
        self._client: FhirClient | None = None
        if fhir_server:
            self._client = FhirClient(
                fhir_server,
                access_token,
                access.session,
                timeout_seconds=access.timeout_seconds,
                deadline=time.monotonic() + access.deadline_seconds,
            )
        self._executor = access.executor
        self._patient_id = patient_id
        self._prefetch: Mapping[str, Any] = prefetch or {}
        self._draft_orders = draft_orders
        self.record = PatientRecord(medications=dict(bundled_medications))
        self._needs: dict[str, DataNeed] = {}  # gathered so far, by key
        self._medication_failures: list[str] = []
        self._medications_asked: set[str] = set()

    def __enter__(self) -> RecordGathering:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.end()  # nothing this call started goes on after it

    def gather(self, needs: tuple[DataNeed, ...]) -> PatientRecord:
        """The record with ``needs`` gathered (those an earlier stage gathered are not again):
        prefetch first, then the FHIR server for what it did not hold, first what a decision
        cannot do without, the ordered drug included; then the rest, with the Medications the
        recorded orders reference."""
        new = [need for need in needs if need.key not in self._needs]
        if not new:  # nothing asked, nothing fetched (not even the drafts' Medications)
            return self.record
        self._needs.update((need.key, need) for need in new)
        owed: dict[str, _Query] = {}
        for need in new:
            query = _use_prefetch(need, self._prefetch, self.record, self._patient_id)
            if query is not None:
                owed[need.key] = query
        self._round({k: q for k, q in owed.items() if self._needs[k].required}, self._draft_orders)
        self._round(
            {k: q for k, q in owed.items() if not self._needs[k].required},
            self.record.resources.get(MEDICATION_REQUESTS, []),
        )
        if self._medication_failures:
            self.record.unavailable[MEDICATIONS] = "could not read " + "; ".join(
                self._medication_failures
            )
        return self.record

    def _round(self, needs: dict[str, _Query], orders: list[JsonDict]) -> None:
        """Fetch ``needs`` and the Medications that ``orders`` point to, all in parallel."""
        references = self._medication_references(orders)
        medications = {reference: _read(reference) for reference in references}
        for key, outcome in self._run({**needs, **medications}).items():
            if key in medications:
                self._take_medication(key, outcome)
            elif isinstance(outcome, str):
                self.record.unavailable[key] = outcome
            else:
                kept = self._this_patients(key, outcome)
                if outcome and not kept and "?" not in self._needs[key].query:
                    # A read answered with someone else's resource: this patient's is missing.
                    self.record.unavailable[key] = self.record.left_out.pop(key)
                else:
                    self.record.resources[key] = kept

    def _medication_references(self, orders: list[JsonDict]) -> list[str]:
        """The Medications ``orders`` point to that nobody has sent or been asked for yet."""
        wanted: list[str] = []
        for order in orders:
            reference = order.get("medicationReference")
            target = reference.get("reference") if isinstance(reference, dict) else None
            if (
                isinstance(target, str)
                and target
                and not target.startswith("#")
                and target not in self.record.medications
                and target not in self._medications_asked
                and target not in wanted
            ):
                wanted.append(target)
        room = max(0, MAX_MEDICATION_READS - len(self._medications_asked))
        self._medications_asked.update(wanted)
        self._medication_failures += [
            f"{reference}: too many references to read" for reference in wanted[room:]
        ]
        return wanted[:room]

    def _take_medication(self, reference: str, outcome: list[JsonDict] | str) -> None:
        if isinstance(outcome, str):
            self._medication_failures.append(f"{reference}: {outcome}")
            return
        kept = self._this_patients(MEDICATIONS, outcome)
        if kept and kept[0].get("resourceType") == "Medication":
            self.record.medications[reference] = kept[0]
        else:
            self._medication_failures.append(f"{reference}: not a Medication")

    def _this_patients(self, key: str, resources: list[JsonDict]) -> list[JsonDict]:
        """``resources`` without those about another patient, which are named as left out."""
        kept = [r for r in resources if about_another_patient(r, self._patient_id) is None]
        left_out = len(resources) - len(kept)
        if left_out:
            kinds = sorted({str(r.get("resourceType")) for r in resources if r not in kept})
            self.record.left_out[key] = (
                f"the FHIR server answered {left_out} {'/'.join(kinds)} "
                f"{'resources' if left_out > 1 else 'resource'} about another patient to a query "
                f"about this patient; {'they were' if left_out > 1 else 'it was'} left out"
            )
        return kept

    def _run(self, queries: dict[str, _Query]) -> dict[str, list[JsonDict] | str]:
        """Run independent fetches in parallel; a query's outcome is its resources or why not."""
        if not queries:
            return {}
        client = self._client
        if client is None:
            return {key: "not prefetched, and the request named no fhirServer" for key in queries}
        futures: dict[str, Future[list[JsonDict]]] = {
            key: self._executor.submit(query.run, client) for key, query in queries.items()
        }
        wait(futures.values(), timeout=max(0.0, client.deadline - time.monotonic()))
        outcomes: dict[str, list[JsonDict] | str] = {}
        for key, future in futures.items():
            name = queries[key].name
            if not future.done():
                future.cancel()
                outcomes[key] = f"{name} did not finish in the time the call allows"
                continue
            error = future.exception()
            if error is None:
                outcomes[key] = _deduplicated(future.result())
            elif isinstance(error, FhirUnavailable):
                unfinished = error.reason in ("deadline", "timeout")
                outcomes[key] = f"{name} {error}" if unfinished else str(error)
            else:  # a bug must not look like missing data, nor leak a traceback to the client
                outcomes[key] = "the FHIR server's answer could not be read"
        return outcomes


def require(record: PatientRecord, needs: tuple[DataNeed, ...] = DATA_NEEDS) -> None:
    """``RequiredDataMissing`` when data the rules cannot do without is missing."""
    missing = [
        f"{need.key} ({need.resource_type}: {need.description}): {record.unavailable[need.key]}"
        for need in needs
        if need.required and need.key in record.unavailable
    ]
    if missing:
        raise RequiredDataMissing(
            "Data the ixazomib checks require was neither prefetched nor fetchable from the "
            "FHIR server. Prefetch it or send fhirServer with fhirAuthorization.",
            details=missing,
        )


def _use_prefetch(
    need: DataNeed, prefetch: Mapping[str, Any], record: PatientRecord, patient_id: str
) -> _Query | None:
    """Take what the prefetch holds for ``need``; return the fetch still owed, if any."""
    if need.key not in prefetch:
        return _fetch_all(need, patient_id)
    try:
        value = prefetch[need.key]  # decoded here, when first read (exact_json.LazyJsonObject)
    except UnreadableJson as error:
        raise PrefetchRefused(
            f"prefetch.{need.key} is not JSON this service reads: {error}"
        ) from None
    if value is None:  # the client looked and found nothing
        record.resources[need.key] = []
        return None
    kind = value.get("resourceType") if isinstance(value, dict) else None
    if kind == "OperationOutcome":
        return _fetch_all(need, patient_id)
    if kind == need.resource_type and not need.query.startswith(f"{need.resource_type}?"):
        _refuse_another_patient(f"prefetch.{need.key}", value, patient_id)
        record.resources[need.key] = [value]
        return None
    if kind != "Bundle" or not isinstance(value.get("entry", []), list):
        expected = "Bundle" if "?" in need.query else need.resource_type
        raise PrefetchRefused(
            f"prefetch.{need.key} must be a {expected}, an OperationOutcome or null"
        )
    found = bundle_resources(value)
    if len(found) > MAX_PREFETCH_ENTRIES:
        raise PrefetchRefused(
            f"prefetch.{need.key} has {len(found)} entries; at most {MAX_PREFETCH_ENTRIES} are "
            "accepted (send fewer, or leave the key out and send fhirServer)"
        )
    for index, resource in enumerate(found):
        kind = resource.get("resourceType")
        if (
            kind == "Medication"
            and need.key == MEDICATION_REQUESTS
            and isinstance(resource.get("id"), str)
        ):
            # _included beside the orders, the one place: read with the medication list, so that
            # what a screen reads of the medication list is all there is to read of it
            record.medications.setdefault(f"Medication/{resource['id']}", resource)
            continue
        if kind != need.resource_type:  # e.g. a DSTU2 MedicationOrder: refuse, never drop
            raise PrefetchRefused(
                f"prefetch.{need.key} holds a {kind}; expected {need.resource_type} "
                "(FHIR R4) resources"
            )
        _refuse_another_patient(f"prefetch.{need.key} entry {index}", resource, patient_id)
    record.resources[need.key] = [r for r in found if r.get("resourceType") == need.resource_type]
    if any(
        link.get("relation") == "next" for link in value.get("link") or [] if isinstance(link, dict)
    ):
        first_page = record.resources.pop(need.key)
        return _Query(
            f"the pages after prefetch.{need.key}",
            lambda client: first_page + _of_type(need, client.rest_of(value)),
        )
    return None


def _refuse_another_patient(where: str, resource: JsonDict, patient_id: str) -> None:
    # Another patient's results would be judged as this patient's: refuse the request.
    named = about_another_patient(resource, patient_id)
    if named is not None:
        raise PrefetchRefused(another_patient(where, named, patient_id))


def _fetch_all(need: DataNeed, patient_id: str) -> _Query:
    # Built only when something must be fetched: a prefetched key needs no query.
    query = need.query.replace("{{context.patientId}}", quote(patient_id, safe=""))
    if "?" not in query:
        return _read(query)
    return _Query(_short(query), lambda client: _of_type(need, client.search(query)))


def _short(query: str) -> str:
    """The query as a person reads it: long code lists elided (the key names which it is)."""
    path, _, parameters = query.partition("?")
    shown = [
        p if len(p.partition("=")[2]) <= 40 else f"{p.partition('=')[0]}=..."
        for p in parameters.split("&")
    ]
    return f"{path}?{'&'.join(shown)}"


def _of_type(need: DataNeed, resources: list[JsonDict]) -> list[JsonDict]:
    return [r for r in resources if r.get("resourceType") == need.resource_type]


def _read(reference: str) -> _Query:
    return _Query(reference, lambda client: [client.read(reference)])


def _deduplicated(resources: list[JsonDict]) -> list[JsonDict]:
    seen: set[tuple[str, str]] = set()
    unique: list[JsonDict] = []
    for resource in resources:
        identity = (str(resource.get("resourceType")), str(resource.get("id")))
        if resource.get("id") is not None and identity in seen:
            continue
        seen.add(identity)
        unique.append(resource)
    return unique
