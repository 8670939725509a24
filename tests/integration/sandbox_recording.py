"""The CDS Hooks Sandbox's recorded requests (clients/cds-hooks-sandbox.json), replayed as
recorded: the Sandbox is not on any registry, so its own app cannot run in the tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

RECORDING = Path(__file__).resolve().parent / "clients" / "cds-hooks-sandbox.json"


def recorded(name: str) -> dict[str, Any]:
    """A fresh copy of one recorded item (e.g. ``order_sign_request_without_prefetch``)."""
    value = json.loads(RECORDING.read_text(encoding="utf-8"))[name]
    return copy.deepcopy(value)  # type: ignore[no-any-return]
