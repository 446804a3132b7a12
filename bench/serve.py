"""Measure the app's routes under gunicorn with wrk, next to a bare Flask page of the same size.

Both servers start from the shipped gunicorn.conf.py settings (the bare one without the
hooks, see bench/bare_gunicorn_conf.py) on free 127.0.0.1 ports, with this process's
environment. Every route is measured once for warm-up, then in `--repeats` rounds that
take the routes in turn. A route's ratios to the bare page are the median, over the
rounds, of its run divided by the bare page's run in the same round, so slow drift of
the machine cancels out. Results go to bench/results/serve.json.

Run from the repository root: python -m bench.serve --help
"""

if not __package__:
    raise SystemExit("error: run this script from the repository root as: python -m bench.serve")

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import (
    format_spread,
    format_table,
    library_versions,
    machine_info,
    print_header,
    summarize,
    write_results,
)
from bench.servers import (
    PER_REQUEST_HOOKS,
    cpu_seconds,
    child_pids,
    effective_server_settings,
    http_request,
    running_gunicorn,
    server_environment,
    shipped_gunicorn_hooks,
    wait_for_digit_sections,
    wait_until_ok,
)
from train.data import IDXError

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk_route.lua"
FULL_DEFAULTS = {"duration": 6, "repeats": 5, "warmup": 2}
QUICK_DEFAULTS = {"duration": 2, "repeats": 1, "warmup": 1}
TEST_DIGITS = 10_000
START_TIMEOUT_SECONDS = 120
PREDICT_BODIES = 10  # distinct test digits sent in turn to POST /api/predict
# wrk's error counters; "status" counts responses with a status of 400 or more.
WRK_ERROR_KINDS = ("connect", "read", "write", "status", "timeout")


@dataclass(frozen=True)
class Route:
    """One wrk target: a path with %d for the index, on the app or the bare server."""

    name: str
    server: str  # "app" or "bare"
    path: str
    indexes: int
    method: str = "GET"
    htmx: bool = False
    bodies: str | None = None  # file with one JSON body per line, for POST


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.serve",
        description=__doc__.split("\n\n")[0],
    )
    quick, full = QUICK_DEFAULTS, FULL_DEFAULTS
    parser.add_argument(
        "--quick", action="store_true",
        help=f"short smoke run: {quick['duration']} s runs, {quick['repeats']} repeat and {quick['warmup']} s "
        "warm-up, unless those options are given",
    )
    parser.add_argument(
        "--duration", type=int, default=None, help=f"whole seconds per measured wrk run (default: {full['duration']})"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help=f"measured wrk runs per route (default: {full['repeats']})"
    )
    parser.add_argument(
        "--warmup", type=int, default=None,
        help=f"whole seconds of unmeasured wrk warm-up per route (default: {full['warmup']})",
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default: %(default)s)")
    parser.add_argument(
        "--connections", type=int, default=16, help="wrk connections, all threads together (default: %(default)s)"
    )
    parser.add_argument(
        "--indexes", type=int, default=TEST_DIGITS,
        help="page and fragment requests cycle through digits 0 to N-1 (default: %(default)s)",
    )
    parser.add_argument(
        "--png-indexes", type=int, default=100,
        help="PNG requests cycle through digits 0 to N-1, few enough for the warm-up to fill each worker's "
        "PNG cache (default: %(default)s)",
    )
    parser.add_argument(
        "--mnist-dir", type=Path, default=None,
        help="folder with the MNIST test files, passed to the app as MNIST_DIR (default: $MNIST_DIR)",
    )
    args = parser.parse_args(argv)

    defaults = QUICK_DEFAULTS if args.quick else FULL_DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("duration", "repeats", "threads", "connections", "indexes", "png_indexes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be 0 or more, got {args.warmup}")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads: wrk opens at least one connection per thread")
    return args


def ensure_wrk() -> str:
    """Return the path of wrk, installing the Debian package if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found; installing it with: apt-get install -y wrk", flush=True)
    result = subprocess.run(["apt-get", "install", "-y", "wrk"], check=False)
    found = shutil.which("wrk")
    if result.returncode != 0 or found is None:
        sys.exit("error: installing wrk failed; install it yourself (Debian: apt-get install wrk) and rerun")
    return found


def wrk_version(wrk: str) -> str:
    output = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False).stdout
    # The first line reads like "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer".
    return output.splitlines()[0].split(" Copyright")[0].strip() if output else "unknown"


def write_predict_bodies(path: Path) -> None:
    """Write one {"pixels": [...]} body per line for the first test digits, pixels scaled to [0, 1]."""
    from train.data import default_data_dir, load_split

    images, _ = load_split("test", default_data_dir())
    with open(path, "w") as bodies:
        for image in images[:PREDICT_BODIES]:
            pixels = [round(int(value) / 255, 4) for value in image.reshape(-1)]
            bodies.write(json.dumps({"pixels": pixels}, separators=(",", ":")) + "\n")


def probe_predict(base_url: str, bodies: Path) -> str | None:
    """Send one POST /api/predict and return None on 200, else the reason to skip the route."""
    body = bodies.read_text().splitlines()[0].encode()
    status, _, response = http_request(
        base_url + "/api/predict", headers={"Content-Type": "application/json"}, data=body
    )
    if status == 200:
        return None
    if status == 404:
        return "POST /api/predict returned 404: the app has no such route"
    return f"POST /api/predict returned {status}: {response[:200]!r}"


def app_routes(bodies: Path, args: argparse.Namespace) -> list[Route]:
    return [
        Route("full page", "app", "/digits/%d", args.indexes),
        Route("htmx fragment", "app", "/digits/%d", args.indexes, htmx=True),
        Route("PNG", "app", "/digits/%d.png", args.png_indexes),
        Route("POST /api/predict", "app", "/api/predict", PREDICT_BODIES, method="POST", bodies=str(bodies)),
    ]


def run_wrk(wrk: str, route: Route, base_url: str, server_pid: int, args, duration: int) -> dict:
    """Run wrk once against `route` and return its JSON summary with the CPU used by wrk and the server."""
    env = {
        **os.environ,
        "BENCH_PATH": route.path,
        "BENCH_COUNT": str(route.indexes),
        "BENCH_METHOD": route.method,
        "BENCH_HX": "true" if route.htmx else "false",
        "BENCH_BODIES": route.bodies or "",
    }
    command = [
        wrk, "--threads", str(args.threads), "--connections", str(args.connections),
        "--duration", f"{duration}s", "--timeout", "5s", "--latency", "--script", str(LUA_SCRIPT), base_url + "/",
    ]
    server_pids = [server_pid, *child_pids(server_pid)]
    server_cpu_before = cpu_seconds(server_pids)
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=duration + 60, check=False)
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = cpu_seconds(server_pids) - server_cpu_before

    lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed on {route.name} (exit {result.returncode}): {result.stderr.strip()[-500:]}")
    run = json.loads(lines[-1].removeprefix("BENCH_JSON "))
    seconds = run["duration_us"] / 1e6
    wrk_cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
    run.update(
        requests_per_second=run["requests"] / seconds,
        wrk_cpu_cores=wrk_cpu / seconds,
        server_cpu_cores=server_cpu / seconds,
    )
    return run


def measure_routes(wrk: str, routes: list[Route], servers: dict, args) -> dict[str, list[dict]]:
    """Warm every route up once, then measure each `args.repeats` times, taking routes in turn."""
    if args.warmup:
        for route in routes:
            server = servers[route.server]
            run_wrk(wrk, route, server.base_url, server.process.pid, args, args.warmup)

    runs: dict[str, list[dict]] = {route.name: [] for route in routes}
    for repeat in range(1, args.repeats + 1):
        for route in routes:
            server = servers[route.server]
            run = run_wrk(wrk, route, server.base_url, server.process.pid, args, args.duration)
            runs[route.name].append(run)
            print(f"  run {repeat}/{args.repeats} {route.name}: {run['requests_per_second']:.0f} req/s, "
                  f"p99 {run['latency_p99_us'] / 1000:.1f} ms", flush=True)
    return runs


def summarize_route(route: Route, runs: list[dict]) -> dict:
    """Return a route's medians and spreads over its runs, in requests/s and milliseconds."""
    errors = {kind: sum(run[f"errors_{kind}"] for run in runs) for kind in WRK_ERROR_KINDS}
    return {
        **asdict(route),
        "requests_per_second": summarize([run["requests_per_second"] for run in runs]),
        "response_bytes": sum(run["bytes"] for run in runs) / max(1, sum(run["requests"] for run in runs)),
        "p50_ms": summarize([run["latency_p50_us"] / 1000 for run in runs]),
        "p99_ms": summarize([run["latency_p99_us"] / 1000 for run in runs]),
        "wrk_cpu_cores": summarize([run["wrk_cpu_cores"] for run in runs]),
        "server_cpu_cores": summarize([run["server_cpu_cores"] for run in runs]),
        "errors": errors,
        "runs": runs,
    }


def add_ratios(summaries: list[dict], bare: dict) -> None:
    """Add each route's req/s and p99 divided by the bare route's: per round, then summarized over rounds."""
    for summary in summaries:
        pairs = list(zip(summary["runs"], bare["runs"], strict=True))
        summary["requests_per_second_over_bare"] = summarize(
            [run["requests_per_second"] / bare_run["requests_per_second"] for run, bare_run in pairs]
        )
        summary["p99_over_bare"] = summarize(
            [run["latency_p99_us"] / bare_run["latency_p99_us"] for run, bare_run in pairs]
        )


def format_errors(errors: dict) -> str:
    total = sum(errors.values())
    if total == 0:
        return "0"
    return ", ".join(f"{count} {kind}" for kind, count in errors.items() if count)


def build_table(summaries: list[dict]) -> str:
    headers = [
        "route", "bytes/response", "req/s", "p50 ms", "p99 ms", "req/s ÷ bare", "p99 ÷ bare", "errors",
        "server CPU", "wrk CPU",
    ]
    rows = [
        [
            summary["name"],
            f"{summary['response_bytes']:.0f}",
            format_spread(summary["requests_per_second"], 0),
            format_spread(summary["p50_ms"], 2),
            format_spread(summary["p99_ms"], 2),
            format_spread(summary["requests_per_second_over_bare"], 2),
            format_spread(summary["p99_over_bare"], 2),
            format_errors(summary["errors"]),
            f"{summary['server_cpu_cores']['median']:.2f}",
            f"{summary['wrk_cpu_cores']['median']:.2f}",
        ]
        for summary in summaries
    ]
    return format_table(headers, rows)


def run_benchmark(wrk: str, args, log_dir: Path, env: dict) -> dict:
    """Start the app and the bare server, probe the routes, measure them and return the summaries."""
    bodies = log_dir / "predict_bodies.jsonl"
    write_predict_bodies(bodies)
    skipped = []

    with running_gunicorn("app", ["wsgi:app"], log_dir, env=env) as app:
        wait_until_ok(app, "/digits/0", START_TIMEOUT_SECONDS, 0.1)
        wait_for_digit_sections(app, START_TIMEOUT_SECONDS)
        page_bytes = len(http_request(app.base_url + "/digits/0")[2])
        routes = app_routes(bodies, args)
        reason = probe_predict(app.base_url, bodies)
        if reason:
            skipped.append({"route": "POST /api/predict", "reason": reason})
            routes = [route for route in routes if route.method != "POST"]

        bare_env = {**env, "BENCH_PAGE_BYTES": str(page_bytes)}
        bare_arguments = ["--config", "bench/bare_gunicorn_conf.py", "bench.bare_app:app"]
        with running_gunicorn("bare", bare_arguments, log_dir, env=bare_env) as bare:
            wait_until_ok(bare, "/bare/0", START_TIMEOUT_SECONDS, 0.1)
            bare_bytes = len(http_request(bare.base_url + "/bare/0")[2])
            if bare_bytes != page_bytes:
                raise RuntimeError(f"the bare page has {bare_bytes} bytes, expected {page_bytes}")
            routes.append(Route("bare Flask page", "bare", "/bare/%d", args.indexes))
            runs = measure_routes(wrk, routes, {"app": app, "bare": bare}, args)

    summaries = [summarize_route(route, runs[route.name]) for route in routes]
    add_ratios(summaries, summaries[-1])
    return {"page_bytes": page_bytes, "routes": summaries, "skipped": skipped}


def build_notes(results: dict, machine: dict, args) -> list[str]:
    """Return the caveats that a reader needs next to the table."""
    wrk_cores = max(summary["wrk_cpu_cores"]["median"] for summary in results["routes"])
    notes = [
        f"wrk runs on the same machine as the server and used up to {wrk_cores:.2f} of "
        f"{machine['usable_cpus']} usable CPUs, so the req/s are lower bounds of what the server alone could do.",
        "wrk (4.x) sends the next request only after a response, so p99 leaves out the time that queued "
        "requests would wait under a fixed arrival rate (coordinated omission).",
        f"PNG requests cycle through {args.png_indexes} digits; after the warm-up each worker serves them "
        "from its in-memory PNG cache, so the PNG row measures cache hits, not PNG encoding.",
    ]
    busy = min(summary["server_cpu_cores"]["median"] + summary["wrk_cpu_cores"]["median"] for summary in results["routes"])
    if busy < 0.8 * machine["usable_cpus"]:
        notes.append(
            f"server CPU plus wrk CPU fell to {busy:.2f} of {machine['usable_cpus']} usable CPUs on one route, "
            "so other processes took CPU time during the runs, or the server waited on something other than the CPU."
        )
    hooks = results["server"]["hooks_left_out_of_bare"]
    if PER_REQUEST_HOOKS & set(hooks):
        notes.append(f"warning: gunicorn.conf.py defines per-request hooks {hooks}; the bare server runs without them.")
    for skip in results["skipped"]:
        notes.append(f"skipped {skip['route']}: {skip['reason']}")
    if args.quick:
        notes.append("--quick smoke run: too short and too few repeats for conclusions.")
    return notes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.mnist_dir:
        os.environ["MNIST_DIR"] = str(args.mnist_dir)
    wrk = ensure_wrk()
    machine, versions = machine_info(), library_versions()
    server = {**effective_server_settings(), "hooks_left_out_of_bare": shipped_gunicorn_hooks()}

    print_header("HTTP throughput and latency under gunicorn (bench/serve.py)", machine, versions)
    print(f"server: {server['workers']} workers, worker class {server['worker_class']}, "
          f"{server['threads']} threads each")
    print(f"wrk: {wrk_version(wrk)}, {args.threads} threads, {args.connections} connections, "
          f"{args.duration} s x {args.repeats} runs per route after {args.warmup} s warm-up")

    env, env_notes = server_environment()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as log_dir:
        try:
            results = run_benchmark(wrk, args, Path(log_dir), env)
        except (RuntimeError, IDXError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    results["server"] = server
    results["wrk"] = {"version": wrk_version(wrk), "threads": args.threads, "connections": args.connections,
                      "duration_s": args.duration, "repeats": args.repeats, "warmup_s": args.warmup}
    notes = build_notes(results, machine, args) + env_notes

    runs = "1 run" if args.repeats == 1 else f"median (min-max) of {args.repeats} runs"
    print(f"\nfull page: {results['page_bytes']} bytes; {runs}; CPU columns in cores (CPU seconds per second)\n")
    print(build_table(results["routes"]))
    print()
    for note in notes:
        print(f"note: {note}")
    path = write_results("serve", {"quick": args.quick, "machine": machine, "versions": versions,
                                   **results, "notes": notes})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
