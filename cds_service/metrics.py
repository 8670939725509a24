"""Prometheus metrics, correct under several gunicorn worker processes.

When ``PROMETHEUS_MULTIPROC_DIR`` is set (the gunicorn settings always set it) every worker
writes its samples to files in that directory and ``metrics_response()`` sums them over all
workers, live and dead, with prometheus_client's ``MultiProcessCollector``; otherwise (tests,
the Flask development server) a plain in-process registry is used.

Metrics::

    cds_requests_total{service,status}          hook calls answered, by HTTP status
    cds_request_seconds{service}                 hook call latency (histogram)
    cds_cards_total{rule,indicator}              cards returned
    cds_fhir_fetch_seconds{resource}             FHIR reads/searches latency (histogram)
    cds_fhir_fetch_failures_total{resource,reason}
    cds_feedback_total{outcome}                  CDS Hooks feedback received

Label values never carry patient data: each label is checked against a closed set or a strict
pattern, and anything else is recorded as ``other``. (Pass identifiers of things: a service
id, a rule id, a FHIR resource *type*, never an id of a resource.)

The metric objects are created on first use, not at import: prometheus_client picks its
multiprocess mode when it is imported, and this module may be imported (through the package)
before the server has set ``PROMETHEUS_MULTIPROC_DIR``.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

OTHER = "other"
INDICATORS = frozenset({"info", "warning", "critical"})
FEEDBACK_OUTCOMES = frozenset({"accepted", "overridden"})
FETCH_FAILURE_REASONS = frozenset(
    {
        "timeout",
        "connection",
        "unauthorized",
        "forbidden",
        "not_found",
        "http_4xx",
        "http_5xx",
        "invalid_response",
        "too_large",
        "redirect",
        "deadline",
        "other",
    }
)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
FHIR_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 3.0, 5.0)

_RULE = re.compile(r"^[a-z][a-z0-9]*(?:[._:-][a-z0-9]+)*$")
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_known_rules: frozenset[str] | None = None


@dataclass(frozen=True)
class _Metrics:
    registry: CollectorRegistry
    requests: Counter
    request_seconds: Histogram
    cards: Counter
    fhir_fetch_seconds: Histogram
    fhir_fetch_failures: Counter
    feedback: Counter


_lock = threading.Lock()
_metrics: _Metrics | None = None


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _get() -> _Metrics:
    global _metrics
    if _metrics is not None:
        return _metrics
    with _lock:
        if _metrics is None:
            _metrics = _create()
        return _metrics


def _create() -> _Metrics:
    if multiprocess_dir() and not getattr(values.ValueClass, "_multiprocess", False):
        # prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set.
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    if not multiprocess_dir():
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return _Metrics(
        registry=registry,
        requests=Counter(
            "cds_requests",
            "CDS Hooks service calls answered, by service id and HTTP status",
            ["service", "status"],
            registry=registry,
        ),
        request_seconds=Histogram(
            "cds_request_seconds",
            "Time to answer a CDS Hooks service call, in seconds",
            ["service"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        ),
        cards=Counter(
            "cds_cards",
            "Cards returned, by rule id and indicator",
            ["rule", "indicator"],
            registry=registry,
        ),
        fhir_fetch_seconds=Histogram(
            "cds_fhir_fetch_seconds",
            "Time of a FHIR read or search the service made, in seconds, by resource type",
            ["resource"],
            buckets=FHIR_BUCKETS,
            registry=registry,
        ),
        fhir_fetch_failures=Counter(
            "cds_fhir_fetch_failures",
            "FHIR reads or searches that failed, by resource type and reason",
            ["resource", "reason"],
            registry=registry,
        ),
        feedback=Counter(
            "cds_feedback",
            "CDS Hooks feedback entries received, by outcome",
            ["outcome"],
            registry=registry,
        ),
    )


# --- label hygiene ---------------------------------------------------------------------------


def declare_rules(rule_ids: Iterable[str]) -> None:
    """Restrict the ``rule`` label to these ids (anything else is recorded as ``other``)."""
    global _known_rules
    _known_rules = frozenset(rule_ids)


def _service_label(service: str) -> str:
    # The service ids are the registry's. Imported here, not at the top: the FHIR layer
    # records its fetches here, and the registry imports the FHIR layer's patient check.
    from cds_service.services import SERVICES

    return service if service in SERVICES else OTHER


def _status_label(status: int) -> str:
    return str(status) if isinstance(status, int) and 100 <= status <= 599 else OTHER


def _rule_label(rule: str) -> str:
    if _known_rules is not None:
        return rule if rule in _known_rules else OTHER
    return rule if len(rule) <= 80 and _RULE.match(rule) else OTHER


def _indicator_label(indicator: str) -> str:
    return indicator if indicator in INDICATORS else OTHER


def _resource_label(resource: str) -> str:
    return resource if _RESOURCE_TYPE.match(resource) else OTHER


def _reason_label(reason: str) -> str:
    return reason if reason in FETCH_FAILURE_REASONS else OTHER


def _outcome_label(outcome: str) -> str:
    return outcome if outcome in FEEDBACK_OUTCOMES else OTHER


# --- recording -------------------------------------------------------------------------------


def record_request(service: str, status: int, seconds: float) -> None:
    """One hook call to ``service`` (its id; unknown ids count as ``other``) answered."""
    metrics = _get()
    label = _service_label(service)
    metrics.requests.labels(service=label, status=_status_label(status)).inc()
    metrics.request_seconds.labels(service=label).observe(max(0.0, seconds))


def record_card(rule: str, indicator: str) -> None:
    """One card returned for ``rule`` (a stable rule id) with ``indicator``."""
    _get().cards.labels(rule=_rule_label(rule), indicator=_indicator_label(indicator)).inc()


def record_cards(cards: Iterable[tuple[str, str]]) -> None:
    for rule, indicator in cards:
        record_card(rule, indicator)


def record_fhir_fetch(resource: str, seconds: float) -> None:
    """A FHIR read/search of ``resource`` (a resource type, e.g. ``Observation``) took this."""
    _get().fhir_fetch_seconds.labels(resource=_resource_label(resource)).observe(max(0.0, seconds))


def record_fhir_fetch_failure(resource: str, reason: str) -> None:
    """A FHIR read/search failed; ``reason`` is one of FETCH_FAILURE_REASONS."""
    _get().fhir_fetch_failures.labels(
        resource=_resource_label(resource), reason=_reason_label(reason)
    ).inc()


def fetch_failure_reason(status: int) -> str:
    """The failure reason for an HTTP status from a FHIR server."""
    if status == 401:
        return "unauthorized"
    if status == 403:
        return "forbidden"
    if status == 404:
        return "not_found"
    if 400 <= status < 500:
        return "http_4xx"
    if 500 <= status < 600:
        return "http_5xx"
    return "invalid_response"


@contextmanager
def time_fhir_fetch(resource: str) -> Iterator[None]:
    """Time the block as a FHIR fetch of ``resource`` (recorded even if the block raises)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        record_fhir_fetch(resource, time.perf_counter() - start)


def record_feedback(outcome: str) -> None:
    """One feedback entry (``accepted`` or ``overridden``) received."""
    _get().feedback.labels(outcome=_outcome_label(outcome)).inc()


# --- exposition ------------------------------------------------------------------------------


def metrics_response() -> tuple[bytes, str]:
    """The body and content type for ``GET /metrics`` (summed over all workers)."""
    metrics = _get()
    if multiprocess_dir():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(metrics.registry), CONTENT_TYPE_LATEST
