"""WSGI entry point for gunicorn: ``cds_service.wsgi:app``, configured from the environment."""

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.logs import configure_logging

config = Config.from_env()
configure_logging(config.log_level)
app = create_app(config)
