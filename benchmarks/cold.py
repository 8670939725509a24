"""In-process cold cost: one hook call about a patient the process has never seen.

    python -m benchmarks.cold [--patients N] [--long-patients M] [--off-treatment-patients K]
                              [--json]

Builds the service with ``create_app`` (authentication disabled, a fresh SQLite file: the
token check is measured under load by ``side_by_side``), tunes the garbage collector as the
server does once its app is loaded, and calls it through Flask's test client, one thread, no
HTTP server. Each timed call is about a new patient (a history of its
own ids, times and values), so nothing the process remembers from an earlier call can serve
it: the cost an EHR's first call about a patient pays, and the only cost when every call is
about another patient. Order-sign calls with two history lengths: 6 months (about 150
resources) and 4 years (52 cycles, about 1,160 resources); and the lab-result call about a
patient who takes no ixazomib (6 months of labs, every key prefetched), which the hook sees
for most new results of a hospital and which is decided from the medication list alone. One
untimed call about yet another patient comes first, so that the figures are a warm process's,
not its imports'. Reports the median, least and largest milliseconds per call, and beside them
the ``json.loads`` of the same bodies (the least any service spends on them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.payloads import (
    CYCLES,
    CYCLES_IN_FOUR_YEARS,
    LAB_RESULT,
    ORDER_SIGN,
    PatientSpec,
    history_body,
    resources_in,
    to_text,
    with_hook_instance,
)

# Patient numbers far from the load workloads' (1 .. patients): never the same patient.
FIRST_PATIENT = 900_000
# name -> (service called, cycles of history, on ixazomib)
HISTORIES = {
    "six_months": (ORDER_SIGN, CYCLES, True),
    "four_years": (ORDER_SIGN, CYCLES_IN_FOUR_YEARS, True),
    "off_treatment_lab_result": (LAB_RESULT, CYCLES, False),
}


class ColdCallError(RuntimeError):
    """The service did not answer a cold call with 200 and a card list."""


def measure(
    patients: int, long_patients: int, workdir: Path, off_treatment_patients: int | None = None
) -> dict[str, Any]:
    from cds_service.app import create_app
    from cds_service.config import Config
    from cds_service.gunicorn_settings import tune_garbage_collector

    config = Config.for_testing(database_url=f"sqlite:///{workdir / 'cold.sqlite3'}")
    client = create_app(config).test_client()
    tune_garbage_collector()  # as the server does once the app is loaded (when_ready)
    now = datetime.now(UTC).replace(microsecond=0)
    counts = {
        "six_months": patients,
        "four_years": long_patients,
        "off_treatment_lab_result": off_treatment_patients or patients,
    }

    def call(service: str, body: bytes) -> tuple[float, float, int]:
        """Wall and CPU seconds of one call (its thread's CPU: what other jobs cannot inflate)
        and the number of cards."""
        path = f"/cds-services/{service}"
        started, cpu_started = time.perf_counter(), time.thread_time()
        answer = client.post(path, data=body, content_type="application/json")
        cpu = time.thread_time() - cpu_started
        elapsed = time.perf_counter() - started
        cards = answer.get_json(silent=True)
        if answer.status_code != 200 or not isinstance(cards, dict):
            raise ColdCallError(f"{answer.status_code}: {answer.get_data(as_text=True)[:500]}")
        return elapsed, cpu, len(cards.get("cards", []))

    number = FIRST_PATIENT
    first, _, _ = call(
        ORDER_SIGN, with_hook_instance(to_text(history_body(ORDER_SIGN, PatientSpec(number), now)))
    )
    results: dict[str, Any] = {
        "method": (
            "create_app(...).test_client(), auth disabled, one thread; each call about a "
            "patient the process has never seen"
        ),
        "first_call_of_process_ms": round(first * 1000, 2),
    }
    for name, (service, cycles, on_ixazomib) in HISTORIES.items():
        count = counts[name]
        calls: list[float] = []
        cpu_times: list[float] = []
        parses: list[float] = []
        cards = 0
        resources = size = 0
        for _ in range(count):
            number += 1
            spec = PatientSpec(number, cycles=cycles, on_ixazomib=on_ixazomib)
            body_json = history_body(service, spec, now)
            body = with_hook_instance(to_text(body_json))
            resources, size = resources_in(body_json), len(body)
            started = time.perf_counter()
            json.loads(body)
            parses.append(time.perf_counter() - started)
            elapsed, cpu, cards = call(service, body)
            calls.append(elapsed)
            cpu_times.append(cpu)
        results[name] = {
            "service": service,
            "cycles": cycles,
            "resources": resources,
            "body_bytes": size,
            "patients": count,
            "cards": cards,
            "median_ms": round(statistics.median(calls) * 1000, 2),
            "min_ms": round(min(calls) * 1000, 2),
            "max_ms": round(max(calls) * 1000, 2),
            "cpu_median_ms": round(statistics.median(cpu_times) * 1000, 2),
            "json_loads_median_ms": round(statistics.median(parses) * 1000, 3),
        }
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold", description=__doc__)
    parser.add_argument("--patients", type=int, default=30, help="6-month patients (default 30)")
    parser.add_argument(
        "--long-patients", type=int, default=10, help="4-year patients (default 10)"
    )
    parser.add_argument(
        "--off-treatment-patients",
        type=int,
        default=None,
        help="lab-result patients who take no ixazomib (default: as --patients)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args(argv)
    off_treatment = args.off_treatment_patients or args.patients
    if not all(1 <= n <= 10_000 for n in (args.patients, args.long_patients, off_treatment)):
        parser.error("the numbers of patients must be between 1 and 10000")
    with tempfile.TemporaryDirectory(prefix="ixazomib-cold-") as workdir:
        try:
            results = measure(args.patients, args.long_patients, Path(workdir), off_treatment)
        except ColdCallError as error:
            print(f"cold call failed: {error}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(results))
    else:
        print(f"first call of the process: {results['first_call_of_process_ms']:.1f} ms")
        for name in HISTORIES:
            entry = results[name]
            print(
                f"{name} ({entry['service']}): {entry['resources']} resources, "
                f"{entry['body_bytes'] / 1024:.0f} KB, "
                f"median {entry['median_ms']:.1f} ms per call over {entry['patients']} new "
                f"patients (CPU {entry['cpu_median_ms']:.1f} ms; least {entry['min_ms']:.1f}, "
                f"most {entry['max_ms']:.1f}; json.loads {entry['json_loads_median_ms']:.2f} ms)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
