"""The CDS services this product offers: one module per service, one line each in SERVICES.

A new service is a module here that declares ``SERVICE = CdsService(...)`` (id, hook, title,
description, context reader, data needs, decide and render), its name in the import below and
its line in ``SERVICES`` (discovery lists the services in this order). Discovery, the routes,
the metrics labels and the clinical scenarios take the services from here.
"""

from cds_service.services import (
    lab_result,
    order_select,
    order_sign,
    patient_view,
)
from cds_service.services.context import HookContext
from cds_service.services.registry import CdsService, Registry, Screening

SERVICES = Registry(
    order_sign.SERVICE,
    order_select.SERVICE,
    lab_result.SERVICE,
    patient_view.SERVICE,
)

__all__ = ["SERVICES", "CdsService", "HookContext", "Registry", "Screening"]
