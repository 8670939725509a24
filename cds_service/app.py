"""The application factory: wires configuration, storage, authentication and the routes."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from cds_service import logs
from cds_service.auth import Authenticator, load_trusted_issuers
from cds_service.config import Config
from cds_service.fhir.client import make_session
from cds_service.fhir.record import FhirAccess
from cds_service.protocol.routes import cds, install_error_handlers, operations
from cds_service.rules import RuleSettings
from cds_service.state import ServiceState
from cds_service.store import open_store

log = logging.getLogger(__name__)


def create_app(config: Config | None = None, *, in_process: bool = False) -> Flask:
    """The service's Flask app. ``in_process``: an app only this process calls (the review
    console's sandbox, ``ixazomib-cds verify``), for which the warning that CDS_AUTH=disabled
    trusts every caller would be a false alarm."""
    config = config or Config.from_env()
    app = Flask(__name__)
    app.json = ExactJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    store = open_store(config.database_url)
    store.migrate()
    authenticator = None
    if config.auth_required:
        assert config.trusted_issuers_path is not None  # Config.validate guarantees it
        authenticator = Authenticator(
            load_trusted_issuers(config.trusted_issuers_path),
            store.claim_jti,
            algorithms=config.jwt_algorithms,
            jwks_min_refresh_seconds=config.jwks_min_refresh_seconds,
        )
    elif not in_process:
        log.warning(
            "CDS_AUTH=disabled: every caller is trusted and no JWT is checked. "
            "Development only; never run a clinical deployment like this."
        )
    app.extensions["ixazomib_cds"] = ServiceState(
        config=config,
        store=store,
        authenticator=authenticator,
        fhir=FhirAccess(
            session=make_session(),
            # Threads start lazily, so this is safe to build before gunicorn forks workers.
            executor=ThreadPoolExecutor(max_workers=16, thread_name_prefix="fhir"),
            timeout_seconds=config.fhir_timeout_seconds,
            deadline_seconds=config.fhir_deadline_seconds,
        ),
        rule_settings=RuleSettings(
            cbc_max_age=config.cbc_max_age, default_timezone=config.default_timezone
        ),
    )
    logs.init_app(app)
    app.register_blueprint(cds)
    app.register_blueprint(operations)
    if config.console_enabled:
        from cds_service.console import console  # Jinja and markdown only when enabled

        app.register_blueprint(console)
    install_error_handlers(app)
    return app


class ExactJSONProvider(DefaultJSONProvider):
    """FHIR numbers are parsed as Decimal; write them back as JSON numbers, not strings."""

    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            return int(o) if o == o.to_integral_value() else float(o)
        return DefaultJSONProvider.default(o)
