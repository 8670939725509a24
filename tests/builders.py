"""Builders of CDS Hooks requests and FHIR resources shared by the protocol-level tests."""

from __future__ import annotations

import uuid
from typing import Any

from cds_service.rules.data_needs import DATA_NEEDS

PATIENT_ID = "pat-protocol-1"


def empty_prefetch() -> dict[str, Any]:
    """Every prefetch key fulfilled by a client that found nothing (``null``)."""
    return {need.key: None for need in DATA_NEEDS}


def medication_request(
    order_id: str = "draft-1",
    rxnorm: str = "1723770",
    display: str = "ixazomib 4 MG Oral Capsule",
    dose_mg: int | str = 4,
    status: str = "draft",
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": order_id,
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": rxnorm,
                    "display": display,
                }
            ]
        },
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}},
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": dose_mg,
                            "unit": "mg",
                            "system": "http://unitsofmeasure.org",
                            "code": "mg",
                        }
                    }
                ],
            }
        ],
    }


def order_sign_request(
    *orders: dict[str, Any], prefetch: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": "Practitioner/prac-1",
            "patientId": PATIENT_ID,
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": order} for order in orders or (medication_request(),)],
            },
        },
        "prefetch": empty_prefetch() if prefetch is None else prefetch,
    }
    body.update(extra)
    return body
