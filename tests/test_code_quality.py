"""The code stays as the README promises: ruff-clean, formatted, and strictly typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_ruff_finds_nothing() -> None:
    result = run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_is_formatted() -> None:
    result = run(str(BIN / "ruff"), "format", "--check", "cds_service")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_passes_on_the_package() -> None:
    result = run(str(BIN / "mypy"))  # pyproject: strict = true, packages = ["cds_service"]
    assert result.returncode == 0, result.stdout + result.stderr
