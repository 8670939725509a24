"""The ``ixazomib-cds`` command as an operator uses it: clear start-up errors, the report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.fixtures import load_scenarios

COMMAND = str(Path(sys.executable).parent / "ixazomib-cds")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    return subprocess.run(
        [COMMAND, *args],
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_refuses_to_start_without_trusted_issuers() -> None:
    result = run("serve", "--port", "1")
    assert result.returncode == 2
    assert "CDS_TRUSTED_ISSUERS" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_names_a_bad_variable() -> None:
    result = run("serve", env={"CDS_AUTH": "maybe"})
    assert result.returncode == 2
    assert "CDS_AUTH must be 'required' or 'disabled'" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (("serve",), {"CDS_TRUSTED_ISSUERS": "{issuers}"}, "CDS_TRUSTED_ISSUERS"),
        (("serve",), {"CDS_AUTH": "disabled", "CDS_DATABASE_URL": "mysql://x"}, "CDS_DATABASE_URL"),
        (("serve", "--port", "99999"), {"CDS_AUTH": "disabled"}, "--port"),
        (("serve", "--workers", "0"), {"CDS_AUTH": "disabled"}, "--workers"),
    ],
    ids=["issuers file lists no issuer", "unsupported database", "port", "workers"],
)
def test_serve_start_up_errors_name_what_to_fix(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], names: str
) -> None:
    issuers = tmp_path / "issuers.json"
    issuers.write_text('{"issuers": []}')
    env = {k: v.replace("{issuers}", str(issuers)) for k, v in env.items()}
    result = run(*args, env={"CDS_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", **env})
    assert result.returncode == 2
    assert f"configuration error: {names}" in result.stderr
    assert "Traceback" not in result.stderr


def test_report_counts_cards_and_feedback_per_rule(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'cds.sqlite3'}"
    app = create_app(Config.for_testing(database_url=database))
    client = app.test_client()
    scenario = next(s for s in load_scenarios() if s.id == "hep-moderate")
    cards = client.post(
        f"/cds-services/{scenario.service}", json=scenario.cds_request()
    ).get_json()["cards"]
    hepatic = next(
        c
        for c in cards
        if c["extension"]["org.ixazomib-cds.recommendation"]["rule"] == "hepatic-start-dose"
    )
    feedback = {
        "feedback": [
            {
                "card": hepatic["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": "2026-11-21T10:00:00Z",
                "overrideReason": {
                    "reason": {
                        "system": "urn:ixazomib-cds:override-reason",
                        "code": "already-aware",
                        "display": "Prescriber already aware; managed elsewhere",
                    }
                },
            }
        ]
    }
    assert (
        client.post(f"/cds-services/{scenario.service}/feedback", json=feedback).status_code == 200
    )
    app.extensions["ixazomib_cds"].store.close()

    result = run("report", env={"CDS_AUTH": "disabled", "CDS_DATABASE_URL": database})
    assert result.returncode == 0, result.stderr
    line = next(row for row in result.stdout.splitlines() if "hepatic-start-dose" in row)
    assert line.split()[1:4] == ["1", "0", "1"], result.stdout  # shown, accepted, overridden
    assert "Prescriber already aware" in result.stdout
