"""Measure how long `gunicorn wsgi:app` takes to serve, and the memory of its processes.

Each repeat starts a fresh server on a free 127.0.0.1 port with the shipped
gunicorn.conf.py and this process's environment, then records:
  - seconds from the spawn to the first 200 response on --path (polled every --interval)
  - seconds until /readyz has returned 200 from every worker
  - seconds until every worker has logged that it rendered the digit page sections, which
    a background thread does after the warm-up while the worker serves
  - after that and --warmup-requests requests, VmRSS (/proc/<pid>/status) and Pss
    (/proc/<pid>/smaps_rollup) of the master and of each worker
Results go to bench/results/startup.json.

Run from the repository root: python -m bench.startup --help
"""

if not __package__:
    raise SystemExit("error: run this script from the repository root as: python -m bench.startup")

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import format_spread, format_table, library_versions, machine_info, print_header
from bench.common import summarize, write_results
from bench.servers import (
    Server,
    child_pids,
    effective_server_settings,
    http_request,
    memory_kib,
    running_gunicorn,
    server_environment,
    wait_for_digit_sections,
    wait_until_ok,
)

FULL_REPEATS = 3
QUICK_REPEATS = 1
READY_TIMEOUT_SECONDS = 120


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.startup",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: {QUICK_REPEATS} start, unless --repeats is given"
    )
    parser.add_argument("--repeats", type=int, default=None, help=f"server starts (default: {FULL_REPEATS})")
    parser.add_argument("--path", default="/digits/0", help="path polled until it returns 200 (default: %(default)s)")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between polls (default: %(default)s)")
    parser.add_argument(
        "--timeout", type=float, default=READY_TIMEOUT_SECONDS,
        help="seconds to wait for the server before the run fails (default: %(default)s)",
    )
    parser.add_argument(
        "--warmup-requests", type=int, default=40,
        help="page requests sent, several at a time, before memory is read (default: %(default)s)",
    )
    parser.add_argument(
        "--mnist-dir", type=Path, default=None,
        help="folder with the MNIST test files, passed to the app as MNIST_DIR (default: $MNIST_DIR)",
    )
    args = parser.parse_args(argv)

    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else FULL_REPEATS
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if not 0 < args.interval <= 5:
        parser.error(f"--interval must be above 0 and at most 5 seconds, got {args.interval}")
    if args.warmup_requests < 0:
        parser.error(f"--warmup-requests must be 0 or more, got {args.warmup_requests}")
    return args


def wait_for_all_workers(server: Server, workers: int, timeout: float, interval: float) -> tuple[float, str | None]:
    """Send rounds of /readyz requests until every worker has returned 200, and return the time and a note.

    /readyz returns the pid of the worker that served it. Each round sends several requests
    at once, so that a busy worker leaves some to the others. The pause of `interval`
    seconds between rounds leaves the CPU to workers that are still warming up.
    """
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    with ThreadPoolExecutor(max_workers=2 * workers) as pool:
        while time.monotonic() < deadline:
            responses = list(pool.map(lambda _: http_request(server.base_url + "/readyz"), range(2 * workers)))
            if any(status == 404 for status, _, _ in responses):
                return time.perf_counter(), "/readyz returned 404, so all-workers-ready was not measured"
            for status, _, body in responses:
                if status == 200:
                    seen.add(int(json.loads(body)["pid"]))
            if seen >= set(child_pids(server.process.pid)) and len(seen) >= workers:
                return time.perf_counter(), None
            time.sleep(interval)
    raise RuntimeError(f"only {len(seen)} of {workers} workers returned 200 from /readyz within {timeout} s")


def send_warmup_requests(server: Server, count: int, workers: int) -> None:
    """Request `count` digit pages, several at a time. Raises RuntimeError on any status other than 200."""
    with ThreadPoolExecutor(max_workers=2 * workers) as pool:
        # Digits 0, 97, 194, ...: different pages, as a user browsing would request.
        urls = [f"{server.base_url}/digits/{i * 97 % 10_000}" for i in range(count)]
        statuses = [status for status, _, _ in pool.map(http_request, urls)]
    if any(status != 200 for status in statuses):
        raise RuntimeError(f"warm-up requests returned statuses {sorted(set(statuses))}; expected only 200")


def measure_once(args, workers: int, log_dir: Path, repeat: int, env: dict) -> dict:
    """Start the server once and return its times and the memory of each process."""
    with running_gunicorn(f"app-{repeat}", ["wsgi:app"], log_dir, env=env) as server:
        first_ok = wait_until_ok(server, args.path, args.timeout, args.interval)
        all_ready, note = wait_for_all_workers(server, workers, args.timeout, args.interval)
        sections_rendered = wait_for_digit_sections(server, args.timeout, args.interval)
        send_warmup_requests(server, args.warmup_requests, workers)
        worker_pids = child_pids(server.process.pid)
        return {
            "first_200_s": first_ok - server.started,
            "all_workers_ready_s": None if note else all_ready - server.started,
            "digit_sections_rendered_s": sections_rendered - server.started,
            "note": note,
            "master": memory_kib(server.process.pid),
            "workers": [memory_kib(pid) for pid in worker_pids],
        }


def summarize_runs(runs: list[dict]) -> list[dict]:
    """Return one row per measure: median and spread over repeats (memory: over all workers too)."""
    def mib(values):
        return summarize([value / 1024 for value in values])

    workers = [worker for run in runs for worker in run["workers"]]
    rows = [
        {"measure": "spawn to first 200", "unit": "s", "summary": summarize([run["first_200_s"] for run in runs])},
    ]
    ready = [run["all_workers_ready_s"] for run in runs if run["all_workers_ready_s"] is not None]
    if ready:
        rows.append({"measure": "spawn to every worker ready", "unit": "s", "summary": summarize(ready)})
    rows.append({"measure": "spawn to every worker's digit sections rendered", "unit": "s",
                 "summary": summarize([run["digit_sections_rendered_s"] for run in runs])})
    rows += [
        {"measure": "master RSS", "unit": "MiB", "summary": mib([run["master"]["rss_kib"] for run in runs])},
        {"measure": "worker RSS (each)", "unit": "MiB", "summary": mib([worker["rss_kib"] for worker in workers])},
        {"measure": "all processes RSS", "unit": "MiB",
         "summary": mib([run["master"]["rss_kib"] + sum(w["rss_kib"] for w in run["workers"]) for run in runs])},
    ]
    if all(worker["pss_kib"] is not None for worker in workers) and runs[0]["master"]["pss_kib"] is not None:
        rows.append({"measure": "all processes PSS", "unit": "MiB", "summary": mib(
            [run["master"]["pss_kib"] + sum(w["pss_kib"] for w in run["workers"]) for run in runs])})
    return rows


def build_table(rows: list[dict]) -> str:
    headers = ["measure", "median (min-max)", "unit", "samples"]
    table_rows = [[row["measure"], format_spread(row["summary"], 2), row["unit"], str(len(row["summary"]["values"]))]
                  for row in rows]
    return format_table(headers, table_rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.mnist_dir:
        os.environ["MNIST_DIR"] = str(args.mnist_dir)
    machine, versions = machine_info(), library_versions()
    server = effective_server_settings()

    print_header("gunicorn start-up time and memory (bench/startup.py)", machine, versions)
    print(f"server: {server['workers']} workers, worker class {server['worker_class']}, "
          f"{server['threads']} threads each; "
          f"{args.repeats} starts, polling {args.path} every {args.interval} s")

    env, env_notes = server_environment()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as log_dir:
        for repeat in range(1, args.repeats + 1):
            try:
                run = measure_once(args, server["workers"], Path(log_dir), repeat, env)
            except RuntimeError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            runs.append(run)
            print(f"  start {repeat}/{args.repeats}: first 200 after {run['first_200_s']:.2f} s, "
                  f"{len(run['workers'])} workers", flush=True)

    rows = summarize_runs(runs)
    print()
    print(build_table(rows))
    notes = [
        f"a time can exceed the true one by up to one poll interval ({args.interval} s) plus one request.",
        "RSS counts a page shared by several processes in full in each of them; PSS splits it among them.",
    ]
    notes += sorted({run["note"] for run in runs if run["note"]}) + env_notes
    if args.quick:
        notes.append("--quick smoke run: one start, too few for conclusions.")
    print()
    for note in notes:
        print(f"note: {note}")
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    path = write_results("startup", {"quick": args.quick, "machine": machine, "versions": versions, "server": server,
                                     "settings": settings, "measures": rows, "runs": runs, "notes": notes})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
