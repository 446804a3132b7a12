"""Bounded load test: the shipped gunicorn.conf.py under wrk with mixed requests, and worker memory.

Starts `gunicorn wsgi:app` on a free 127.0.0.1 port with the shipped gunicorn.conf.py and
this process's environment, waits until every worker has warmed up, and runs wrk for
--duration seconds over --connections connections. The wrk script mixes four kinds of
request: digit pages (40%), htmx fragments (20%), PNGs (20%) and POST /api/predict with
the 784 pixels of a real test digit as JSON (20%), each for a random test digit. Once a
second it reads VmRSS of every worker from /proc and compares the mean total of the first
20 s with the last 20 s (the first and last third for runs shorter than 60 s).

Prints one table and writes the figures to bench/results/load.json (or --output).
Exit status: 0 when every response was 2xx, wrk saw no socket error, no worker was
replaced and the workers' RSS grew less than 5%; 1 when one of these failed; 2 when the
test could not run.

Run from the repository root: python bench/load.py --help
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if not __package__:  # run as a file: python bench/load.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS_DIR, format_table, library_versions, machine_info
from bench.servers import (
    child_pids,
    log_tail,
    memory_kib,
    running_gunicorn,
    server_environment,
    wait_for_digit_sections,
    wait_until_ok,
)

DEFAULT_OUTPUT = RESULTS_DIR / "load.json"
MAX_RSS_GROWTH_PERCENT = 5.0
RSS_WINDOW_SECONDS = 20  # for runs of at least 3 windows; shorter runs compare thirds
START_TIMEOUT_SECONDS = 120
PREDICT_BODIES = 50  # distinct test digits for POST /api/predict
TEST_DIGITS = 10_000
JSON_MARKER = "LOAD_JSON "

# Runs in every wrk thread. Thread-local counts are added up in done(), which runs in
# wrk's main Lua state after all threads have stopped.
WRK_SCRIPT = r"""
local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
  table.insert(threads, thread)
end

local bodies = {}
local page_headers = {}
local fragment_headers = {["HX-Request"] = "true"}
local json_headers = {["Content-Type"] = "application/json"}

function init(args)
  math.randomseed(thread_number * 7919)
  for line in io.lines(os.getenv("BENCH_BODIES")) do
    bodies[#bodies + 1] = line
  end
  statuses = {}
  sent = {page = 0, fragment = 0, png = 0, predict = 0}
end

function request()
  local pick = math.random(100)
  local index = math.random(0, DIGITS - 1)
  if pick <= 40 then
    sent.page = sent.page + 1
    return wrk.format("GET", "/digits/" .. index, page_headers)
  elseif pick <= 60 then
    sent.fragment = sent.fragment + 1
    return wrk.format("GET", "/digits/" .. index, fragment_headers)
  elseif pick <= 80 then
    sent.png = sent.png + 1
    return wrk.format("GET", "/digits/" .. index .. ".png", page_headers)
  end
  sent.predict = sent.predict + 1
  return wrk.format("POST", "/api/predict", json_headers, bodies[math.random(#bodies)])
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

local function add_counts(total, counts)
  for key, count in pairs(counts) do
    total[tostring(key)] = (total[tostring(key)] or 0) + count
  end
end

local function json_object(counts)
  local parts = {}
  for key, count in pairs(counts) do
    parts[#parts + 1] = string.format('"%s": %d', key, count)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
  local all_statuses, all_sent = {}, {}
  for _, thread in ipairs(threads) do
    add_counts(all_statuses, thread:get("statuses"))
    add_counts(all_sent, thread:get("sent"))
  end
  local errors = summary.errors
  io.write(string.format(
    'MARKER{"requests": %d, "duration_us": %d, "bytes": %d, "latency_mean_us": %.1f, '
      .. '"latency_p50_us": %d, "latency_p90_us": %d, "latency_p99_us": %d, "latency_max_us": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"statuses": %s, "sent": %s}\n',
    summary.requests, summary.duration, summary.bytes, latency.mean,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    json_object(all_statuses), json_object(all_sent)))
end
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/load.py",
        description="Run wrk with mixed page, fragment, PNG and API requests against gunicorn on 127.0.0.1.",
    )
    parser.add_argument("--duration", type=int, default=60, help="seconds of load (default: 60)")
    parser.add_argument("--connections", type=int, default=64, help="open wrk connections (default: 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default: 2)")
    parser.add_argument(
        "--timeout", type=int, default=10,
        help="seconds after which wrk counts a request as a timeout error (default: 10)",
    )
    parser.add_argument(
        "--warmup", type=int, default=5,
        help="seconds of the same load before the measured run, not counted (default: 5)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"JSON results file (default: {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    for name in ("duration", "connections", "threads", "timeout"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more")
    if args.threads > args.connections:
        parser.error("--threads must not exceed --connections: wrk needs a connection per thread")
    return args


def write_predict_bodies(path: Path) -> None:
    """Write one POST /api/predict body per line: the pixels of test digits in [0, 1], 3 decimals."""
    from train.data import load_split

    images, _ = load_split("test")
    step = len(images) // PREDICT_BODIES
    with open(path, "w") as bodies:
        for index in range(0, step * PREDICT_BODIES, step):
            pixels = [round(value / 255, 3) for value in images[index].reshape(-1).tolist()]
            bodies.write(json.dumps({"pixels": pixels}, separators=(",", ":")) + "\n")


class RssSampler:
    """Reads VmRSS of the master's children once a second, from start() until stop()."""

    def __init__(self, master_pid: int) -> None:
        self.master_pid = master_pid
        self.samples: list[tuple[float, dict[int, int]]] = []  # (seconds since start, {pid: KiB})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            moment = time.monotonic() - self._started
            sample = {}
            for pid in child_pids(self.master_pid):
                try:
                    sample[pid] = memory_kib(pid)["rss_kib"]
                except OSError:  # the worker exited after the listing
                    continue
            self.samples.append((moment, sample))
            self._stop.wait(1.0)


def rss_summary(samples: list[tuple[float, dict[int, int]]], duration: float) -> dict:
    """Compare mean worker RSS in the first and last window of the run, in total and per worker."""
    window = RSS_WINDOW_SECONDS if duration >= 3 * RSS_WINDOW_SECONDS else duration / 3
    first = [sample for moment, sample in samples if moment <= window]
    last = [sample for moment, sample in samples if moment >= duration - window]
    if not first or not last:
        raise RuntimeError(f"too few RSS samples ({len(samples)}) for windows of {window:.1f} s")

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    first_total = mean([sum(sample.values()) for sample in first])
    last_total = mean([sum(sample.values()) for sample in last])
    per_worker = {}
    for pid in sorted({pid for _, sample in samples for pid in sample}):
        first_values = [sample[pid] for sample in first if pid in sample]
        last_values = [sample[pid] for sample in last if pid in sample]
        per_worker[str(pid)] = {
            "first_mib": round(mean(first_values) / 1024, 1) if first_values else None,
            "last_mib": round(mean(last_values) / 1024, 1) if last_values else None,
        }
    return {
        "window_seconds": round(window, 1),
        "samples": len(samples),
        "first_window_total_mib": round(first_total / 1024, 1),
        "last_window_total_mib": round(last_total / 1024, 1),
        "growth_percent": round(100 * (last_total - first_total) / first_total, 2),
        "per_worker": per_worker,
        "max_total_mib": round(max(sum(sample.values()) for _, sample in samples) / 1024, 1),
    }


def run_wrk(wrk: str, base_url: str, script: Path, bodies: Path, args: argparse.Namespace, seconds: int) -> dict:
    """Run wrk for `seconds` and return the JSON that the script's done() prints."""
    command = [
        wrk, "--threads", str(args.threads), "--connections", str(args.connections),
        "--duration", f"{seconds}s", "--timeout", f"{args.timeout}s", "--script", str(script), base_url,
    ]
    result = subprocess.run(
        command, env={**os.environ, "BENCH_BODIES": str(bodies)}, capture_output=True, text=True,
        timeout=seconds + args.timeout + 60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"wrk exited with status {result.returncode}: {result.stderr.strip()[-2000:]}")
    for line in result.stdout.splitlines():
        if line.startswith(JSON_MARKER):
            return json.loads(line[len(JSON_MARKER):])
    raise RuntimeError(f"wrk printed no {JSON_MARKER.strip()} line; its output:\n{result.stdout[-2000:]}")


def wrk_version(wrk: str) -> str:
    # wrk has no version option: it prints its version first in the usage text, to stdout.
    result = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=10)
    first_line = (result.stdout or result.stderr).splitlines()[0] if (result.stdout or result.stderr) else ""
    return first_line.split(" Copyright")[0].strip() or "unknown"


def extra_versions() -> dict:
    """Return the versions of the libraries that the pages and uploads use besides bench/common.py's list."""
    versions = {}
    for name in ("werkzeug", "pillow"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def wait_for_warm_workers(server, timeout: float) -> list[int]:
    """Wait until every worker has warmed up and rendered the digit sections; return the worker pids.

    Waiting for the sections keeps their memory, about 50 MB per worker, out of the
    RSS growth that the run measures: the cache is full before the first window.
    """
    wait_until_ok(server, "/readyz", timeout=timeout, interval=0.5)
    wait_for_digit_sections(server, timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = child_pids(server.process.pid)
        warmed = server.log_path.read_text(errors="replace").count("event=warm_up_done")
        if workers and warmed >= len(workers):
            return workers
        time.sleep(0.5)
    raise RuntimeError(f"the workers did not all warm up within {timeout} s; end of the log:\n{log_tail(server.log_path)}")


def summarize_run(wrk_result: dict, rss: dict, workers_before: list[int], workers_seen: set[int]) -> dict:
    """Return the figures of the run, with `failures` listing each pass criterion that was missed."""
    seconds = wrk_result["duration_us"] / 1e6
    statuses = {int(status): count for status, count in wrk_result["statuses"].items()}
    socket_errors = {kind: count for kind, count in wrk_result["errors"].items() if kind != "status"}
    replaced = sorted(workers_seen - set(workers_before))

    figures = {
        "requests": wrk_result["requests"],
        "requests_per_second": round(wrk_result["requests"] / seconds, 1),
        "latency_ms": {
            "mean": round(wrk_result["latency_mean_us"] / 1000, 2),
            "p50": round(wrk_result["latency_p50_us"] / 1000, 2),
            "p90": round(wrk_result["latency_p90_us"] / 1000, 2),
            "p99": round(wrk_result["latency_p99_us"] / 1000, 2),
            "max": round(wrk_result["latency_max_us"] / 1000, 2),
        },
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
        "non_2xx": sum(count for status, count in statuses.items() if not 200 <= status < 300),
        "socket_errors": socket_errors,
        "socket_errors_total": sum(socket_errors.values()),
        "requests_sent_by_kind": wrk_result["sent"],
        "workers": len(workers_before),
        "workers_replaced": replaced,
        "rss": rss,
    }

    failures = []
    if figures["non_2xx"]:
        failures.append(f"{figures['non_2xx']} responses were not 2xx: {figures['statuses']}")
    if figures["socket_errors_total"]:
        failures.append(f"wrk counted socket errors: {socket_errors}")
    if replaced:
        failures.append(f"workers were replaced during the run: new pids {replaced}")
    if rss["growth_percent"] >= MAX_RSS_GROWTH_PERCENT:
        failures.append(f"worker RSS grew {rss['growth_percent']}%, the limit is {MAX_RSS_GROWTH_PERCENT}%")

    figures["failures"] = failures
    figures["passed"] = not failures
    return figures


def print_table(figures: dict, args: argparse.Namespace) -> None:
    latency, rss = figures["latency_ms"], figures["rss"]
    per_worker = ", ".join(
        f"{pid}: {values['first_mib']} -> {values['last_mib']}" for pid, values in rss["per_worker"].items()
    )
    rows = [
        ["load", f"{args.duration} s after {args.warmup} s of warm-up, {args.connections} connections, {args.threads} wrk threads"],
        ["requests", str(figures["requests"])],
        ["requests/s", f"{figures['requests_per_second']:.1f}"],
        ["latency p50 / p90 / p99 / max", f"{latency['p50']} / {latency['p90']} / {latency['p99']} / {latency['max']} ms"],
        ["non-2xx responses", str(figures["non_2xx"])],
        ["socket errors", str(figures["socket_errors_total"]) + f" {figures['socket_errors']}"],
        ["workers (replaced)", f"{figures['workers']} ({len(figures['workers_replaced'])})"],
        [f"worker RSS, first {rss['window_seconds']} s", f"{rss['first_window_total_mib']} MiB"],
        [f"worker RSS, last {rss['window_seconds']} s", f"{rss['last_window_total_mib']} MiB"],
        ["worker RSS growth", f"{rss['growth_percent']}% (limit {MAX_RSS_GROWTH_PERCENT}%)"],
        ["RSS per worker, MiB", per_worker],
        ["result", "passed" if figures["passed"] else "FAILED: " + "; ".join(figures["failures"])],
    ]
    print(format_table(["metric", "value"], rows))


def run(args: argparse.Namespace) -> int:
    wrk = shutil.which("wrk")
    if wrk is None:
        print("error: wrk not found; install it with: apt-get install -y wrk", file=sys.stderr)
        return 2

    machine_before = machine_info()
    extra_env, notes = server_environment()
    with tempfile.TemporaryDirectory(prefix="mnist-load-") as folder:
        folder = Path(folder)
        script, bodies = folder / "load.lua", folder / "bodies.jsonl"
        script.write_text(f"local DIGITS = {TEST_DIGITS}\n" + WRK_SCRIPT.replace("MARKER", JSON_MARKER))
        write_predict_bodies(bodies)

        with running_gunicorn("load", ["wsgi:app"], folder, env=extra_env) as server:
            workers = wait_for_warm_workers(server, START_TIMEOUT_SECONDS)
            if args.warmup:
                run_wrk(wrk, server.base_url, script, bodies, args, args.warmup)
            sampler = RssSampler(server.process.pid)
            sampler.start()
            try:
                wrk_result = run_wrk(wrk, server.base_url, script, bodies, args, args.duration)
            finally:
                sampler.stop()
            workers_seen = {pid for _, sample in sampler.samples for pid in sample}
            rss = rss_summary(sampler.samples, args.duration)

    figures = summarize_run(wrk_result, rss, workers, workers_seen)
    results = {
        "benchmark": "load",
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["python bench/load.py", *sys.argv[1:]]),
        "settings": {
            "duration_seconds": args.duration,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "wrk_timeout_seconds": args.timeout,
            "warmup_seconds": args.warmup,
            "mix_percent": {"page": 40, "fragment": 20, "png": 20, "predict": 20},
            "max_rss_growth_percent": MAX_RSS_GROWTH_PERCENT,
        },
        "machine_at_start": machine_before,
        "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        "versions": {**library_versions(), **extra_versions(), "wrk": wrk_version(wrk)},
        "notes": notes,
        **figures,
        "rss_samples": [
            {"seconds": round(moment, 1), "rss_kib": {str(pid): kib for pid, kib in sample.items()}}
            for moment, sample in sampler.samples
        ],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")

    print_table(figures, args)
    print(f"results: {args.output}")
    return 0 if figures["passed"] else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
