"""The per-process objects every request uses, made once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from cds_service.auth import Authenticator
from cds_service.config import Config
from cds_service.fhir.record import FhirAccess
from cds_service.rules import RuleSettings
from cds_service.store import Store


@dataclass(frozen=True)
class ServiceState:
    config: Config
    store: Store
    authenticator: Authenticator | None
    fhir: FhirAccess
    rule_settings: RuleSettings


def state() -> ServiceState:
    found: ServiceState = current_app.extensions["ixazomib_cds"]
    return found
