"""Metrics under real gunicorn workers, JSON logs, correlation ids and credential redaction."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import values
from prometheus_client.parser import text_string_to_metric_families

from cds_service import logs, metrics

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
JWT = (
    "eyJhbGciOiJFUzM4NCIsImtpZCI6IjEifQ"
    ".eyJpc3MiOiJodHRwczovL2VociIsInN1YiI6InNlY3JldCJ9"
    ".MEUCIQDsignaturesignaturesignature"
)
SECRET = "s3cr3t-access-token-value"
SERVICE = "ixazomib-order-sign"

TEST_APP = textwrap.dedent(
    """
    import logging
    import os
    import time

    from flask import Flask, Response, request

    from cds_service import logs, metrics

    app = Flask(__name__)
    logs.init_app(app)
    log = logging.getLogger("testapp")


    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}


    @app.post("/cds-services/<service_id>")
    def hook(service_id):
        started = time.perf_counter()
        logs.set_hook_instance(request.headers.get("X-Hook-Instance"))
        logs.set_service(service_id)
        # a careless log call: the redaction filter must catch it
        log.info("called with Authorization: %s", request.headers.get("Authorization"))
        log.info("fhirAuthorization %s", {"access_token": request.args.get("access_token")})
        metrics.record_card("ixazomib.platelets-below-30", "warning")
        metrics.record_fhir_fetch("Observation", 0.02)
        metrics.record_request(service_id, 200, time.perf_counter() - started)
        return {"pid": os.getpid()}


    @app.get("/metrics")
    def metrics_route():
        body, content_type = metrics.metrics_response()
        return Response(body, content_type=content_type)
    """
)


# --- helpers ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            method, path, body=body or None, headers={"Connection": "close", **(headers or {})}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _wait_until_up(port: int, process: subprocess.Popen[bytes], limit: float = 30.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
        with contextlib.suppress(OSError):
            if _request(port, "GET", "/healthz")[0] == 200:
                return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError("server did not answer /healthz")


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = _request(port, "GET", "/metrics")
    assert status == 200
    return _samples(body.decode())


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    startup_seconds: float

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def lines(self, which: str) -> list[str]:
        path = self.stdout if which == "stdout" else self.stderr
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _start(tmp_path: Path, command: list[str], env_extra: dict[str, str], port: int) -> Server:
    (tmp_path / "testapp.py").write_text(TEST_APP, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        "TMPDIR": str(tmp_path),
        "CDS_LOG_LEVEL": "INFO",
        **env_extra,
    }
    for name in ("PROMETHEUS_MULTIPROC_DIR", "CDS_GUNICORN_CONFIG"):
        if name not in env_extra:
            env.pop(name, None)
    env.pop("CDS_PROMETHEUS_DIR_OWNER_PID", None)
    env.pop("CDS_PROMETHEUS_DIR_CREATED", None)
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=err)
    try:
        startup = _wait_until_up(port, process)
    except AssertionError:
        process.kill()
        process.wait()
        raise AssertionError(stderr.read_text(encoding="utf-8")[-4000:]) from None
    return Server(port, process, stdout, stderr, startup)


@pytest.fixture
def gunicorn_server(tmp_path: Path) -> Iterator[Server]:
    """gunicorn with deploy/gunicorn.conf.py, 3 workers, serving the test app."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(GUNICORN_CONF),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "3",
        "testapp:app",
    ]
    server = _start(tmp_path, command, {}, port)
    try:
        yield server
    finally:
        server.stop()


def _hit(port: int, count: int, hook_instance: str = "hook-1") -> list[int]:
    def one(_: int) -> int:
        status, body = _request(
            port,
            "POST",
            f"/cds-services/{SERVICE}?patient=Patient-123&access_token={SECRET}",
            headers={"Authorization": f"Bearer {JWT}", "X-Hook-Instance": hook_instance},
        )
        assert status == 200, body
        pid: int = json.loads(body)["pid"]
        return pid

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


# --- metrics under several gunicorn workers --------------------------------------------------


def test_counts_are_summed_over_gunicorn_workers(gunicorn_server: Server) -> None:
    port = gunicorn_server.port
    pids = _hit(port, 60)
    total = 60
    while len(set(pids)) < 2 and total < 600:  # the kernel chooses the worker
        pids += _hit(port, 60)
        total += 60
    assert len(set(pids)) >= 2, "all requests went to one worker"

    samples = _scrape(port)
    request_labels = (("service", SERVICE), ("status", "200"))
    assert samples[("cds_requests_total", request_labels)] == total
    assert samples[("cds_request_seconds_count", (("service", SERVICE),))] == total
    assert samples[("cds_request_seconds_bucket", (("le", "+Inf"), ("service", SERVICE)))] == total
    card_labels = (("indicator", "warning"), ("rule", "ixazomib.platelets-below-30"))
    assert samples[("cds_cards_total", card_labels)] == total
    assert samples[("cds_fhir_fetch_seconds_count", (("resource", "Observation"),))] == total

    # a worker dies: gunicorn replaces it and its counts are still in the sum
    victim = pids[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.2)
        with contextlib.suppress(OSError):
            if _request(port, "GET", "/healthz")[0] == 200:
                break
    survivors = _hit(port, 30)
    assert victim not in survivors
    assert _scrape(port)[("cds_requests_total", request_labels)] == total + 30


def test_labels_never_carry_request_data(gunicorn_server: Server) -> None:
    status, _ = _request(gunicorn_server.port, "POST", "/cds-services/Patient-123")
    assert status == 200
    samples = _scrape(gunicorn_server.port)
    assert samples[("cds_requests_total", (("service", "other"), ("status", "200")))] == 1
    status, body = _request(gunicorn_server.port, "GET", "/metrics")
    assert b"Patient-123" not in body


def test_gunicorn_logs_are_json_and_redacted(gunicorn_server: Server) -> None:
    _hit(gunicorn_server.port, 5, hook_instance="d1577c69-dfbe-44ad-ba6d-3e05e953b2ea")
    gunicorn_server.stop()

    access = [json.loads(line) for line in gunicorn_server.lines("stdout")]
    posts = [entry for entry in access if entry["method"] == "POST"]
    assert len(posts) == 5
    for entry in posts:
        assert entry["path"] == f"/cds-services/{SERVICE}"
        assert entry["status"] == "200"
        assert entry["logger"] == "gunicorn.access"
        assert isinstance(entry["duration_ms"], int)

    errors = [json.loads(line) for line in gunicorn_server.lines("stderr")]
    assert any(e["logger"] == "gunicorn.error" and "Booting worker" in e["message"] for e in errors)
    app_lines = [e for e in errors if e["logger"] == "testapp"]
    assert len(app_lines) == 10
    for entry in app_lines:
        assert entry["hook_instance"] == "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
        assert entry["service"] == SERVICE
        assert "[REDACTED]" in entry["message"]

    everything = gunicorn_server.stdout.read_text() + gunicorn_server.stderr.read_text()
    assert SECRET not in everything
    assert JWT not in everything
    assert JWT.split(".")[1] not in everything
    assert "Patient-123" not in everything  # the query string is never logged


def test_run_server_answers_fast_with_several_workers(tmp_path: Path) -> None:
    port = _free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_4242.db").write_bytes(b"stale file of a previous run")
    command = [
        sys.executable,
        "-c",
        "from cds_service.serve import run_server; "
        f"run_server('127.0.0.1', {port}, 2, app_uri='testapp:app')",
    ]
    server = _start(tmp_path, command, {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, port)
    try:
        # preload_app: the workers fork with the app loaded; CI machines are slow, so allow
        # some slack over the 2 s target.
        assert server.startup_seconds < 5, server.startup_seconds
        assert not (metrics_dir / "counter_4242.db").exists()
        pids = _hit(port, 40)
        assert 1 <= len(set(pids)) <= 2
        labels = (("service", SERVICE), ("status", "200"))
        assert _scrape(port)[("cds_requests_total", labels)] == 40
    finally:
        server.stop()
    assert server.process.returncode == 0


def test_temporary_metrics_dir_is_created_and_removed(gunicorn_server: Server) -> None:
    tmp = gunicorn_server.stdout.parent
    created = [p for p in tmp.iterdir() if p.name.startswith("ixazomib-cds-metrics-")]
    assert len(created) == 1
    _hit(gunicorn_server.port, 2)
    assert any(created[0].glob("*.db"))
    gunicorn_server.stop()
    assert not created[0].exists()


# --- metrics in-process ----------------------------------------------------------------------


@pytest.fixture
def plain_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setattr(values, "ValueClass", values.MutexValue)
    monkeypatch.setattr(metrics, "_metrics", None)
    monkeypatch.setattr(metrics, "_known_rules", None)
    return


def _in_process() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.metrics_response()
    assert content_type.startswith("text/plain")
    return _samples(body.decode())


def test_every_metric_is_exposed(plain_metrics: None) -> None:
    metrics.record_request(SERVICE, 200, 0.12)
    metrics.record_request(SERVICE, 412, 0.01)
    metrics.record_card("ixazomib.anc-below-1000", "critical")
    metrics.record_fhir_fetch("Observation", 0.3)
    with metrics.time_fhir_fetch("MedicationRequest"):
        pass
    metrics.record_fhir_fetch_failure("Observation", "timeout")
    metrics.record_fhir_fetch_failure("Observation", metrics.fetch_failure_reason(503))
    metrics.record_feedback("accepted")
    metrics.record_feedback("overridden")
    samples = _in_process()
    assert samples[("cds_requests_total", (("service", SERVICE), ("status", "412")))] == 1
    assert samples[("cds_request_seconds_sum", (("service", SERVICE),))] == pytest.approx(0.13)
    buckets = [le for (name, labels), _ in samples.items() for key, le in labels if key == "le"]
    assert "0.005" in buckets
    assert "5.0" in buckets
    card = (("indicator", "critical"), ("rule", "ixazomib.anc-below-1000"))
    assert samples[("cds_cards_total", card)] == 1
    assert samples[("cds_fhir_fetch_seconds_count", (("resource", "MedicationRequest"),))] == 1
    failures = (("reason", "timeout"), ("resource", "Observation"))
    assert samples[("cds_fhir_fetch_failures_total", failures)] == 1
    failures = (("reason", "http_5xx"), ("resource", "Observation"))
    assert samples[("cds_fhir_fetch_failures_total", failures)] == 1
    assert samples[("cds_feedback_total", (("outcome", "accepted"),))] == 1
    assert samples[("cds_feedback_total", (("outcome", "overridden"),))] == 1


@pytest.mark.parametrize(
    ("call", "leaked"),
    [
        (lambda: metrics.record_request("Patient/123", 200, 0.1), "Patient/123"),
        (lambda: metrics.record_card("Smith, John 1950-01-01", "warning"), "Smith"),
        (lambda: metrics.record_card("ixazomib.x", "Platelets 25"), "Platelets 25"),
        (lambda: metrics.record_fhir_fetch("Observation/abc-123", 0.1), "abc-123"),
        (lambda: metrics.record_fhir_fetch_failure("Patient", "404 for Patient/9"), "Patient/9"),
        (lambda: metrics.record_feedback("overridden by Dr Who"), "Dr Who"),
    ],
)
def test_label_values_are_sanitised(plain_metrics: None, call: Any, leaked: str) -> None:
    call()
    body, _ = metrics.metrics_response()
    assert leaked.encode() not in body
    assert b'"other"' in body


def test_declared_rules_restrict_the_rule_label(plain_metrics: None) -> None:
    metrics.declare_rules({"ixazomib.known"})
    metrics.record_card("ixazomib.known", "info")
    metrics.record_card("ixazomib.unknown", "info")
    samples = _in_process()
    assert samples[("cds_cards_total", (("indicator", "info"), ("rule", "ixazomib.known")))] == 1
    assert samples[("cds_cards_total", (("indicator", "info"), ("rule", "other")))] == 1


def test_multiprocess_mode_even_if_prometheus_was_imported_first(
    plain_metrics: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """PROMETHEUS_MULTIPROC_DIR set after prometheus_client was imported still works."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metrics.record_request(SERVICE, 200, 0.05)
    assert any(tmp_path.glob("*.db"))
    assert _in_process()[("cds_requests_total", (("service", SERVICE), ("status", "200")))] == 1


# --- logs ------------------------------------------------------------------------------------


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    logs.configure_logging("DEBUG", stream=stream)
    logs.clear_request_context()
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logs.clear_request_context()


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_log_lines_are_json_objects(log_stream: io.StringIO) -> None:
    log = logging.getLogger("cds_service.test")
    log.info('plain %s with "quotes" and\nnewline', "message", extra={"rule": "r1", "n": 3})
    log.warning("ünïcode ✓")
    (first, second) = _lines(log_stream)
    assert first["message"] == 'plain message with "quotes" and\nnewline'
    assert first["level"] == "INFO"
    assert first["logger"] == "cds_service.test"
    assert first["rule"] == "r1"
    assert first["n"] == 3
    assert first["time"].endswith("+00:00")
    assert "hook_instance" not in first
    assert second["message"] == "ünïcode ✓"
    assert second["level"] == "WARNING"


def test_hook_instance_is_on_every_line_of_the_request(log_stream: io.StringIO) -> None:
    log = logging.getLogger("cds_service.test")
    with logs.request_context("d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", SERVICE):
        log.info("one")
        logging.getLogger("another.library").warning("two")
    log.info("after")
    token = logs.set_hook_instance("abc")
    log.info("set directly")
    logs.clear_request_context()
    log.info("cleared")
    del token
    lines = _lines(log_stream)
    assert [line.get("hook_instance") for line in lines] == [
        "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        None,
        "abc",
        None,
    ]
    assert lines[0]["service"] == SERVICE
    assert "service" not in lines[2]


def test_flask_requests_do_not_leak_the_id_to_the_next_request(log_stream: io.StringIO) -> None:
    from flask import Flask

    app = Flask("leak_test")
    logs.init_app(app)
    log = logging.getLogger("leak_test")

    @app.get("/a")
    def a() -> str:
        logs.set_hook_instance("first")
        log.info("a")
        return "a"

    @app.get("/b")
    def b() -> str:
        log.info("b")
        return "b"

    client = app.test_client()
    client.get("/a")
    client.get("/b")
    lines = {line["message"]: line for line in _lines(log_stream)}
    assert lines["a"]["hook_instance"] == "first"
    assert "hook_instance" not in lines["b"]


@pytest.mark.parametrize(
    "careless",
    [
        f"Authorization: Bearer {JWT}",
        f"headers={{'Authorization': 'Bearer {JWT}'}}",
        f'{{"Authorization": "Basic {SECRET}"}}',
        f"HTTP_AUTHORIZATION={SECRET}",
        f"token {JWT} in a sentence",
        f"bearer {SECRET}",
        f"https://fhir.example.org/Patient?access_token={SECRET}&x=1",
        f'{{"fhirAuthorization": {{"access_token": "{SECRET}", "token_type": "Bearer"}}}}',
        f"{{'access_token': '{SECRET}', 'expires_in': 300}}",
        f"refresh_token={SECRET}",
        f"client_secret: {SECRET}",
    ],
)
def test_credentials_are_redacted(log_stream: io.StringIO, careless: str) -> None:
    logging.getLogger("cds_service.test").info("careless: %s", careless)
    output = log_stream.getvalue()
    assert SECRET not in output
    assert JWT not in output
    assert JWT.split(".")[0] not in output
    assert "[REDACTED]" in _lines(log_stream)[0]["message"]


def test_redaction_covers_extras_exceptions_and_the_hook_instance(
    log_stream: io.StringIO,
) -> None:
    log = logging.getLogger("cds_service.test")
    log.info(
        "with extras",
        extra={
            "headers": {"Authorization": f"Bearer {JWT}", "Accept": "application/json"},
            "access_token": SECRET,
            "context": {"fhirAuthorization": {"access_token": SECRET}},
            "note": f"Bearer {SECRET}",
        },
    )
    try:
        raise ValueError(f"could not verify {JWT}")
    except ValueError:
        log.exception("failed with token %s", SECRET.join(["access_token=", ""]))
    with logs.request_context(JWT):
        log.info("weird hook instance")
    output = log_stream.getvalue()
    assert SECRET not in output
    assert JWT not in output
    first, second, third = _lines(log_stream)
    assert first["headers"] == {"Authorization": "[REDACTED]", "Accept": "application/json"}
    assert first["access_token"] == "[REDACTED]"
    assert first["context"]["fhirAuthorization"]["access_token"] == "[REDACTED]"
    assert "ValueError: could not verify [REDACTED]" in second["exception"]
    assert third["hook_instance"] == "[REDACTED]"


PATIENT = "pat-7f3a9c"


@pytest.mark.parametrize(
    ("careless", "kept"),
    [
        # urllib3's DEBUG line for each request it sends
        (f'http://127.0.0.1:8103 "GET /fhir/Patient/{PATIENT} HTTP/1.1" 200 512',
         '"GET /fhir/Patient/[REDACTED] HTTP/1.1" 200'),
        (f'https://ehr.example:443 "GET /fhir/Observation?patient={PATIENT}&code=http://loinc.org'
         '%7C751-8&_sort=-date HTTP/1.1" 200 72', '"GET /fhir/Observation?[REDACTED] HTTP/1.1"'),
        (f"GET /fhir/AdverseEvent?subject=Patient/{PATIENT}&_count=100",
         "/fhir/AdverseEvent?[REDACTED]"),
        # requests' exception text
        (f"Max retries exceeded with url: /fhir/Procedure?patient={PATIENT} (Caused by x)",
         "url: /fhir/Procedure?[REDACTED] (Caused by x)"),
        (f"read Observation/obs-1 of Patient/{PATIENT}, then", "of Patient/[REDACTED], then"),
        (f"https://ehr.example/fhir/Observation/{PATIENT}-cbc/_history/2",
         "/fhir/Observation/[REDACTED]/_history/2"),
    ],
)
def test_patient_ids_in_fhir_urls_are_redacted(
    log_stream: io.StringIO, careless: str, kept: str
) -> None:
    logging.getLogger("urllib3.connectionpool").debug("%s", careless)
    output = log_stream.getvalue()
    assert PATIENT not in output
    assert kept in _lines(log_stream)[0]["message"]


def test_redaction_keeps_ordinary_text() -> None:
    text = "Platelets 25 x10^9/L on 2026-11-01; rule ixazomib.platelets-below-30 fired (hold)"
    assert logs.redact(text) == text
    for text in (
        "POST /cds-services/ixazomib-order-sign 200",
        "Starting new HTTP connection (1): 127.0.0.1:8103",
        "label https://hl7.org/fhir/R4/Bundle.html, what? nothing",
    ):
        assert logs.redact(text) == text


def test_other_handlers_see_redacted_records_too() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token=%s", (JWT,), None)
    logs.RedactingFilter().filter(record)
    assert JWT not in record.getMessage()


def test_configure_logging_is_idempotent_and_checks_the_level() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        logs.configure_logging("info")
        logs.configure_logging("WARNING")
        ours = [h for h in root.handlers if isinstance(h.formatter, logs.JsonFormatter)]
        assert len(ours) == 1
        assert root.level == logging.WARNING
        with pytest.raises(ValueError, match="log level"):
            logs.configure_logging("LOUD")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


# --- the real service under `ixazomib-cds serve` ---------------------------------------------


def test_ixazomib_cds_serve_end_to_end(tmp_path: Path) -> None:
    """The contract's command: gunicorn, several workers, /healthz, /metrics, JSON logs."""
    script = Path(sys.executable).parent / "ixazomib-cds"
    if not script.exists():
        pytest.skip("the ixazomib-cds console script is not installed")
    port = _free_port()
    env = {
        "CDS_AUTH": "disabled",
        "CDS_BASE_URL": f"http://127.0.0.1:{port}",
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cds.sqlite3'}",
        "CDS_WORKERS": "2",
    }
    command = [str(script), "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = _start(tmp_path, command, env, port)
    try:
        assert server.startup_seconds < 10, server.startup_seconds
        status, _ = _request(port, "GET", "/cds-services")
        assert status == 200
        status, body = _request(
            port,
            "POST",
            f"/cds-services/{SERVICE}?access_token={SECRET}",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {JWT}"},
            body=b'{"hook": "order-sign"}',
        )
        assert status == 400, body
        samples = _scrape(port)
        assert samples[("cds_requests_total", (("service", SERVICE), ("status", "400")))] == 1
    finally:
        server.stop()
    assert server.process.returncode == 0
    errors = [json.loads(line) for line in server.lines("stderr")]
    assert sum("Booting worker" in entry["message"] for entry in errors) == 2
    access = [json.loads(line) for line in server.lines("stdout")]
    assert {entry["path"] for entry in access} >= {"/healthz", f"/cds-services/{SERVICE}"}
    everything = server.stdout.read_text() + server.stderr.read_text()
    assert SECRET not in everything
    assert JWT not in everything


_ID_CHARS = "0123456789abcdefABCDEFeyJbearerBEARER_.-"


@given(
    st.lists(
        st.sampled_from([*_ID_CHARS, "eyJ", "eyJhbGciOi", "bearer ", "access_token=", " "]),
        max_size=60,
    ).map("".join)
)
def test_clean_ids_are_what_redaction_leaves(text: str) -> None:
    # The fast path for plain ids must give what redacting and trimming them gives.
    cleaned = "".join(ch for ch in logs.redact(text) if ch.isprintable())[:128] or None
    assert logs._clean_id(text) == cleaned
