"""Give a scenario's resources ids of their own for one run on a shared FHIR server.

Public FHIR sandboxes are used by many people at once, so a run never writes to an id someone
else may use: every resource a scenario puts on the server gets the run's prefix on its id
(``v1a2b3c4d-`` + the scenario's id), every reference to it is rewritten to match (in the
resources and in the hook context: draft orders' subjects, ``selections``, the patient id), and
every resource carries a ``meta.tag`` naming the run, so the run's resources can be found and
deleted afterwards (``--cleanup``) by their ids or by the tag.
"""

from __future__ import annotations

import copy
import dataclasses
import uuid
from typing import Any

from cds_service.fixtures import JsonDict, Scenario

RUN_TAG_SYSTEM = "urn:ixazomib-cds:verify-run"
# FHIR ids are at most 64 characters; the prefix takes 10 and the scenarios' ids at most 54.
MAX_FHIR_ID_LENGTH = 64


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of ``ixazomib-cds verify``: the id prefix and tag its resources carry."""

    code: str

    @classmethod
    def new(cls) -> Run:
        return cls(uuid.uuid4().hex[:8])

    @property
    def id_prefix(self) -> str:
        return f"v{self.code}-"

    @property
    def tag(self) -> JsonDict:
        return {"system": RUN_TAG_SYSTEM, "code": self.code, "display": "ixazomib-cds verify run"}

    @property
    def tag_search(self) -> str:
        """The ``_tag`` search value that finds this run's resources."""
        return f"{RUN_TAG_SYSTEM}|{self.code}"


def isolate(scenario: Scenario, run: Run) -> Scenario:
    """The scenario with the run's ids, references and tag (the original is not changed)."""
    renamed: dict[str, str] = {}
    for resource in scenario.resources:
        reference = f"{resource['resourceType']}/{resource['id']}"
        renamed[reference] = f"{resource['resourceType']}/{_new_id(run, str(resource['id']))}"
    patient = f"Patient/{scenario.patient_id}"
    renamed.setdefault(patient, f"Patient/{_new_id(run, scenario.patient_id)}")

    resources = []
    for resource in scenario.resources:
        moved = _rewrite(resource, renamed)
        moved["id"] = _new_id(run, str(resource["id"]))
        meta = moved.setdefault("meta", {})
        meta["tag"] = [*meta.get("tag", []), run.tag]
        meta.pop("versionId", None)  # the server numbers versions of what it stores
        resources.append(moved)
    context = _rewrite(scenario.context, renamed)
    context["patientId"] = renamed[patient].removeprefix("Patient/")
    return dataclasses.replace(scenario, resources=resources, context=context)


def _new_id(run: Run, old_id: str) -> str:
    new_id = run.id_prefix + old_id
    if len(new_id) > MAX_FHIR_ID_LENGTH:
        raise ValueError(f"resource id {old_id!r} is too long to carry the run prefix")
    return new_id


def _rewrite(value: Any, renamed: dict[str, str]) -> Any:
    """A deep copy in which every string that is exactly a renamed ``Type/id`` is renamed,
    and every resource (in a context Bundle) with a renamed ``Type/id`` gets its new id."""
    if isinstance(value, dict):
        copied = {key: _rewrite(item, renamed) for key, item in value.items()}
        kind, resource_id = copied.get("resourceType"), copied.get("id")
        if isinstance(kind, str) and isinstance(resource_id, str):
            moved = renamed.get(f"{kind}/{resource_id}")
            if moved is not None:
                copied["id"] = moved.partition("/")[2]
        return copied
    if isinstance(value, list):
        return [_rewrite(item, renamed) for item in value]
    if isinstance(value, str):
        return renamed.get(value, value)
    return copy.copy(value)
