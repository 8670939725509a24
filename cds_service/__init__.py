"""ixazomib-cds: a CDS Hooks 2.0 service that checks ixazomib (NINLARO) orders against the label.

The public surface is small: ``create_app`` (the Flask app factory) and ``Config``.
"""

from cds_service.app import create_app
from cds_service.config import Config

__all__ = ["Config", "create_app"]
__version__ = "0.1.0"
