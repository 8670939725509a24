"""Side-by-side benchmark: the service against a bare Flask app, same gunicorn, same requests.

    python -m benchmarks.side_by_side              # make bench: medians of 3 rounds of 10 s
    python -m benchmarks.side_by_side --quick      # one round of a few seconds (CI smoke test)

One run:

1. generates an ES384 key, writes a CDS_TRUSTED_ISSUERS file with its public JWKS inline, and
   starts ``ixazomib-cds serve`` (production gunicorn settings, deploy/gunicorn.conf.py) with
   ``CDS_AUTH=required`` and a temporary SQLite database; measures the time from starting the
   process to its first 200 answer to an authenticated order-sign call;
2. starts the bare app (``benchmarks.bare_app``: parse the JSON body, answer
   ``{"cards": []}``) through the same ``run_server`` with the same settings;
3. sends every payload once to each server and checks the 200 answers;
4. for each payload (small, large, lab), in rounds (bare, then service, then again): a warm-up,
   then a timed wrk run over loopback with the same requests (same body, a fresh hookInstance
   and a freshly signed ES384 token with a unique jti per request; the bare app gets the same
   headers). Each app's requests/s, p50, p99 and CPU per request are the medians of its rounds:
   on a machine shared with other jobs a round can lose a CPU to them or stall, and interleaved
   rounds give both apps the same chances; every round is kept in the results file;
5. prints requests/s, p50 and p99 latency for each, the ratios service/bare with the targets
   (PASS/FAIL), and writes everything to ``bench-results/latest.json``.

Exit status: 0 when every request was answered 200 and the targets were met (``--quick``:
targets are shown but do not decide the status), 1 when a target was missed, 2 when the
benchmark could not run or a server answered anything but 200.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.load import LoadError, LoadResult, run_wrk, write_script, wrk_path, wrk_version
from benchmarks.payloads import Payload, build_payloads, with_hook_instance
from benchmarks.servers import (
    Server,
    ServerError,
    Startup,
    bare_argv,
    free_port,
    make_server,
    process_tree_cpu_seconds,
    request,
    service_argv,
    wait_until_serving,
)
from benchmarks.tokens import SigningKey, write_pool

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = Path("bench-results") / "latest.json"
PAYLOAD_NAMES = ("small", "large", "lab")
STARTUP_TARGET_SECONDS = 2.0
# Upper bound of the service's throughput used to size the warm-up token pool (per second).
WARMUP_TOKENS_PER_SECOND = 2500
BARE_POOL_SIZE = 2000
MAX_POOL_SIZE = 400_000


@dataclass(frozen=True)
class Target:
    metric: str  # "throughput", "p50" or "p99": service/bare
    op: str  # ">=" or "<="
    limit: float

    @property
    def label(self) -> str:
        return f"{self.metric} service/bare {self.op} {self.limit:g}"

    def check(self, value: float) -> bool:
        return value >= self.limit if self.op == ">=" else value <= self.limit


TARGETS: dict[str, tuple[Target, ...]] = {
    "small": (Target("throughput", ">=", 0.5), Target("p99", "<=", 3.0)),
    "large": (Target("p50", "<=", 3.0),),
    "lab": (Target("throughput", ">=", 0.5),),
}


class BenchmarkError(RuntimeError):
    """The benchmark could not be run to the end."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.side_by_side",
        description="Benchmark ixazomib-cds against a bare Flask app under the same gunicorn.",
    )
    parser.add_argument(
        "--duration",
        type=int,
        default=None,
        help="seconds of timed load per payload per app per round (default 10; --quick 2)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="seconds of warm-up before each timed run (default 3; --quick 1)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds per payload; medians are reported (default 3; --quick 1)",
    )
    parser.add_argument(
        "--connections", type=int, default=8, help="concurrent keep-alive connections (default 8)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="wrk threads (default 1: leave the CPUs to the servers)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="gunicorn workers for both servers (default: production default)",
    )
    parser.add_argument(
        "--payloads",
        default=",".join(PAYLOAD_NAMES),
        help="comma-separated subset of small,large,lab",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few seconds per run, for the CI smoke test"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"JSON results file (default {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--keep-workdir",
        action="store_true",
        help="keep the temporary directory (server logs, database, tokens)",
    )
    args = parser.parse_args(argv)
    args.duration = args.duration or (2 if args.quick else 10)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    names = [name.strip() for name in args.payloads.split(",") if name.strip()]
    unknown = sorted(set(names) - set(PAYLOAD_NAMES))
    if unknown or not names:
        parser.error(f"--payloads: choose among {', '.join(PAYLOAD_NAMES)}")
    args.payload_names = [name for name in PAYLOAD_NAMES if name in names]
    if not 1 <= args.duration <= 3600:
        parser.error("--duration must be between 1 and 3600 seconds")
    if not 0 <= args.warmup <= 600:
        parser.error("--warmup must be between 0 and 600 seconds")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be between 1 and 20")
    if not 1 <= args.connections <= 1000:
        parser.error("--connections must be between 1 and 1000")
    if not 1 <= args.threads <= 64:
        parser.error("--threads must be between 1 and 64")
    return args


def ensure_wrk() -> str:
    """wrk from the Debian package; installed with apt-get when missing and we are root."""
    found = wrk_path()
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise BenchmarkError("wrk is not installed; install it with: apt-get install -y wrk")
    print("wrk is missing: apt-get install -y wrk", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", "wrk"]
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        install, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        subprocess.run(  # noqa: S603 - fixed argv, no shell
            [apt, "update", "-q"], env=env, capture_output=True, timeout=600, check=False
        )
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            install, env=env, capture_output=True, text=True, timeout=600, check=False
        )
    found = wrk_path()
    if found is None:
        raise BenchmarkError(f"could not install wrk: {done.stderr.strip()[-500:]}")
    return found


class Run:
    """One benchmark run: its temporary directory, key, servers and results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="ixazomib-bench-"))
        self.key = SigningKey.generate()
        # Fastest rate either app reached per payload so far: a floor for sizing the service's
        # token pool, since a warm-up slowed by other jobs can understate the timed run.
        self.fastest: dict[str, float] = {}
        self.script = write_script(self.workdir)
        self.payloads = {
            name: payload
            for name, payload in build_payloads().items()
            if name in args.payload_names
        }
        self.templates = {name: p.template() for name, p in self.payloads.items()}
        self.body_files: dict[str, Path] = {}
        for name, template in self.templates.items():
            path = self.workdir / f"body-{name}.json"
            path.write_text(template)
            self.body_files[name] = path
        self.service: Server | None = None
        self.bare: Server | None = None
        self.startup: Startup | None = None

    # --- servers -----------------------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each server gets its own fresh directory
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_service(self) -> None:
        port = free_port()
        env = self._base_env()
        env.update(
            {
                "CDS_AUTH": "required",
                "CDS_TRUSTED_ISSUERS": str(
                    self.key.write_trusted_issuers(self.workdir / "trusted-issuers.json")
                ),
                "CDS_DATABASE_URL": f"sqlite:///{self.workdir / 'cds.sqlite3'}",
                "CDS_BASE_URL": f"http://127.0.0.1:{port}",
            }
        )
        self.service = make_server(
            "service", service_argv(), port, env, self.workdir, REPO_ROOT, self.args.workers
        )
        self.service.start()
        probe_payload = next(iter(self.payloads.values()))
        self.startup = wait_until_serving(
            self.service,
            lambda: self.call(self.service_server, probe_payload),
            f"POST {probe_payload.path} ({probe_payload.name} payload, fresh ES384 token)",
        )

    def start_bare(self) -> None:
        port = free_port()
        self.bare = make_server(
            "bare",
            bare_argv(),
            port,
            self._base_env(),
            self.workdir,
            REPO_ROOT,
            self.args.workers,
        )
        self.bare.start()
        probe_payload = next(iter(self.payloads.values()))
        wait_until_serving(
            self.bare, lambda: self.call(self.bare_server, probe_payload), "bare POST"
        )

    @property
    def service_server(self) -> Server:
        assert self.service is not None
        return self.service

    @property
    def bare_server(self) -> Server:
        assert self.bare is not None
        return self.bare

    def stop(self) -> None:
        for server in (self.bare, self.service):
            if server is not None:
                server.stop()
        if self.args.keep_workdir:
            print(f"work directory kept: {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- requests ----------------------------------------------------------------------------

    def audience(self, server: Server, payload: Payload) -> str:
        return f"{server.base_url}{payload.path}"

    def call(self, server: Server, payload: Payload) -> tuple[int, bytes]:
        token = self.key.mint(self.audience(server, payload), 120)
        return request(
            server.port,
            "POST",
            payload.path,
            body=with_hook_instance(self.templates[payload.name]),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            timeout=30,
        )

    def check_answers(self) -> dict[str, dict[str, Any]]:
        """Each payload once to each server: both must answer 200 with a card list."""
        found: dict[str, dict[str, Any]] = {}
        for name, payload in self.payloads.items():
            entry: dict[str, Any] = {}
            for server in (self.bare_server, self.service_server):
                started = time.perf_counter()
                status, body = self.call(server, payload)
                elapsed = time.perf_counter() - started
                if status != 200:
                    raise BenchmarkError(
                        f"{server.name} answered {status} to the {name} payload: "
                        f"{body[:800].decode(errors='replace')}"
                    )
                cards = json.loads(body).get("cards")
                if not isinstance(cards, list):
                    raise BenchmarkError(f"{server.name}: the {name} answer has no card list")
                entry[server.name] = {
                    "cards": len(cards),
                    "response_bytes": len(body),
                    "single_call_ms": round(elapsed * 1000, 2),
                    "card_summaries": [str(card.get("summary")) for card in cards][:10],
                }
            found[name] = entry
        return found

    # --- load --------------------------------------------------------------------------------

    def _pool(self, server: Server, payload: Payload, count: int, seconds: float) -> Path:
        tokens = self.key.mint_pool(self.audience(server, payload), count, seconds + 120)
        return write_pool(self.workdir / f"tokens-{server.name}-{payload.name}.txt", tokens)

    def _wrk(
        self, server: Server, payload: Payload, tokens: Path, seconds: int, unique: bool
    ) -> LoadResult:
        return run_wrk(
            url_base=server.base_url,
            path=payload.path,
            script=self.script,
            tokens_file=tokens,
            body_file=self.body_files[payload.name],
            duration_s=seconds,
            connections=self.args.connections,
            threads=self.args.threads,
            unique_tokens=unique,
            salt=uuid.uuid4().int,
        )

    def measure(self, server: Server, payload: Payload) -> dict[str, Any]:
        """Warm-up, then the timed run. The service gets a pool of never-used tokens."""
        args = self.args
        unique = server is self.service
        warmup: LoadResult | None = None
        if unique:
            pool_size = max(200, args.warmup * WARMUP_TOKENS_PER_SECOND)
            tokens = self._pool(server, payload, pool_size, args.warmup)
        else:
            tokens = self._pool(server, payload, BARE_POOL_SIZE, args.warmup + args.duration)
        if args.warmup > 0:
            warmup = self._wrk(server, payload, tokens, args.warmup, unique)
        if warmup is not None:
            self._saw(payload, warmup.rps)
        if unique:
            rate = warmup.rps if warmup is not None and warmup.requests else 500.0
            rate = max(rate, self.fastest.get(payload.name, 0.0))
            wanted = math.ceil(rate * args.duration * 1.6) + 50 * args.connections + 500
            tokens = self._pool(server, payload, min(wanted, MAX_POOL_SIZE), args.duration)
        pool_size = sum(1 for _ in tokens.open())
        assert server.process is not None
        cpu_before = process_tree_cpu_seconds(server.process.pid)
        result = self._wrk(server, payload, tokens, args.duration, unique)
        cpu = process_tree_cpu_seconds(server.process.pid) - cpu_before
        self._saw(payload, result.rps)
        per_request = round(cpu * 1000 / result.requests, 3) if result.requests else None
        return {
            "warmup": warmup.as_dict() if warmup is not None else None,
            "timed": result,
            "cpu_s": round(cpu, 3),
            "cpu_ms_per_request": per_request,
            "token_pool": pool_size,
            "tokens_reused": not unique,
        }

    def _saw(self, payload: Payload, rps: float) -> None:
        self.fastest[payload.name] = max(self.fastest.get(payload.name, 0.0), rps)


def _median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One app's rounds as one measurement: the round of median throughput, with the median
    requests/s, p50, p99 and CPU per request of all rounds."""
    middle = sorted(rounds, key=lambda run: run["timed"].rps)[len(rounds) // 2]
    timed: LoadResult = middle["timed"]
    cpu = [run["cpu_ms_per_request"] for run in rounds if run["cpu_ms_per_request"] is not None]
    return {
        **middle,
        "timed": replace(
            timed,
            rps=statistics.median(run["timed"].rps for run in rounds),
            p50_ms=statistics.median(run["timed"].p50_ms for run in rounds),
            p99_ms=statistics.median(run["timed"].p99_ms for run in rounds),
        ),
        "cpu_ms_per_request": round(statistics.median(cpu), 3) if cpu else None,
    }


def _round_summary(measured: dict[str, Any]) -> dict[str, Any]:
    timed: LoadResult = measured["timed"]
    return {
        "rps": timed.rps,
        "p50_ms": timed.p50_ms,
        "p99_ms": timed.p99_ms,
        "cpu_ms_per_request": measured["cpu_ms_per_request"],
        "failed_requests": timed.failed_requests,
        "tokens_exhausted": timed.tokens_exhausted,
    }


def _ratio(service: float, bare: float) -> float | None:
    return round(service / bare, 3) if bare > 0 else None


def evaluate(
    name: str, bare: LoadResult, service: LoadResult
) -> tuple[dict[str, float | None], list[dict[str, Any]]]:
    ratios = {
        "throughput": _ratio(service.rps, bare.rps),
        "p50": _ratio(service.p50_ms, bare.p50_ms),
        "p99": _ratio(service.p99_ms, bare.p99_ms),
    }
    checks = []
    for target in TARGETS.get(name, ()):
        value = ratios[target.metric]
        checks.append(
            {
                "target": target.label,
                "metric": target.metric,
                "op": target.op,
                "limit": target.limit,
                "value": value,
                "pass": value is not None and target.check(value),
            }
        )
    return ratios, checks


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(results: dict[str, Any]) -> None:
    settings = results["settings"]
    print()
    print(
        f"ixazomib-cds side-by-side benchmark: {settings['load_generator']}, "
        f"{settings['connections']} connections, medians of {settings['rounds']} interleaved "
        f"round(s) of {settings['duration_s']} s per payload per app "
        f"(+{settings['warmup_s']} s warm-up each), gunicorn {settings['gunicorn']['workers']} "
        f"workers x {settings['gunicorn']['threads']} threads, {results['machine']['cpus']} CPUs"
    )
    machine = results["machine"]
    busy = max(machine["loadavg_before"][0], machine["loadavg_after"][0])
    if busy > 0.5 * (machine["cpus"] or 1):
        print(
            f"WARNING: the machine was busy (1-min load average up to {busy:.1f} on "
            f"{machine['cpus']} CPUs) - other processes share the CPUs, figures are noisy"
        )
    startup = results["startup"]
    print(
        f"start-up: `ixazomib-cds serve` answered 200 to {startup['probe']} "
        f"{startup['first_200_s']:.2f} s after start (first HTTP answer "
        f"{startup['first_response_s']:.2f} s)  target < {STARTUP_TARGET_SECONDS:g} s: "
        f"{'PASS' if startup['pass'] else 'FAIL'}"
    )
    print()
    header = (
        f"{'payload':<8}{'app':<9}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}"
        f"{'requests':>10}{'failed':>9}{'cards':>7}{'cpu ms/req':>12}  bodyKB"
    )
    print(header)
    print("-" * len(header))
    for name, entry in results["payloads"].items():
        for app in ("bare", "service"):
            run = entry[app]
            print(
                f"{name if app == 'bare' else '':<8}{app:<9}{run['rps']:>10.1f}"
                f"{run['p50_ms']:>10.2f}{run['p99_ms']:>10.2f}{run['requests']:>10}"
                f"{run['failed_requests']:>9}{entry['answers'][app]['cards']:>7}"
                f"{_fmt(run.get('cpu_ms_per_request'), 2):>12}"
                f"  {entry['body_bytes'] / 1024:.0f}"
            )
            if len(run["rounds"]) > 1:
                every = ", ".join(f"{r['rps']:.0f}" for r in run["rounds"])
                print(f"{'':<8}{'':<9}  req/s in each round: {every}")
        ratios = entry["ratios"]
        print(
            f"{'':<8}{'ratio':<9}{_fmt(ratios['throughput'], 3):>9}x"
            f"{_fmt(ratios['p50'], 2):>9}x{_fmt(ratios['p99'], 2):>9}x"
            f"{'':>29}{_fmt(ratios.get('cpu_per_request'), 3):>11}x"
            "  (bare/service server CPU per request)"
        )
    print()
    quick = " (indicative only: --quick)" if settings["quick"] else ""
    print(f"targets{quick}")
    for name, entry in results["payloads"].items():
        for check in entry["targets"]:
            print(
                f"  {name:<6} {check['target']:<32} measured {_fmt(check['value'], 3):>7}  "
                f"{'PASS' if check['pass'] else 'FAIL'}"
            )
    print(
        f"  {'start':<6} {'first 200 < ' + format(STARTUP_TARGET_SECONDS, 'g') + ' s':<32} "
        f"measured {startup['first_200_s']:>7.3f}  {'PASS' if startup['pass'] else 'FAIL'}"
    )
    print()


def gunicorn_summary(workers: int | None) -> dict[str, Any]:
    from cds_service import gunicorn_settings

    values = gunicorn_settings.settings()
    return {
        "workers": workers or values["workers"],
        "threads": values["threads"],
        "worker_class": values["worker_class"],
        "keepalive": values["keepalive"],
        "preload_app": values["preload_app"],
    }


def run(args: argparse.Namespace) -> tuple[int, dict[str, Any] | None]:
    started = time.time()
    load_before = os.getloadavg()
    ensure_wrk()
    bench = Run(args)
    results: dict[str, Any] | None = None
    try:
        print(
            f"starting ixazomib-cds serve (CDS_AUTH=required, SQLite in {bench.workdir})",
            flush=True,
        )
        bench.start_service()
        assert bench.startup is not None
        print(
            f"  first 200 after {bench.startup.first_200_s:.2f} s; starting the bare app",
            flush=True,
        )
        bench.start_bare()
        answers = bench.check_answers()
        payload_results: dict[str, Any] = {}
        for name, payload in bench.payloads.items():
            rounds: dict[str, list[dict[str, Any]]] = {"bare": [], "service": []}
            for round_number in range(1, args.rounds + 1):
                for server in (bench.bare_server, bench.service_server):
                    print(
                        f"  {name}: {server.name}, round {round_number}/{args.rounds} "
                        f"({args.warmup} s warm-up + {args.duration} s)",
                        flush=True,
                    )
                    rounds[server.name].append(bench.measure(server, payload))
            measured = {app: _median_of(runs) for app, runs in rounds.items()}
            bare, service = measured["bare"]["timed"], measured["service"]["timed"]
            ratios, checks = evaluate(name, bare, service)
            cpu_bare = measured["bare"]["cpu_ms_per_request"]
            cpu_service = measured["service"]["cpu_ms_per_request"]
            # Server CPU per request, bare/service: what the throughput ratio would be if both
            # servers had the CPUs to themselves (robust to other load on a shared machine).
            ratios["cpu_per_request"] = (
                _ratio(cpu_bare, cpu_service) if cpu_bare and cpu_service else None
            )
            payload_results[name] = {
                "description": payload.description,
                "service_id": payload.service_id,
                "resources": payload.resources,
                "body_bytes": len(bench.templates[name]),
                "answers": answers[name],
                "bare": {
                    **bare.as_dict(),
                    "token_pool": measured["bare"]["token_pool"],
                    "cpu_s": measured["bare"]["cpu_s"],
                    "cpu_ms_per_request": measured["bare"]["cpu_ms_per_request"],
                    "tokens_reused": True,
                    "warmup": measured["bare"]["warmup"],
                    "rounds": [_round_summary(run) for run in rounds["bare"]],
                },
                "service": {
                    **service.as_dict(),
                    "token_pool": measured["service"]["token_pool"],
                    "cpu_s": measured["service"]["cpu_s"],
                    "cpu_ms_per_request": measured["service"]["cpu_ms_per_request"],
                    "tokens_reused": False,
                    "warmup": measured["service"]["warmup"],
                    "rounds": [_round_summary(run) for run in rounds["service"]],
                },
                "ratios": ratios,
                "targets": checks,
            }
        for server in (bench.service_server, bench.bare_server):
            if not server.running():
                raise BenchmarkError(f"{server.name} died during the run:\n{server.log_tail()}")
        startup = bench.startup
        results = {
            "schema": 1,
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python -m benchmarks.side_by_side " + " ".join(sys.argv[1:]),
            "wall_seconds": round(time.time() - started, 1),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "loadavg_before": [round(x, 2) for x in load_before],
                "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            },
            "settings": {
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "rounds": args.rounds,
                "connections": args.connections,
                "wrk_threads": args.threads,
                "quick": args.quick,
                "load_generator": wrk_version(),
                "gunicorn": gunicorn_summary(args.workers),
                "service_env": {
                    "CDS_AUTH": "required",
                    "CDS_DATABASE_URL": "sqlite (temporary)",
                    "CDS_TRUSTED_ISSUERS": "inline JWKS, ES384 key of the run",
                },
            },
            "startup": {
                "first_response_s": startup.first_response_s,
                "first_200_s": startup.first_200_s,
                "probe": startup.probe,
                "target_s": STARTUP_TARGET_SECONDS,
                "pass": startup.first_200_s < STARTUP_TARGET_SECONDS,
            },
            "payloads": payload_results,
        }
        failed = sum(
            run["failed_requests"] + run["tokens_exhausted"]
            for entry in payload_results.values()
            for app in ("bare", "service")
            for run in entry[app]["rounds"]
        )
        results["all_requests_200"] = failed == 0
        results["all_targets_pass"] = results["startup"]["pass"] and all(
            check["pass"] for entry in payload_results.values() for check in entry["targets"]
        )
    finally:
        bench.stop()
    if not results["all_requests_200"]:
        return 2, results
    if not results["all_targets_pass"] and not args.quick:
        return 1, results
    return 0, results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        status, results = run(args)
    except (BenchmarkError, ServerError, LoadError) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 2
    assert results is not None
    print_report(results)
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {output}")
    if status == 2:
        print(
            "some requests were not answered 200: see 'first_bad_response' in the results",
            file=sys.stderr,
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
