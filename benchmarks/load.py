"""Drive a server with wrk (Debian package ``wrk``) and read back what it measured.

wrk is an event-loop HTTP load generator in C with a LuaJIT hook per request. The Lua script
below gives every request:

* its own token from the pool file (thread ``t`` of ``T`` takes lines ``t, t+T, t+2T, ...``);
  in ``unique`` mode a thread that runs out stops, and the run is flagged (the pool is sized
  from a warm-up so that this does not happen); in ``cycle`` mode (the bare app, which checks
  nothing) tokens are reused;
* its own ``hookInstance`` (a UUID made from a per-phase salt, the thread and a counter) spliced
  into the body template;
* the next body of the bodies file (one template per line): a warm workload's file has one
  line, a real-traffic workload's a line per patient, so that each request is about another
  patient than the last ``patients - 1``; the run starts at line ``offset`` (the requests an
  app was already sent), so that a timed run does not begin with the patients of its warm-up;

and counts, per thread, the responses whose status is not 200. ``done`` prints one JSON line
(marked ``BENCH_RESULT``) with the counts and the latency percentiles (microseconds).

Every run is bounded: wrk's ``--duration`` and ``--timeout``, and a subprocess timeout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.payloads import HOOK_INSTANCE_PLACEHOLDER

MARKER = "BENCH_RESULT "

LUA_SCRIPT = r"""
-- args: tokens_file bodies_file path mode(unique|cycle) nthreads salt(hex) offset
local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_id", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local tokens = {}
local prefixes, suffixes = {}, {}
local path, cycle
local nthreads, salt, offset
sent = 0
non2xx = 0
exhausted = 0
responses = 0
first_bad = ""

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  for body in io.lines(args[2]) do
    if #body > 0 then
      local at = string.find(body, "PLACEHOLDER", 1, true)
      assert(at, "a body has no hookInstance placeholder")
      prefixes[#prefixes + 1] = string.sub(body, 1, at - 1)
      suffixes[#suffixes + 1] = string.sub(body, at + #"PLACEHOLDER")
    end
  end
  assert(#prefixes > 0, "the bodies file is empty")
  path = args[3]
  cycle = args[4] == "cycle"
  nthreads = tonumber(args[5])
  salt = tonumber(args[6], 16)
  offset = tonumber(args[7])
end

function request()
  sent = sent + 1
  local index = thread_id + (sent - 1) * nthreads + 1
  if index > #tokens then
    if not cycle then
      exhausted = exhausted + 1
      wrk.thread:stop()
    end
    index = ((index - 1) % #tokens) + 1
  end
  local body = (offset + thread_id + (sent - 1) * nthreads) % #prefixes + 1
  local hook_instance = string.format("%08x-%04x-4000-8000-%012x", salt, thread_id % 65536,
                                      sent)
  return wrk.format("POST", path, {
    ["Authorization"] = "Bearer " .. tokens[index],
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json",
  }, prefixes[body] .. hook_instance .. suffixes[body])
end

function response(status, headers, body)
  responses = responses + 1
  if status ~= 200 then
    non2xx = non2xx + 1
    if first_bad == "" then
      first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

local function q(text)
  return '"' .. string.gsub(text, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end) .. '"'
end

function done(summary, latency, requests)
  local non2xx_total, exhausted_total, responses_total, bad = 0, 0, 0, ""
  local tokens_used = 0  -- tokens 1 .. tokens_used may have been sent (see request)
  for _, thread in ipairs(threads) do
    local thread_sent = thread:get("sent") or 0
    if thread_sent > 0 then
      local last = thread:get("thread_id") + (thread_sent - 1) * thread_count + 1
      if last > tokens_used then tokens_used = last end
    end
    non2xx_total = non2xx_total + (thread:get("non2xx") or 0)
    exhausted_total = exhausted_total + (thread:get("exhausted") or 0)
    responses_total = responses_total + (thread:get("responses") or 0)
    local sample = thread:get("first_bad") or ""
    if bad == "" then bad = sample end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
    "\"responses\": %d, \"non_2xx\": %d, \"tokens_exhausted\": %d, \"tokens_used\": %d, " ..
    "\"errors\": {\"connect\": %d, \"read\": %d, \"write\": %d, " ..
    "\"status\": %d, \"timeout\": %d}, " ..
    "\"latency_us\": {\"min\": %d, \"mean\": %.1f, \"max\": %d, \"stdev\": %.1f, " ..
    "\"p50\": %d, \"p90\": %d, \"p99\": %d, \"p999\": %d}, \"first_bad\": %s}\n",
    summary.requests, summary.duration, summary.bytes,
    responses_total, non2xx_total, exhausted_total, tokens_used,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), q(bad)))
end
""".replace("PLACEHOLDER", HOOK_INSTANCE_PLACEHOLDER)


class LoadError(RuntimeError):
    """wrk is missing, failed, or printed no result."""


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured. Latencies in milliseconds."""

    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: dict[str, int]
    tokens_exhausted: int
    tokens_used: int  # tokens 1 .. tokens_used of the pool may have been sent
    first_bad_response: str
    bytes_read: int

    @property
    def failed_requests(self) -> int:
        """Responses that were not 200, plus requests lost to socket errors or timeouts."""
        errors = self.socket_errors
        return (
            self.non_2xx + errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
        )

    def as_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["failed_requests"] = self.failed_requests
        return result


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str:
    path = wrk_path()
    if path is None:
        return "missing"
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [path, "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    words = (done.stdout or done.stderr).split()
    return " ".join(words[:2]) if words else "wrk"


def write_script(directory: Path) -> Path:
    path = directory / "bench.lua"
    path.write_text(LUA_SCRIPT)
    return path


def run_wrk(
    *,
    url_base: str,
    path: str,
    script: Path,
    tokens_file: Path,
    bodies_file: Path,
    duration_s: float,
    connections: int,
    threads: int,
    unique_tokens: bool,
    salt: int,
    offset: int = 0,
    timeout_s: float = 10.0,
) -> LoadResult:
    wrk = wrk_path()
    if wrk is None:
        raise LoadError("wrk is not installed: apt-get install -y wrk (Debian package)")
    if not url_base.startswith("http://127.0.0.1:"):
        raise LoadError(f"the benchmark only drives loopback servers, not {url_base}")
    threads = max(1, min(threads, connections))
    argv = [
        wrk,
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        f"--script={script}",
        f"{url_base}{path}",
        "--",
        str(tokens_file),
        str(bodies_file),
        path,
        "unique" if unique_tokens else "cycle",
        str(threads),
        f"{salt & 0xFFFFFFFF:08x}",
        str(max(0, offset)),
    ]
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv, capture_output=True, text=True, timeout=duration_s + timeout_s + 30, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise LoadError(f"wrk did not finish in time: {error}") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        raise LoadError(
            f"wrk failed (exit {done.returncode}): {done.stderr.strip()[-800:]} "
            f"{done.stdout.strip()[-800:]}"
        )
    raw = json.loads(lines[-1][len(MARKER) :])
    latency = raw["latency_us"]
    duration = raw["duration_us"] / 1e6
    return LoadResult(
        requests=raw["requests"],
        duration_s=round(duration, 3),
        rps=round(raw["requests"] / duration, 1) if duration > 0 else 0.0,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        p999_ms=latency["p999"] / 1000,
        mean_ms=round(latency["mean"] / 1000, 3),
        max_ms=latency["max"] / 1000,
        non_2xx=raw["non_2xx"],
        socket_errors={k: raw["errors"][k] for k in ("connect", "read", "write", "timeout")},
        tokens_exhausted=raw["tokens_exhausted"],
        tokens_used=raw["tokens_used"],
        first_bad_response=raw["first_bad"],
        bytes_read=raw["bytes"],
    )
