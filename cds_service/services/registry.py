"""What a CDS service is, and the registry that every part of the product takes services from.

A service declares, in one place (its module in this package): its id, the hook it answers,
its title and description, how its hook's context is read, the data it needs (the prefetch
templates it advertises and the queries run for what was not prefetched), what it reads first
to tell whether it needs the rest (``Screening``), the pure function that decides and the one
that renders its decisions as cards. Discovery, the routes, the metrics labels, the clinical
scenarios and the OpenAPI description's checks all take the services from
``cds_service.services.SERVICES``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from cds_service.rules.data_needs import DATA_NEEDS
from cds_service.rules.engine import Screened
from cds_service.rules.facts import MedicationFacts
from cds_service.rules.inputs import DataNeed, HookCall, JsonDict, PatientRecord
from cds_service.rules.settings import RuleSettings
from cds_service.services.context import HookContext

FHIR_USAGE = (
    "Send fhirServer with fhirAuthorization (read access to the patient's "
    "MedicationRequest, Medication, Observation, AdverseEvent, Condition, Procedure "
    "and AllergyIntolerance) unless every prefetch key is fulfilled."
)


Decided = TypeVar("Decided")  # what a service's decide function returns and its render reads


def _read_everything(call: HookCall, record: PatientRecord, settings: RuleSettings) -> Screened:
    return Screened(rest_needed=True)


@dataclass(frozen=True)
class Screening:
    """What a service reads first, and what it makes of it: whether it needs the rest.

    ``reads``: keys of the service's data needs, gathered first (prefetch, then the FHIR
    server, with the Medications their orders reference), with the checks the rest passes.
    ``screen`` (pure, ``cds_service.rules.engine``): the call and that record (with the
    Medications sent beside the draft orders) -> ``Screened``: whether the rest must be
    gathered for ``decide``, and the medication facts read, which ``decide`` then takes. When
    the rest is not needed the call is answered with no cards, and no other prefetch key is
    read (decoded or checked) nor anything else fetched.
    """

    reads: tuple[str, ...] = ()
    screen: Callable[[HookCall, PatientRecord, RuleSettings], Screened] = _read_everything


@dataclass(frozen=True)
class CdsService(Generic[Decided]):
    """One CDS service: everything the product needs to advertise it, call it and test it."""

    id: str
    hook: str
    title: str
    description: str
    # context (a JSON object) -> its parts, checked; raises BadRequest when it is not usable
    read_context: Callable[[JsonDict], HookContext]
    # pure (cds_service.rules): the hook call, the patient's record and the medication facts
    # its screen read, if any -> the decisions
    decide: Callable[[HookCall, PatientRecord, RuleSettings, MedicationFacts | None], Decided]
    # pure: the decisions -> CDS Hooks 2.0 cards, ready to send
    render: Callable[[Decided], list[JsonDict]]
    data_needs: tuple[DataNeed, ...] = DATA_NEEDS
    # the context members that carry FHIR resources (a Bundle each)
    context_bundles: tuple[str, ...] = ()
    # what is read first, and whether the rest is needed (default: everything, always)
    screening: Screening = field(default_factory=Screening)
    usage_requirements: str = FHIR_USAGE

    def __post_init__(self) -> None:
        unknown = set(self.screening.reads) - {need.key for need in self.data_needs}
        if unknown:
            raise ValueError(f"{self.id} screens with keys it does not need: {sorted(unknown)}")

    @property
    def screening_needs(self) -> tuple[DataNeed, ...]:
        """The data needs the screening stage reads, in the order of ``data_needs``."""
        return tuple(need for need in self.data_needs if need.key in self.screening.reads)

    def discovery(self) -> JsonDict:
        """This service's entry in GET /cds-services (CDS Hooks 2.0)."""
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": {need.key: need.query for need in self.data_needs},
            "usageRequirements": self.usage_requirements,
        }


class Registry(Mapping[str, CdsService[Any]]):
    """The services by id, in the order discovery lists them; an id declared twice is refused
    at import."""

    def __init__(self, *services: CdsService[Any]) -> None:
        ids = [service.id for service in services]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"CDS service ids declared more than once: {repeated}")
        self._by_id = {service.id: service for service in services}

    def __getitem__(self, service_id: str) -> CdsService[Any]:
        return self._by_id[service_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def for_hook(self, hook: str) -> CdsService[Any]:
        """The first service that answers ``hook`` (KeyError when none does)."""
        for service in self.values():
            if service.hook == hook:
                return service
        raise KeyError(hook)
