"""The layers' import rule (architecture): nothing in ``rules/`` or ``fhir/`` imports
``protocol/``; the protocol layer alone turns the FHIR layer's errors into HTTP answers.

The pipeline runs one way: ``protocol`` (HTTP) -> ``services`` (the registry: which context
reader, data needs and rules) -> ``fhir`` (gather the record) and ``rules`` (decide, render).
A lower step never imports a higher one, and the rules stay pure (no I/O, no Flask)."""

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


# Each package, and the packages (or modules) it must not import: those above it in the
# pipeline, and for the rules everything that does I/O.
FORBIDDEN = {
    "services": ("cds_service.protocol", "flask"),
    "fhir": ("cds_service.services", "flask"),
    "rules": (
        "cds_service.protocol",
        "cds_service.services",
        "cds_service.fhir",
        "cds_service.metrics",
        "flask",
        "requests",
    ),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_step_of_the_pipeline_imports_a_later_or_higher_one(layer: str) -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            m
            for m in imported_modules(path)
            if any(m == f or m.startswith(f + ".") for f in FORBIDDEN[layer])
        )
        for path in sorted((PACKAGE / layer).rglob("*.py"))
    }
    assert not {path: mods for path, mods in offenders.items() if mods}
