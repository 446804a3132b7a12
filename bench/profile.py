"""Measure the CPU time that the app spends on one request, route by route, without a server.

Calls the WSGI apps directly, in this process, with the environ that gunicorn would pass.
So the figures leave out the server, the sockets and the client, and show what the app
and Flask cost. The bare Flask app of bench/serve.py (a page of the same size as a digit
page) is measured the same way, as the floor that any Flask route pays.

Every route gets the same number of requests per round, the rounds take the routes in
turn, and the table shows each route's fastest round, which is the one least disturbed by
other processes. Before the rounds, every test digit's page is requested once, so the
app's caches are as warm as in a server that has run for a while. With --profile ROUTE,
the script then runs cProfile on that route and prints the functions that took the most
time.

Results go to bench/results/profile.json.

Run from the repository root: python -m bench.profile --help
"""

if not __package__:
    raise SystemExit("error: run this script from the repository root as: python -m bench.profile")

import argparse
import cProfile
import io
import os
import pstats
import sys
import time

from bench.common import format_table, library_versions, machine_info, print_header, write_results

# (row name, path format, extra request headers); "{i}" takes the digit index.
ROUTES = {
    "bare": ("bare Flask page", "/bare/{i}", {}),
    "healthz": ("/healthz", "/healthz", {}),
    "png": ("PNG", "/digits/{i}.png", {}),
    "fragment": ("htmx fragment", "/digits/{i}", {"HX-Request": "true"}),
    "page": ("full page", "/digits/{i}", {}),
    "predict": ("POST /api/predict", "/api/predict", {}),
}
# PNGs cycle through this many digits, as in bench/serve.py, so that they come from the cache.
PNG_DIGITS = 100


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 rounds of 300 requests")
    parser.add_argument("--rounds", type=int, default=None, help="rounds over all routes (default: 7)")
    parser.add_argument("--requests", type=int, default=None, help="requests per route and round (default: 2000)")
    parser.add_argument(
        "--profile", choices=sorted(ROUTES), default=None,
        help="after the timing, run cProfile on this route and print the top functions",
    )
    parser.add_argument(
        "--mnist-dir", default=None,
        help="folder with the MNIST test files, passed to the app as MNIST_DIR (default: $MNIST_DIR)",
    )
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 7
    if args.requests is None:
        args.requests = 300 if args.quick else 2000
    if args.rounds < 1 or args.requests < 1:
        parser.error(f"--rounds and --requests must be at least 1, got {args.rounds} and {args.requests}")
    return args


def make_environ(method: str, path: str, headers: dict, body: bytes = b"") -> dict:
    """Return a WSGI environ like the one gunicorn builds for a request from 127.0.0.1."""
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench.profile",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body:
        environ["CONTENT_TYPE"] = "application/json"
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def call(wsgi_app, environ: dict) -> tuple[str, bytes]:
    """Run one request through wsgi_app, read the whole body, and return the status line and the body."""
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    chunks = wsgi_app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    return statuses[0], body


def build_requests(key: str, count: int, predict_bodies: list[bytes]) -> list[tuple[str, str, dict, bytes]]:
    """Return the requests of one route: (method, path, headers, body), varied like bench/serve.py."""
    _, path_format, headers = ROUTES[key]
    if key == "predict":
        return [("POST", path_format, headers, body) for body in predict_bodies]
    digits = PNG_DIGITS if key == "png" else count
    # A stride through the digits, so that consecutive requests show different pages.
    return [("GET", path_format.format(i=i * 7919 % digits), headers, b"") for i in range(digits)]


def time_route(wsgi_app, requests: list, count: int, offset: int) -> float:
    """Send `count` requests, starting at `offset` in the list, and return the CPU seconds per request."""
    start = time.process_time()
    for n in range(count):
        method, path, headers, body = requests[(offset + n) % len(requests)]
        call(wsgi_app, make_environ(method, path, headers, body))
    return (time.process_time() - start) / count


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.mnist_dir:
        os.environ["MNIST_DIR"] = args.mnist_dir
    os.environ.setdefault("SECRET_KEY", "bench-profile-" + os.urandom(16).hex())

    import json

    from bench import bare_app
    from webapp import create_app, ops
    from webapp.resources import current_test_set
    from webapp.testset import to_model_input

    app = create_app()
    ops.configure_logging("warning")
    ops.warm_up(app)
    with app.app_context():
        test_set = current_test_set()
        count = len(test_set)
        pixels = to_model_input(test_set.images[:10])
    predict_bodies = [json.dumps({"pixels": image[0].tolist()}).encode() for image in pixels]
    page_bytes = len(call(app.wsgi_app, make_environ("GET", "/digits/0", {}))[1])
    bare_app.PAGE = bare_app.build_page(page_bytes)

    machine, versions = machine_info(), library_versions()
    print_header("CPU time per request, without a server (bench/profile.py)", machine, versions)
    print(f"{count} test digits; {args.rounds} rounds of {args.requests} requests per route; "
          f"bare page {page_bytes} bytes, as large as the full page")

    apps = {key: (bare_app.app.wsgi_app if key == "bare" else app.wsgi_app) for key in ROUTES}
    requests = {key: build_requests(key, count, predict_bodies) for key in ROUTES}
    for key in ("page", "png"):  # warm the caches: every digit page and every cycled PNG once
        for method, path, headers, body in requests[key]:
            status, _ = call(apps[key], make_environ(method, path, headers, body))
            if not status.startswith("200"):
                print(f"error: {path} returned {status}; expected 200", file=sys.stderr)
                return 1

    samples: dict[str, list[float]] = {key: [] for key in ROUTES}
    for round_number in range(args.rounds):
        for key in ROUTES:
            samples[key].append(time_route(apps[key], requests[key], args.requests, round_number * args.requests))

    best = {key: min(values) for key, values in samples.items()}
    rows = [
        [ROUTES[key][0], f"{best[key] * 1e6:.1f}", f"{(best[key] - best['bare']) * 1e6:+.1f}"]
        for key in ROUTES
    ]
    print()
    print(format_table(["route", "CPU µs per request (fastest round)", "µs more than bare"], rows))
    notes = [
        "no server: gunicorn adds its own CPU time per request (parsing, logging, sockets), the same for every route.",
    ]
    if args.quick:
        notes.append("--quick smoke run: too few requests for conclusions.")
    print()
    for note in notes:
        print(f"note: {note}")

    results = {
        "quick": args.quick, "machine": machine, "versions": versions, "rounds": args.rounds,
        "requests_per_round": args.requests, "page_bytes": page_bytes,
        "routes": {key: {"name": ROUTES[key][0], "cpu_seconds_per_request": samples[key]} for key in ROUTES},
        "notes": notes,
    }
    path = write_results("profile", results)
    print(f"\nwrote {path}")

    if args.profile:
        print_profile(apps[args.profile], requests[args.profile], args.requests)
    return 0


def print_profile(wsgi_app, requests: list, count: int) -> None:
    """Run `count` requests under cProfile and print the 30 functions with the most own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for n in range(count):
        method, path, headers, body = requests[n % len(requests)]
        call(wsgi_app, make_environ(method, path, headers, body))
    profiler.disable()
    print()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    sys.exit(main())
