"""The benchmark modules' command lines: ``--help`` answers with usage, a missing setting is a
usage error (not a traceback), and the minimal baseline still serves when started the way
``benchmarks.side_by_side`` starts it (its settings in ``BENCH_*`` environment variables).

Before: ``python -m benchmarks.minimal_app --help`` read ``BENCH_TRUSTED_ISSUERS`` at import
and died with a KeyError traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
MODULES = ("bare_app", "minimal_app", "side_by_side", "cold")
BENCH_VARIABLES = ("BENCH_TRUSTED_ISSUERS", "BENCH_BASE_URL", "BENCH_JTI_DATABASE")


def _run_module(
    module: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    if env is None:
        env = {k: v for k, v in os.environ.items() if k not in BENCH_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=REPO_ROOT,  # the benchmarks package is not installed
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("module", MODULES)
def test_help_prints_usage_and_exits_0(module: str) -> None:
    done = _run_module(module, "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: python -m benchmarks.{module}"), done.stdout[:500]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]


def test_minimal_app_help_names_its_environment_variables() -> None:
    done = _run_module("minimal_app", "--help")
    for name in BENCH_VARIABLES:
        assert name in done.stdout, name


def test_minimal_app_without_its_settings_is_a_usage_error() -> None:
    done = _run_module("minimal_app", "--port", "1")
    assert done.returncode == 2, (done.stdout, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("python -m benchmarks.minimal_app: error:"), last_line
    for name in BENCH_VARIABLES:
        assert name in last_line, name


def test_minimal_app_with_an_unreadable_issuers_file_is_a_usage_error(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update(
        {
            "BENCH_TRUSTED_ISSUERS": str(tmp_path / "no-such-file.json"),
            "BENCH_BASE_URL": "http://127.0.0.1:1",
            "BENCH_JTI_DATABASE": str(tmp_path / "jti.sqlite3"),
        }
    )
    done = _run_module("minimal_app", "--port", "1", env=env)
    assert done.returncode == 2, (done.stdout, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    last_line = done.stderr.strip().splitlines()[-1]
    assert "BENCH_TRUSTED_ISSUERS" in last_line, last_line
    assert "no-such-file.json" in last_line, last_line


def test_minimal_app_serves_as_side_by_side_starts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same command line, environment and readiness probe as ``side_by_side``'s
    ``start_minimal`` (one worker, to spare the machine): a fresh token 200, replayed 401."""
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    from benchmarks.servers import (
        free_port,
        make_server,
        module_argv,
        request,
        wait_until_serving,
    )
    from benchmarks.tokens import SigningKey

    key = SigningKey.generate()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "BENCH_TRUSTED_ISSUERS": str(key.write_trusted_issuers(tmp_path / "issuers.json")),
            "BENCH_BASE_URL": f"http://127.0.0.1:{port}",
            "BENCH_JTI_DATABASE": str(tmp_path / "minimal-jti.sqlite3"),
        }
    )
    server = make_server(
        "minimal", module_argv("benchmarks.minimal_app"), port, env, tmp_path, REPO_ROOT, 1
    )
    path = "/cds-services/ixazomib-order-sign"
    body = b'{"hook": "order-sign", "hookInstance": "x", "context": {}}'

    def call(token: str) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        return request(port, "POST", path, body, headers)

    server.start()
    try:
        wait_until_serving(server, lambda: call(key.mint(server.base_url + path, 120)), "POST")
        token = key.mint(server.base_url + path, 120)
        assert call(token) == (200, b'{"cards":[]}\n')
        assert call(token)[0] == 401  # the same jti again
    finally:
        server.stop()
