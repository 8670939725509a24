"""How a service response is checked against a scenario's expected recommendations.

The check lives in the package (``ixazomib-cds verify`` runs it against deployed services);
the tests import it from here.
"""

from cds_service.verify.checks import check, describe_cards

__all__ = ["check", "describe_cards"]
