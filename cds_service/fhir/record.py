"""Gather the patient's record for one hook call: prefetch first, the FHIR server for the rest.

Prefetch values mean what CDS Hooks 2.0 says: an absent key was not fulfilled (fetch it), a
``null`` key means the client found no data, an OperationOutcome means the client's query
failed (fetch it), and a paged Bundle is completed by following its ``next`` link. Whatever
cannot be had is named in ``PatientRecord.unavailable``; the caller answers 412 when that is
required data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from cds_service.errors import BadRequest, PreconditionFailed
from cds_service.exact_json import ObjectMemo
from cds_service.fhir.client import FhirClient, FhirUnavailable, bundle_resources
from cds_service.protocol.envelope import HookRequest
from cds_service.protocol.services import HookContext, another_patient, subject_patient
from cds_service.rules.data_needs import DATA_NEEDS, MEDICATION_REQUESTS, MEDICATIONS
from cds_service.rules.inputs import DataNeed, JsonDict, PatientRecord

MAX_MEDICATION_READS = 50
# Years of weekly labs fit easily; more than this in one key is not a patient's record but a
# misconfigured query, and would tie a worker up for seconds.
MAX_PREFETCH_ENTRIES = 5000
# A repeated prefetch Bundle is the same object again (exact_json): list its resources once.
_PREFETCHED_RESOURCES = ObjectMemo(bundle_resources, max_size=200_000, size=len)  # resources


@dataclass(frozen=True)
class FhirAccess:
    """Per-process means to reach FHIR servers, made once at start-up."""

    session: requests.Session
    executor: ThreadPoolExecutor
    timeout_seconds: float
    deadline_seconds: float


def gather_record(request: HookRequest, context: HookContext, access: FhirAccess) -> PatientRecord:
    deadline = time.monotonic() + access.deadline_seconds
    client = None
    if request.fhirServer:
        token = request.fhirAuthorization.access_token if request.fhirAuthorization else None
        client = FhirClient(
            request.fhirServer,
            token,
            access.session,
            timeout_seconds=access.timeout_seconds,
            deadline=deadline,
        )
    record = PatientRecord(medications=dict(context.bundled_medications))
    prefetch = request.prefetch or {}
    jobs: dict[str, Callable[[FhirClient], list[JsonDict]]] = {}
    for need in DATA_NEEDS:
        job = _use_prefetch(need, prefetch, record, context.patient_id)
        if job is not None:
            jobs[need.key] = job
    for key, outcome in _run(jobs, client, access.executor, deadline).items():
        if isinstance(outcome, str):
            record.unavailable[key] = outcome
        else:
            record.resources[key] = outcome
    _resolve_medications(record, context, client, access.executor, deadline)
    return record


def require(record: PatientRecord) -> None:
    """412 when data the rules cannot do without is missing."""
    missing = [
        f"{need.key} ({need.resource_type}: {need.description}): {record.unavailable[need.key]}"
        for need in DATA_NEEDS
        if need.required and need.key in record.unavailable
    ]
    if missing:
        raise PreconditionFailed(
            "Data the ixazomib checks require was neither prefetched nor fetchable from the "
            "FHIR server. Prefetch it or send fhirServer with fhirAuthorization.",
            details=missing,
        )


def _use_prefetch(
    need: DataNeed, prefetch: dict[str, Any], record: PatientRecord, patient_id: str
) -> Callable[[FhirClient], list[JsonDict]] | None:
    """Take what the prefetch holds for ``need``; return the fetch still owed, if any."""
    if need.key not in prefetch:
        return _fetch_all(need, patient_id)
    value = prefetch[need.key]
    if value is None:  # the client looked and found nothing
        record.resources[need.key] = []
        return None
    kind = value.get("resourceType") if isinstance(value, dict) else None
    if kind == "OperationOutcome":
        return _fetch_all(need, patient_id)
    if kind == need.resource_type and not need.query.startswith(f"{need.resource_type}?"):
        if kind == "Patient" and isinstance(value.get("id"), str) and value["id"] != patient_id:
            raise BadRequest(another_patient(f"prefetch.{need.key}", value["id"], patient_id))
        record.resources[need.key] = [value]
        return None
    if kind != "Bundle" or not isinstance(value.get("entry", []), list):
        expected = "Bundle" if "?" in need.query else need.resource_type
        raise BadRequest(f"prefetch.{need.key} must be a {expected}, an OperationOutcome or null")
    found = _PREFETCHED_RESOURCES(value)
    if len(found) > MAX_PREFETCH_ENTRIES:
        raise BadRequest(
            f"prefetch.{need.key} has {len(found)} entries; at most {MAX_PREFETCH_ENTRIES} are "
            "accepted (send fewer, or leave the key out and send fhirServer)"
        )
    for index, resource in enumerate(found):  # Medications a client _included beside the orders
        kind = resource.get("resourceType")
        if kind == "Medication" and isinstance(resource.get("id"), str):
            record.medications.setdefault(f"Medication/{resource['id']}", resource)
            continue
        if kind != need.resource_type:  # e.g. a DSTU2 MedicationOrder: refuse, never drop
            raise BadRequest(
                f"prefetch.{need.key} holds a {kind}; expected {need.resource_type} "
                "(FHIR R4) resources"
            )
        named = subject_patient(resource)
        if named is not None and named != patient_id:
            # Another patient's results would be judged as this patient's: refuse the request.
            where = f"prefetch.{need.key} entry {index}"
            raise BadRequest(another_patient(where, named, patient_id))
    record.resources[need.key] = [r for r in found if r.get("resourceType") == need.resource_type]
    if any(
        link.get("relation") == "next" for link in value.get("link") or [] if isinstance(link, dict)
    ):
        first_page = record.resources.pop(need.key)
        return lambda client: (
            first_page
            + [r for r in client.rest_of(value) if r.get("resourceType") == need.resource_type]
        )
    return None


def _fetch_all(need: DataNeed, patient_id: str) -> Callable[[FhirClient], list[JsonDict]]:
    # Built only when something must be fetched: a prefetched key needs no query.
    query = need.query.replace("{{context.patientId}}", quote(patient_id, safe=""))
    return _fetch(need, query)


def _fetch(need: DataNeed, query: str) -> Callable[[FhirClient], list[JsonDict]]:
    if "?" not in query:
        return _read(query)
    return lambda client: [
        r for r in client.search(query) if r.get("resourceType") == need.resource_type
    ]


def _read(reference: str) -> Callable[[FhirClient], list[JsonDict]]:
    return lambda client: [client.read(reference)]


def _run(
    jobs: dict[str, Callable[[FhirClient], list[JsonDict]]],
    client: FhirClient | None,
    executor: ThreadPoolExecutor,
    deadline: float,
) -> dict[str, list[JsonDict] | str]:
    """Run independent fetches in parallel; a job's outcome is its resources or why not."""
    if not jobs:
        return {}
    if client is None:
        return {key: "not prefetched, and the request named no fhirServer" for key in jobs}
    futures: dict[str, Future[list[JsonDict]]] = {
        key: executor.submit(job, client) for key, job in jobs.items()
    }
    wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()))
    outcomes: dict[str, list[JsonDict] | str] = {}
    for key, future in futures.items():
        if not future.done():
            future.cancel()
            outcomes[key] = "the FHIR server did not answer in the time allowed"
            continue
        error = future.exception()
        if error is None:
            outcomes[key] = _deduplicated(future.result())
        elif isinstance(error, FhirUnavailable):
            outcomes[key] = str(error)
        else:  # a bug must not look like missing data, nor leak a traceback to the client
            outcomes[key] = "the FHIR server's answer could not be read"
    return outcomes


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


def _resolve_medications(
    record: PatientRecord,
    context: HookContext,
    client: FhirClient | None,
    executor: ThreadPoolExecutor,
    deadline: float,
) -> None:
    """Read the Medications that orders point to and that nobody has sent yet."""
    orders = context.draft_orders + record.resources.get(MEDICATION_REQUESTS, [])
    wanted: list[str] = []
    for order in orders:
        reference = order.get("medicationReference")
        target = reference.get("reference") if isinstance(reference, dict) else None
        if (
            isinstance(target, str)
            and target
            and not target.startswith("#")
            and target not in record.medications
            and target not in wanted
        ):
            wanted.append(target)
    if not wanted:
        return
    jobs = {reference: _read(reference) for reference in wanted[:MAX_MEDICATION_READS]}
    failures: list[str] = []
    for reference, outcome in _run(jobs, client, executor, deadline).items():
        if isinstance(outcome, str):
            failures.append(f"{reference}: {outcome}")
        elif outcome and outcome[0].get("resourceType") == "Medication":
            record.medications[reference] = outcome[0]
        else:
            failures.append(f"{reference}: not a Medication")
    failures += [f"{ref}: too many references to read" for ref in wanted[MAX_MEDICATION_READS:]]
    if failures:
        record.unavailable[MEDICATIONS] = "could not read " + "; ".join(failures)
