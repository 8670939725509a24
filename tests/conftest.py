"""Shared fixtures: the app built by its factory on a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service.app import create_app
from cds_service.config import Config


@pytest.fixture
def app() -> Iterator[Flask]:
    app = create_app(Config.for_testing())
    yield app
    app.extensions["ixazomib_cds"].store.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run the long reliability runs (soak); same as CDS_RUN_SLOW=1",
    )
