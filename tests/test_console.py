"""The review console through the app factory: off by default, its pages self-contained, a
pasted request's text shown escaped, bad input named. (What a person sees in a browser is
tests/test_console_browser.py.)"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jwt_tools import jwk_of, jwks_of, make_es384_key
from markupsafe import escape

from cds_service.app import create_app
from cds_service.config import Config, ConfigError
from cds_service.fixtures import load_scenarios
from cds_service.rules.catalog import RULES


@pytest.fixture
def console_app() -> Iterator[Flask]:
    app = create_app(Config.for_testing(console_enabled=True))
    yield app
    app.extensions["ixazomib_cds"].store.close()


@pytest.fixture
def console(console_app: Flask) -> FlaskClient:
    return console_app.test_client()


def scenario_text(scenario_id: str) -> str:
    scenario = next(s for s in load_scenarios() if s.id == scenario_id)
    return json.dumps(scenario.cds_request(prefetch=True))


def test_console_is_off_unless_enabled(client: FlaskClient) -> None:
    assert client.get("/console/").status_code == 404
    assert client.get("/console/report").status_code == 404


def test_console_setting() -> None:
    assert Config.from_env({"CDS_AUTH": "disabled", "CDS_CONSOLE": "enabled"}).console_enabled
    assert not Config.from_env({"CDS_AUTH": "disabled"}).console_enabled
    with pytest.raises(ConfigError, match="CDS_CONSOLE"):
        Config.from_env({"CDS_AUTH": "disabled", "CDS_CONSOLE": "yes please"})


@pytest.mark.parametrize("path", ["/console/", "/console/try", "/console/report"])
def test_pages_load_nothing_from_elsewhere(console: FlaskClient, path: str) -> None:
    response = console.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    html = response.get_data(as_text=True)
    assert "<script" not in html
    assert not re.search(r"<(link|img|iframe)\b", html)
    assert not re.search(r"\bsrc=", html)


def test_rules_page_shows_each_rules_label_text_and_what_it_reads(console: FlaskClient) -> None:
    html = console.get("/console/").get_data(as_text=True)
    for rule in RULES:
        section = html.split(f'data-rule="{rule.id}"', 1)[1].split("</section>", 1)[0]
        assert f'<dd class="rule-text">{escape(rule.label_text)}</dd>' in section, rule.id
        assert f"<dt>Reads</dt><dd>{escape(rule.reads)}</dd>" in section, rule.id


def test_pasted_text_from_resources_is_shown_escaped(console: FlaskClient) -> None:
    # The unit of an ANC the service cannot read is named on the card (markdown detail).
    text = scenario_text("lab-anc-unit-percent").replace('"unit": "%"', '"unit": "<b>pct</b>"')
    html = console.post("/console/try", data={"request": text}).get_data(as_text=True)
    assert "&lt;b&gt;pct&lt;/b&gt;" in html
    assert "<b>pct" not in html


def test_pasted_request_answers_with_cards(console: FlaskClient) -> None:
    html = console.post("/console/try", data={"request": scenario_text("hep-moderate")}).get_data(
        as_text=True
    )
    assert "Answer of ixazomib-order-sign" in html
    assert 'data-rule="hepatic-start-dose"' in html


def test_pasted_request_that_is_not_json_is_named(console: FlaskClient) -> None:
    html = console.post("/console/try", data={"request": '{"hook": '}).get_data(as_text=True)
    assert "Not JSON" in html
    assert "line 1" in html


def test_pasted_request_for_no_known_hook_asks_for_a_service(console: FlaskClient) -> None:
    html = console.post("/console/try", data={"request": '{"hook": "order-dispatch"}'}).get_data(
        as_text=True
    )
    assert "Choose a service" in html


def test_console_calls_are_not_in_the_services_report(console_app: Flask) -> None:
    console = console_app.test_client()
    console.post("/console/try", data={"request": scenario_text("hep-moderate")})
    console.get("/console/")  # runs the example scenarios
    assert console_app.extensions["ixazomib_cds"].store.rule_report() == []


def test_console_beside_authentication_is_announced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    issuers = tmp_path / "issuers.json"
    key = jwk_of(make_es384_key(), "k1")
    issuers.write_text(
        json.dumps({"issuers": [{"iss": "https://ehr.example.org", "jwks": jwks_of(key)}]})
    )
    config = Config.for_testing(
        auth_required=True, trusted_issuers_path=str(issuers), console_enabled=True
    )
    with caplog.at_level(logging.WARNING):
        app = create_app(config)
    assert any("/console answers without a token" in r.getMessage() for r in caplog.records)
    # The service itself still wants its token; the console pages do not.
    client = app.test_client()
    assert client.get("/cds-services").status_code == 401
    assert client.get("/console/report").status_code == 200
    app.extensions["ixazomib_cds"].store.close()
