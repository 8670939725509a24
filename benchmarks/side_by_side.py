"""Side-by-side benchmark: the service against two baselines, same gunicorn, same requests.

    python -m benchmarks.side_by_side              # make bench: medians of 3 rounds of 10 s
    python -m benchmarks.side_by_side --quick      # one short round (CI smoke test)

One run:

1. measures the in-process cold cost (``benchmarks.cold`` in a process of its own): the median
   milliseconds of an order-sign call about a patient the process has never seen, for 6-month
   and 4-year histories;
2. generates an ES384 key, writes a CDS_TRUSTED_ISSUERS file with its public JWKS inline, and
   starts ``ixazomib-cds serve`` (production gunicorn settings, deploy/gunicorn.conf.py) with
   ``CDS_AUTH=required`` and a temporary SQLite database; measures the time from starting the
   process to its first 200 answer to an authenticated order-sign call;
3. starts the two baselines through the same ``run_server`` with the same settings: **bare**
   (``benchmarks.bare_app``: parse the JSON body, answer ``{"cards": []}``) and **minimal**
   (``benchmarks.minimal_app``: bare plus PyJWT verification of the ES384 token and its
   ``jti`` recorded once in SQLite, the least any conformant CDS service does per call);
4. sends each workload's first body once to each server and checks the 200 answers;
5. for each workload, in rounds (bare, minimal, service, then again): a warm-up, then a timed
   wrk run over loopback. Every request carries a fresh hookInstance and, for minimal and the
   service, a never-used ES384 token with its own jti (bare gets the same kind of headers).
   The warm workloads (small, large, lab) send one patient's body again and again; the
   real-traffic ones (distinct, off-treatment) cycle through ``--patients`` bodies, each about
   another patient, continuing where the app's previous run stopped. Each app's requests/s,
   p50, p99 and CPU per request are the medians of its rounds: on a machine shared with other
   jobs a round can lose a CPU to them or stall, and interleaved rounds give the three apps
   the same chances; every round is kept in the results file;
6. prints requests/s, p50 and p99 for each app, the ratios service/minimal and service/bare,
   the cold cost and the start-up time, each target with PASS/FAIL, and writes everything to
   ``bench-results/latest.json``.

Why 3,000 patients: each process remembers at most 50,000 validated resources (and as many
readings) and starts again empty when full; a patient is ~150 resources. With 8 connections a
worker serves at least 1/8 of the requests, so between two calls about the same patient it
validates at least 3,000 x 150 / 8 = 56,000 other resources: it has always emptied its caches
since, and no call finds anything of its patient remembered. (With 1,000 patients a worker
serving 1/8 of the calls would still find about one patient in twelve.)

Exit status: 0 when every request was answered 200 (targets are printed with PASS/FAIL but do
not decide the status), 2 when the benchmark could not run or a server answered anything but
200.
"""

from __future__ import annotations

import argparse
import hashlib
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
    free_port,
    make_server,
    module_argv,
    process_tree_cpu_seconds,
    request,
    service_argv,
    wait_until_serving,
)
from benchmarks.tokens import MAX_LIFETIME_SECONDS, SigningKey, write_pool

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = Path("bench-results") / "latest.json"
PAYLOAD_NAMES = ("small", "large", "lab", "distinct", "off-treatment")
APPS = ("bare", "minimal", "service")
DEFAULT_PATIENTS = 3000
QUICK_PATIENTS = 40
STARTUP_TARGET_SECONDS = 2.0
COLD_SIX_MONTHS_TARGET_MS = 5.0
COLD_FOUR_YEARS_FACTOR = 2.0
# Upper bound of an app's throughput used to size a warm-up token pool before its rate is known.
WARMUP_TOKENS_PER_SECOND = 2500
POOL_HEADROOM = 1.6  # tokens minted per request expected, over the fastest rate seen
BARE_POOL_SIZE = 2000
MAX_POOL_SIZE = 400_000
# Unused tokens are kept for the next run of the same app and workload while they are this
# young (they are minted to live MAX_LIFETIME_SECONDS).
TOKEN_REUSE_SECONDS = MAX_LIFETIME_SECONDS / 2


@dataclass(frozen=True)
class Target:
    metric: str  # a key of a workload's ratios
    label: str
    op: str  # ">=" or "<="
    limit: float
    source: str  # where the target was set

    def check(self, value: float) -> bool:
        return value >= self.limit if self.op == ">=" else value <= self.limit


def _target(metric: str, label: str, op: str, limit: float, source: str) -> Target:
    return Target(metric, f"{label} {op} {limit:g}", op, limit, source)


# The service's throughput against minimal and its latency against bare (issue 14), beside the
# earlier warm-workload targets against bare.
TARGETS: dict[str, tuple[Target, ...]] = {
    "small": (
        _target("throughput_vs_minimal", "req/s service/minimal", ">=", 0.6, "issue 14"),
        _target("throughput", "req/s service/bare", ">=", 0.5, "earlier"),
        _target("p99", "p99 service/bare", "<=", 3.0, "earlier"),
    ),
    "large": (_target("p50", "p50 service/bare", "<=", 3.0, "earlier"),),
    "lab": (_target("throughput", "req/s service/bare", ">=", 0.5, "earlier"),),
    "distinct": (
        _target("throughput_vs_minimal", "req/s service/minimal", ">=", 0.6, "issue 14"),
        _target("p50", "p50 service/bare", "<=", 5.0, "issue 14"),
    ),
    "off-treatment": (
        _target("throughput_vs_minimal", "req/s service/minimal", ">=", 0.8, "issue 14"),
        _target("p50", "p50 service/bare", "<=", 5.0, "issue 14"),
    ),
}


class BenchmarkError(RuntimeError):
    """The benchmark could not be run to the end."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.side_by_side",
        description="Benchmark ixazomib-cds against bare and minimal apps under the same gunicorn.",
    )
    parser.add_argument(
        "--duration",
        type=int,
        default=None,
        help="seconds of timed load per workload per app per round (default 10; --quick 2)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="seconds of warm-up before each timed run (default 3; --quick 0)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds per workload; medians are reported (default 3; --quick 1)",
    )
    parser.add_argument(
        "--patients",
        type=int,
        default=None,
        help=f"distinct patients of the real-traffic workloads (default {DEFAULT_PATIENTS}; "
        f"--quick {QUICK_PATIENTS})",
    )
    parser.add_argument(
        "--cold-patients",
        type=int,
        default=None,
        help="new patients timed in process: 6-month histories (default 30; --quick 3); "
        "4-year histories: a third as many",
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
        help="gunicorn workers for all servers (default: production default)",
    )
    parser.add_argument(
        "--payloads",
        default=",".join(PAYLOAD_NAMES),
        help=f"comma-separated subset of {','.join(PAYLOAD_NAMES)}",
    )
    parser.add_argument("--quick", action="store_true", help="a short run, for the CI smoke test")
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"JSON results file (default {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--keep-workdir",
        action="store_true",
        help="keep the temporary directory (server logs, database, tokens, bodies)",
    )
    args = parser.parse_args(argv)
    args.duration = args.duration or (2 if args.quick else 10)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (0 if args.quick else 3)
    args.patients = args.patients or (QUICK_PATIENTS if args.quick else DEFAULT_PATIENTS)
    args.cold_patients = args.cold_patients or (3 if args.quick else 30)
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
    if not 1 <= args.patients <= 20_000:
        parser.error("--patients must be between 1 and 20000")
    if not 1 <= args.cold_patients <= 1000:
        parser.error("--cold-patients must be between 1 and 1000")
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


def measure_cold(patients: int) -> dict[str, Any]:
    """``benchmarks.cold`` in a fresh process (nothing of this one's imports or data)."""
    long_patients = max(1, patients // 3)
    argv = [
        sys.executable,
        "-m",
        "benchmarks.cold",
        "--json",
        "--patients",
        str(patients),
        "--long-patients",
        str(long_patients),
    ]
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60 + 10 * (patients + long_patients),
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise BenchmarkError(f"the cold measurement did not finish: {error}") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise BenchmarkError(
            f"the cold measurement failed (exit {done.returncode}): {done.stderr.strip()[-800:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    six, four = result["six_months"]["median_ms"], result["four_years"]["median_ms"]
    result["targets"] = [
        _check(
            f"6-month median <= {COLD_SIX_MONTHS_TARGET_MS:g} ms",
            six,
            "<=",
            COLD_SIX_MONTHS_TARGET_MS,
        ),
        _check(
            f"4-year median <= {COLD_FOUR_YEARS_FACTOR:g} x 6-month",
            four,
            "<=",
            COLD_FOUR_YEARS_FACTOR * six,
        ),
    ]
    return result


def _check(label: str, value: float | None, op: str, limit: float) -> dict[str, Any]:
    passed = value is not None and (value >= limit if op == ">=" else value <= limit)
    return {"target": label, "op": op, "limit": limit, "value": value, "pass": passed}


class TokenSupply:
    """Never-used tokens for each (server, workload): a pool is minted when needed, and what a
    run did not send is kept for the next run of the same server and workload."""

    def __init__(self, key: SigningKey, workdir: Path) -> None:
        self.key = key
        self.workdir = workdir
        self._unused: dict[tuple[str, str], tuple[float, list[str]]] = {}

    def pool(self, server: Server, payload: Payload, count: int) -> tuple[Path, int]:
        """A file of at least ``count`` unused tokens (and how many it holds)."""
        slot = (server.name, payload.name)
        minted_at, tokens = self._unused.get(slot, (time.time(), []))
        if time.time() - minted_at > TOKEN_REUSE_SECONDS:
            minted_at, tokens = time.time(), []
        if len(tokens) < count:
            audience = f"{server.base_url}{payload.path}"
            tokens = tokens + self.key.mint_pool(
                audience, count - len(tokens), MAX_LIFETIME_SECONDS
            )
        self._unused[slot] = (minted_at, tokens)
        path = self.workdir / f"tokens-{server.name}-{payload.name}.txt"
        return write_pool(path, tokens), len(tokens)

    def used(self, server: Server, payload: Payload, count: int) -> None:
        """The first ``count`` tokens of the last pool may have been sent: never again."""
        slot = (server.name, payload.name)
        minted_at, tokens = self._unused[slot]
        self._unused[slot] = (minted_at, tokens[count:])


class Run:
    """One benchmark run: its temporary directory, key, servers and results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="ixazomib-bench-"))
        self.key = SigningKey.generate()
        self.tokens = TokenSupply(self.key, self.workdir)
        self.trusted_issuers = self.key.write_trusted_issuers(self.workdir / "trusted-issuers.json")
        # Fastest rate any app reached per workload so far: a floor for sizing token pools,
        # since a warm-up slowed by other jobs can understate the timed run (what a pool has
        # left over serves the next run, so a generous pool costs little).
        self.fastest: dict[str, float] = {}
        # Requests each app was sent per workload so far: where its next run starts in the
        # list of patients.
        self.sent: dict[tuple[str, str], int] = {}
        self.script = write_script(self.workdir)
        self.payloads = build_payloads(patients=args.patients, names=tuple(args.payload_names))
        self.templates = {name: p.template() for name, p in self.payloads.items()}
        self.body_files: dict[str, Path] = {}
        self.distinct_bodies: dict[str, int] = {}
        for name, payload in self.payloads.items():
            path = self.workdir / f"bodies-{name}.txt"
            digests = set()
            with path.open("w") as bodies:
                for template in payload.templates():
                    bodies.write(template + "\n")
                    digests.add(hashlib.sha256(template.encode()).digest())
            self.body_files[name] = path
            self.distinct_bodies[name] = len(digests)
        self.servers: dict[str, Server] = {}
        self.startup: Startup | None = None

    # --- servers -----------------------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each server gets its own fresh directory
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _start(self, name: str, argv: list[str], env: dict[str, str], port: int) -> Server:
        server = make_server(name, argv, port, env, self.workdir, REPO_ROOT, self.args.workers)
        self.servers[name] = server
        server.start()
        return server

    def _probe(self, server: Server) -> Startup:
        payload = next(iter(self.payloads.values()))
        return wait_until_serving(
            server,
            lambda: self.call(server, payload),
            f"POST {payload.path} ({payload.name} payload, fresh ES384 token)",
        )

    def start_service(self) -> None:
        port = free_port()
        env = self._base_env()
        env.update(
            {
                "CDS_AUTH": "required",
                "CDS_TRUSTED_ISSUERS": str(self.trusted_issuers),
                "CDS_DATABASE_URL": f"sqlite:///{self.workdir / 'cds.sqlite3'}",
                "CDS_BASE_URL": f"http://127.0.0.1:{port}",
            }
        )
        self.startup = self._probe(self._start("service", service_argv(), env, port))

    def start_minimal(self) -> None:
        port = free_port()
        env = self._base_env()
        env.update(
            {
                "BENCH_TRUSTED_ISSUERS": str(self.trusted_issuers),
                "BENCH_BASE_URL": f"http://127.0.0.1:{port}",
                "BENCH_JTI_DATABASE": str(self.workdir / "minimal-jti.sqlite3"),
            }
        )
        self._probe(self._start("minimal", module_argv("benchmarks.minimal_app"), env, port))

    def start_bare(self) -> None:
        port = free_port()
        server = self._start("bare", module_argv("benchmarks.bare_app"), self._base_env(), port)
        self._probe(server)

    def stop(self) -> None:
        for server in reversed(self.servers.values()):
            server.stop()
        if self.args.keep_workdir:
            print(f"work directory kept: {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- requests ----------------------------------------------------------------------------

    def call(self, server: Server, payload: Payload) -> tuple[int, bytes]:
        token = self.key.mint(f"{server.base_url}{payload.path}", 120)
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
        """Each workload's first body once to each server: all must answer 200 with cards."""
        found: dict[str, dict[str, Any]] = {}
        for name, payload in self.payloads.items():
            entry: dict[str, Any] = {}
            for server in self.servers.values():
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

    def _wrk(
        self, server: Server, payload: Payload, tokens: Path, seconds: int, unique: bool
    ) -> LoadResult:
        slot = (server.name, payload.name)
        result = run_wrk(
            url_base=server.base_url,
            path=payload.path,
            script=self.script,
            tokens_file=tokens,
            bodies_file=self.body_files[payload.name],
            duration_s=seconds,
            connections=self.args.connections,
            threads=self.args.threads,
            unique_tokens=unique,
            salt=uuid.uuid4().int,
            offset=self.sent.get(slot, 0),
        )
        self.sent[slot] = self.sent.get(slot, 0) + result.tokens_used
        if unique:
            self.tokens.used(server, payload, result.tokens_used)
        self.fastest[payload.name] = max(self.fastest.get(payload.name, 0.0), result.rps)
        return result

    def _pool(self, server: Server, payload: Payload, seconds: int) -> tuple[Path, int]:
        """Tokens for ``seconds`` of load: bare reuses one pool (it checks nothing); minimal
        and the service get never-used tokens, enough for the fastest rate seen."""
        if server.name == "bare":
            return self.tokens.pool(server, payload, BARE_POOL_SIZE)
        rate = self.fastest.get(payload.name, 0.0) * POOL_HEADROOM or WARMUP_TOKENS_PER_SECOND
        wanted = math.ceil(rate * seconds) + 50 * self.args.connections + 500
        return self.tokens.pool(server, payload, min(wanted, MAX_POOL_SIZE))

    def measure(self, server: Server, payload: Payload) -> dict[str, Any]:
        """Warm-up, then the timed run."""
        args = self.args
        unique = server.name != "bare"
        warmup: LoadResult | None = None
        if args.warmup > 0:
            tokens, _ = self._pool(server, payload, args.warmup)
            warmup = self._wrk(server, payload, tokens, args.warmup, unique)
        tokens, pool_size = self._pool(server, payload, args.duration)
        assert server.process is not None
        cpu_before = process_tree_cpu_seconds(server.process.pid)
        result = self._wrk(server, payload, tokens, args.duration, unique)
        cpu = process_tree_cpu_seconds(server.process.pid) - cpu_before
        per_request = round(cpu * 1000 / result.requests, 3) if result.requests else None
        return {
            "warmup": warmup.as_dict() if warmup is not None else None,
            "timed": result,
            "cpu_s": round(cpu, 3),
            "cpu_ms_per_request": per_request,
            "token_pool": pool_size,
            "tokens_reused": not unique,
        }


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


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator or denominator <= 0:
        return None
    return round(numerator / denominator, 3)


def ratios_of(measured: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Service against each baseline; CPU ratios are baseline/service (what the throughput
    ratio would be if each server had the CPUs to itself)."""
    timed: dict[str, LoadResult] = {app: measured[app]["timed"] for app in APPS}
    cpu = {app: measured[app]["cpu_ms_per_request"] for app in APPS}
    service, bare, minimal = timed["service"], timed["bare"], timed["minimal"]
    return {
        "throughput": _ratio(service.rps, bare.rps),
        "p50": _ratio(service.p50_ms, bare.p50_ms),
        "p99": _ratio(service.p99_ms, bare.p99_ms),
        "throughput_vs_minimal": _ratio(service.rps, minimal.rps),
        "p50_vs_minimal": _ratio(service.p50_ms, minimal.p50_ms),
        "minimal_throughput_vs_bare": _ratio(minimal.rps, bare.rps),
        "cpu_per_request": _ratio(cpu["bare"], cpu["service"]),
        "cpu_per_request_vs_minimal": _ratio(cpu["minimal"], cpu["service"]),
    }


def evaluate(name: str, ratios: dict[str, float | None]) -> list[dict[str, Any]]:
    checks = []
    for target in TARGETS.get(name, ()):
        check = _check(target.label, ratios[target.metric], target.op, target.limit)
        checks.append({**check, "metric": target.metric, "source": target.source})
    return checks


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pass(check: dict[str, Any]) -> str:
    return "PASS" if check["pass"] else "FAIL"


def print_report(results: dict[str, Any]) -> None:
    settings = results["settings"]
    machine = results["machine"]
    print()
    print(
        f"ixazomib-cds side-by-side benchmark: {settings['load_generator']}, "
        f"{settings['connections']} connections, medians of {settings['rounds']} interleaved "
        f"round(s) of {settings['duration_s']} s per workload per app "
        f"(+{settings['warmup_s']} s warm-up each), gunicorn {settings['gunicorn']['workers']} "
        f"workers x {settings['gunicorn']['threads']} threads, {machine['cpus']} CPUs; "
        f"real-traffic workloads over {settings['patients']} patients"
    )
    busy = max(machine["loadavg_before"][0], machine["loadavg_after"][0])
    print(
        f"load average (1 min) {machine['loadavg_before'][0]:.1f} before, "
        f"{machine['loadavg_after'][0]:.1f} after"
    )
    if busy > 0.5 * (machine["cpus"] or 1):
        print(
            f"WARNING: the machine was busy (1-min load average up to {busy:.1f} on "
            f"{machine['cpus']} CPUs) - other processes share the CPUs, figures are noisy"
        )
    startup = results["startup"]
    print(
        f"start-up: `ixazomib-cds serve` answered 200 to {startup['probe']} "
        f"{startup['first_200_s']:.2f} s after start (first HTTP answer "
        f"{startup['first_response_s']:.2f} s)"
    )
    print()
    header = (
        f"{'workload':<14}{'app':<9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'requests':>10}{'failed':>8}{'cards':>7}{'cpu ms/req':>12}  bodyKB"
    )
    print(header)
    print("-" * len(header))
    for name, entry in results["payloads"].items():
        for app in APPS:
            run = entry[app]
            print(
                f"{name if app == APPS[0] else '':<14}{app:<9}{run['rps']:>9.1f}"
                f"{run['p50_ms']:>9.2f}{run['p99_ms']:>9.2f}{run['requests']:>10}"
                f"{run['failed_requests']:>8}{entry['answers'][app]['cards']:>7}"
                f"{_fmt(run.get('cpu_ms_per_request'), 2):>12}"
                f"  {entry['body_bytes'] / 1024:.0f}"
            )
            if len(run["rounds"]) > 1:
                every = ", ".join(f"{r['rps']:.0f}" for r in run["rounds"])
                print(f"{'':<23}  req/s in each round: {every}")
        ratios = entry["ratios"]
        print(
            f"{'':<14}ratio    service/minimal req/s {_fmt(ratios['throughput_vs_minimal'], 3)}"
            f", service/bare req/s {_fmt(ratios['throughput'], 3)}, p50 "
            f"{_fmt(ratios['p50'], 2)}, p99 {_fmt(ratios['p99'], 2)}; CPU per request "
            f"minimal/service {_fmt(ratios['cpu_per_request_vs_minimal'], 3)}, bare/service "
            f"{_fmt(ratios['cpu_per_request'], 3)}"
        )
    print()
    print("| workload | service req/s | minimal | bare | service / minimal | p50 service / bare |")
    print("|---|---|---|---|---|---|")
    for name, entry in results["payloads"].items():
        print(
            f"| {name} | {entry['service']['rps']:,.0f} | {entry['minimal']['rps']:,.0f} | "
            f"{entry['bare']['rps']:,.0f} | {_fmt(entry['ratios']['throughput_vs_minimal'], 2)} "
            f"| {entry['service']['p50_ms']:.1f} / {entry['bare']['p50_ms']:.1f} ms |"
        )
    cold = results["cold"]
    print()
    print(f"in-process cold cost ({cold['method']}):")
    for key, label in (("six_months", "6-month"), ("four_years", "4-year")):
        entry = cold[key]
        print(
            f"  {label:<8} history ({entry['resources']} resources, "
            f"{entry['body_bytes'] / 1024:.0f} KB): median {entry['median_ms']:.1f} ms per call "
            f"over {entry['patients']} new patients (CPU {entry['cpu_median_ms']:.1f} ms; "
            f"json.loads of the body {entry['json_loads_median_ms']:.2f} ms)"
        )
    print()
    quick = " (indicative only: --quick)" if settings["quick"] else ""
    print(f"targets{quick}; they do not decide the exit status")
    for name, entry in results["payloads"].items():
        for check in entry["targets"]:
            print(
                f"  {name:<14} {check['target']:<34} measured {_fmt(check['value'], 3):>8}  "
                f"{_pass(check)}  ({check['source']})"
            )
    for check in cold["targets"]:
        print(
            f"  {'cold':<14} {check['target']:<34} measured {_fmt(check['value'], 1):>8}  "
            f"{_pass(check)}  (issue 14)"
        )
    print(
        f"  {'start':<14} {'first 200 < ' + format(STARTUP_TARGET_SECONDS, 'g') + ' s':<34} "
        f"measured {startup['first_200_s']:>8.3f}  {'PASS' if startup['pass'] else 'FAIL'}"
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


def _app_entry(measured: dict[str, Any], rounds: list[dict[str, Any]]) -> dict[str, Any]:
    timed: LoadResult = measured["timed"]
    return {
        **timed.as_dict(),
        "token_pool": measured["token_pool"],
        "cpu_s": measured["cpu_s"],
        "cpu_ms_per_request": measured["cpu_ms_per_request"],
        "tokens_reused": measured["tokens_reused"],
        "warmup": measured["warmup"],
        "rounds": [_round_summary(run) for run in rounds],
    }


def run(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    started = time.time()
    load_before = os.getloadavg()
    ensure_wrk()
    print(
        f"in-process cold cost: {args.cold_patients} new patients (6-month history), "
        f"{max(1, args.cold_patients // 3)} (4-year)",
        flush=True,
    )
    cold = measure_cold(args.cold_patients)
    print(f"writing the request bodies ({args.patients} patients per real-traffic workload)")
    bench = Run(args)
    try:
        print(
            f"starting ixazomib-cds serve (CDS_AUTH=required, SQLite in {bench.workdir})",
            flush=True,
        )
        bench.start_service()
        assert bench.startup is not None
        print(
            f"  first 200 after {bench.startup.first_200_s:.2f} s; starting the baselines",
            flush=True,
        )
        bench.start_bare()
        bench.start_minimal()
        answers = bench.check_answers()
        payload_results: dict[str, Any] = {}
        for name, payload in bench.payloads.items():
            rounds: dict[str, list[dict[str, Any]]] = {app: [] for app in APPS}
            for round_number in range(1, args.rounds + 1):
                for app in APPS:
                    print(
                        f"  {name}: {app}, round {round_number}/{args.rounds} "
                        f"({args.warmup} s warm-up + {args.duration} s)",
                        flush=True,
                    )
                    rounds[app].append(bench.measure(bench.servers[app], payload))
            measured = {app: _median_of(runs) for app, runs in rounds.items()}
            ratios = ratios_of(measured)
            payload_results[name] = {
                "description": payload.description,
                "service_id": payload.service_id,
                "resources": payload.resources,
                "patients": payload.patients,
                "distinct_bodies": bench.distinct_bodies[name],
                "body_bytes": len(bench.templates[name]),
                "answers": answers[name],
                **{app: _app_entry(measured[app], rounds[app]) for app in APPS},
                "ratios": ratios,
                "targets": evaluate(name, ratios),
            }
        for server in bench.servers.values():
            if not server.running():
                raise BenchmarkError(f"{server.name} died during the run:\n{server.log_tail()}")
        startup = bench.startup
    finally:
        bench.stop()
    results: dict[str, Any] = {
        "schema": 2,
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
            "patients": args.patients,
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
        "cold": cold,
        "payloads": payload_results,
    }
    failed = sum(
        run["failed_requests"] + run["tokens_exhausted"]
        for entry in payload_results.values()
        for app in APPS
        for run in entry[app]["rounds"]
    )
    results["all_requests_200"] = failed == 0
    results["all_targets_pass"] = (
        results["startup"]["pass"]
        and all(check["pass"] for check in cold["targets"])
        and all(check["pass"] for entry in payload_results.values() for check in entry["targets"])
    )
    return (0 if results["all_requests_200"] else 2), results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        status, results = run(args)
    except (BenchmarkError, ServerError, LoadError) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 2
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
