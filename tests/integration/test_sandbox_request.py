"""The CDS Hooks Sandbox's order-sign request, replayed exactly as recorded (its draft has
``category`` as an object, where R4 wants a list), for the patient of the ``hep-moderate``
scenario: moderate hepatic impairment, so ixazomib starts at 3 mg."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from cds_service.fixtures import load_scenarios
from integration.sandbox_recording import recorded

RECOMMENDATION = "org.ixazomib-cds.recommendation"


def hep_moderate_prefetch() -> dict[str, Any]:
    scenario = next(s for s in load_scenarios() if s.id == "hep-moderate")
    prefetch = scenario.prefetch()
    # The Sandbox filled these keys (it sends only what its templates found).
    return {key: prefetch[key] for key in recorded("prefetch_keys_sent") if key in prefetch}


def test_sandbox_draft_with_category_as_an_object_gets_the_start_dose_card(
    client: FlaskClient,
) -> None:
    request = recorded("order_sign_request_without_prefetch")
    assert isinstance(request["context"]["draftOrders"]["entry"][0]["resource"]["category"], dict)
    request["prefetch"] = hep_moderate_prefetch()

    response = client.post("/cds-services/ixazomib-order-sign", json=request)

    assert response.status_code == 200, response.get_data(as_text=True)
    cards = response.get_json()["cards"]
    advice = [card["extension"][RECOMMENDATION] for card in cards]
    start_dose = [a for a in advice if a["rule"] == "hepatic-start-dose"]
    assert start_dose == [
        {"rule": "hepatic-start-dose", "ixazomib": {"action": "start-reduced", "doseMg": 3}}
    ], advice
    # category is read by no rule: it costs nothing, not even a card naming it.
    texts = [f"{card['summary']}\n{card['detail']}" for card in cards]
    assert not [t for t in texts if "category" in t], texts
    assert not [t for t in texts if "request-123 (invalid" in t], texts


def test_a_malformed_element_a_rule_reads_is_named_and_every_other_rule_runs(
    client: FlaskClient,
) -> None:
    request = recorded("order_sign_request_without_prefetch")
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    draft["dosageInstruction"][0]["timing"] = [draft["dosageInstruction"][0]["timing"]]
    request["prefetch"] = hep_moderate_prefetch()

    response = client.post("/cds-services/ixazomib-order-sign", json=request)

    assert response.status_code == 200, response.get_data(as_text=True)
    cards = response.get_json()["cards"]
    rules = [card["extension"][RECOMMENDATION]["rule"] for card in cards]
    assert "hepatic-start-dose" in rules, rules
    named = [
        card
        for card in cards
        if card["extension"][RECOMMENDATION]["ixazomib"]["action"] == "review"
        and "MedicationRequest/request-123 dosageInstruction[0].timing: expected Timing "
        "(an object), got a list"
        in card["detail"]
    ]
    assert len(named) == 1, [card["detail"] for card in cards]


def test_sandbox_order_select_with_its_draft_gets_the_start_dose_card(client: FlaskClient) -> None:
    """The recorded order-select (Rx View) names the draft of the order-sign recording; its
    draftOrders were left out of the recording and are that same draft."""
    request = recorded("order_select_request_without_prefetch_and_drafts")
    drafts = recorded("order_sign_request_without_prefetch")["context"]["draftOrders"]
    request["context"]["draftOrders"] = drafts
    request["prefetch"] = hep_moderate_prefetch()

    response = client.post("/cds-services/ixazomib-order-select", json=request)

    assert response.status_code == 200, response.get_data(as_text=True)
    advice = [card["extension"][RECOMMENDATION] for card in response.get_json()["cards"]]
    assert {"rule": "hepatic-start-dose", "ixazomib": {"action": "start-reduced", "doseMg": 3}} in (
        advice
    ), advice


def test_sandbox_order_select_without_draft_orders_says_what_is_missing(
    client: FlaskClient,
) -> None:
    """The order-select as the Sandbox sent it: ``selections`` but no ``draftOrders`` (CDS
    Hooks 2.0 makes them REQUIRED at order-select). A 400 whose text tells the EHR's engineer
    what is missing and which order went unchecked, not a card: without the drafts the service
    cannot even tell whether the selected order is ixazomib."""
    request = recorded("order_select_request_without_prefetch_and_drafts")
    assert "draftOrders" not in request["context"]

    response = client.post("/cds-services/ixazomib-order-select", json=request)

    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype in ("application/fhir+json", "application/json")
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    (issue,) = outcome["issue"]
    assert (issue["severity"], issue["code"]) == ("error", "invalid")
    text = issue["diagnostics"]
    assert text.startswith("context.draftOrders is required for order-select"), text
    assert "the Bundle of the draft orders that context.selections names" in text, text
    assert "the selected order MedicationRequest/request-123 was not checked" in text, text
    assert "order-sign" in text, text  # where the order is checked when the drafts come
