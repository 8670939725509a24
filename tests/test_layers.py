"""The layers' import rule (architecture): nothing in ``rules/`` or ``fhir/`` imports
``protocol/``; the protocol layer alone turns the FHIR layer's errors into HTTP answers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cds_service"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("layer", ["fhir", "rules"])
def test_lower_layers_do_not_import_the_protocol_layer(layer: str) -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            m for m in imported_modules(path) if m.startswith("cds_service.protocol")
        )
        for path in sorted((PACKAGE / layer).rglob("*.py"))
    }
    assert not {path: mods for path, mods in offenders.items() if mods}


def test_the_fhir_layer_raises_its_own_errors_not_http_answers() -> None:
    for path in sorted((PACKAGE / "fhir").rglob("*.py")):
        assert "cds_service.errors" not in imported_modules(path), path
