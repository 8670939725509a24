"""The CDS services this product offers: one module per service, one line each below.

Adding a service is a module here that declares ``SERVICE = CdsService(...)`` (id, hook, title,
description, context reader, data needs, decide function) and its line in ``SERVICES``;
discovery, the routes, the metrics labels and the clinical scenarios take it from here.
"""

from cds_service.services import lab_result, order_select, order_sign
from cds_service.services.context import HookContext
from cds_service.services.registry import CdsService, Registry

SERVICES = Registry(
    order_sign.SERVICE,
    order_select.SERVICE,
    lab_result.SERVICE,
)

__all__ = ["SERVICES", "CdsService", "HookContext", "Registry"]
