"""Shared fixtures: the app built by its factory on a real SQLite file."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings

from cds_service.app import create_app
from cds_service.config import Config

# CI explores the same examples every run (a failure there must be one a developer can
# reproduce); elsewhere each run explores new ones.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


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
