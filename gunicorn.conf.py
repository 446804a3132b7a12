"""gunicorn settings, read automatically by `gunicorn wsgi:app` from the working directory.

Each worker is a separate process with its own ONNX Runtime session, created after the
fork. Environment variables override the defaults below: GUNICORN_BIND, WEB_CONCURRENCY
(workers), GUNICORN_THREADS (request threads per worker) and ORT_INTRA_OP_THREADS
(threads of each worker's session).
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")

# NOTE: no preload. Each worker imports the app, and with it onnxruntime, after the fork
# and builds its own ONNX Runtime session. A session and its thread pool do not survive a
# fork, and onnxruntime in the master makes workers hang at exit (see on_starting).
preload_app = False

# gunicorn 27's control socket (for gunicornc) defaults to one path per user, so each
# instance on a host would unlink the socket of the one started before it. This app does
# not use it.
control_socket_disable = True

# Threaded workers: browsers open spare connections ahead of time, and a sync worker
# blocks on such an idle connection until its timeout, stalling every page behind it.
worker_class = "gthread"
# NOTE: gthread sets no timeout for reading a request body. A client that sends its body
# slowly keeps a request thread until it finishes or disconnects, so threads x workers
# such clients stall the server. Deploy behind a proxy that buffers request bodies.

accesslog = "-"  # stdout
errorlog = "-"  # stderr
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'


def cpu_cores() -> int:
    """Return the CPUs this process may run on, which a container or taskset can limit."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def positive_int_from_env(name: str, default: int) -> int:
    value = os.environ.get(name) or str(default)
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        sizing_errors.append(f"environment variable {name}={value!r} is invalid; expected a positive integer")
        return default
    return number


# Workers x intra-op threads stays at or below the cores unless WEB_CONCURRENCY sets the
# workers: each worker's session runs ORT_INTRA_OP_THREADS threads at once.
sizing_errors: list[str] = []
cores = cpu_cores()
intra_op_threads = positive_int_from_env("ORT_INTRA_OP_THREADS", 1)
# Request threads per worker. Each request holds the GIL almost all the time, so more
# threads add no throughput. With 2 workers on 2 cores, 1, 2, 4 and 8 threads served
# digit pages at about the same rate, and 2 gave the lowest p99 on most routes
# (bench/serve.py; the sweep is in docs/benchmarks.md).
threads = positive_int_from_env("GUNICORN_THREADS", 2)
if os.environ.get("WEB_CONCURRENCY"):
    workers = positive_int_from_env("WEB_CONCURRENCY", 1)
    workers_source = "WEB_CONCURRENCY"
else:
    workers = max(1, cores // intra_op_threads)
    workers_source = "cores/ORT_INTRA_OP_THREADS"


def on_starting(server):
    """Check settings and files in the master, so a bad deployment stops with one clear line."""
    # NOTE: only webapp.settings is imported here. Importing onnxruntime in the master
    # made every forked worker hang at exit until graceful_timeout (30 s) ran out
    # (onnxruntime 1.32, gunicorn 27.0.1).
    from webapp.settings import StartupError, check_test_files, load_settings

    try:
        if sizing_errors:
            raise StartupError(sizing_errors[0])
        settings = load_settings()
        check_test_files(settings["MNIST_DIR"])
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)

    # server.cfg.workers includes a --workers option given on the command line.
    total_threads = server.cfg.workers * intra_op_threads
    server.log.info(
        "event=sizing cores=%d workers=%d workers_from=%s intra_op_threads=%d total_threads=%d",
        cores, server.cfg.workers, workers_source, intra_op_threads, total_threads,
    )
    if total_threads > cores:
        server.log.warning(
            "event=sizing_oversubscribed workers=%d intra_op_threads=%d cores=%d",
            server.cfg.workers, intra_op_threads, cores,
        )
    prepare_metrics_dir(server)
    boot_error_dirs.append(tempfile.mkdtemp(prefix="mnist-boot-"))
    stop_despite_second_boot_error(server)


def prepare_metrics_dir(server):
    """Point prometheus_client's multiprocess mode at an empty folder, which workers inherit.

    A folder named by PROMETHEUS_MULTIPROC_DIR is emptied of metric files from an earlier
    run; otherwise a new temporary folder is created, and on_exit removes it.
    """
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
    else:
        folder = tempfile.mkdtemp(prefix="mnist-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        created_metrics_dirs.append(folder)
    server.log.info("event=metrics_dir path=%s", folder)


created_metrics_dirs: list[str] = []
# A folder per server run, created by the master before it forks. The first worker that
# fails to boot creates a file in it, so that one `error:` line is printed however many
# workers fail at once (they share the settings and files, so their messages match).
boot_error_dirs: list[str] = []


def stop_despite_second_boot_error(server) -> None:
    """Let the master stop cleanly when several workers fail to boot at once.

    NOTE: in gunicorn 27.0.1 the master halts on the first worker that exits with
    status 3, and its stop() reaps the next such worker by raising HaltServer again.
    That escapes halt(), so the server printed a traceback and exited with status 1.
    Calling stop() again, once per worker at most, stops the workers that remain.
    """
    from gunicorn.errors import HaltServer

    stop = server.stop

    def stop_all_workers(graceful: bool = True) -> None:
        for _ in range(len(server.WORKERS) + 1):
            try:
                stop(graceful)
                return
            except HaltServer:
                server.log.info("event=worker_boot_failed_during_stop workers_left=%d", len(server.WORKERS))

    server.stop = stop_all_workers


def print_boot_error_once(message: str) -> None:
    """Print `error: message` unless another worker of this server has printed its error."""
    if boot_error_dirs:
        try:
            os.close(os.open(Path(boot_error_dirs[0]) / "reported", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    print(f"error: {message}", file=sys.stderr, flush=True)


def post_worker_init(worker):
    """Warm up the worker before it accepts requests; stop the server on a settings or model error."""
    # Runs in the worker after the fork, so importing onnxruntime here is safe.
    from gunicorn.arbiter import Arbiter

    from webapp import ops
    from webapp.inference import ModelError
    from webapp.settings import StartupError

    ops.configure_logging(worker.cfg.loglevel)
    try:
        ops.warm_up(worker.wsgi, gunicorn_workers=worker.cfg.workers)
    except (StartupError, ModelError) as exc:
        print_boot_error_once(str(exc))
        # Exit code 3 makes the master stop instead of starting a new worker.
        sys.exit(Arbiter.WORKER_BOOT_ERROR)
    except Exception:
        # The worker serves, but /readyz reports 503 with the reason and retries the warm-up.
        worker.log.exception("event=warm_up_failed pid=%d", worker.pid)
        return
    # While the worker serves, a background thread renders every digit page's section
    # (about 2 s of CPU time for 10,000 digits), so pages do not pay for it later.
    ops.start_prerender(worker.wsgi)


def child_exit(server, worker):
    """Remove the live-gauge files of a worker that has exited (prometheus_client multiprocess mode)."""
    # prometheus_client starts no threads on import, unlike onnxruntime, so the master may import it.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    for folder in created_metrics_dirs + boot_error_dirs:
        shutil.rmtree(folder, ignore_errors=True)
