"""Operations endpoints and instrumentation: /healthz, /readyz, /metrics, request ids and logs.

Readiness is per process. warm_up() loads the model, runs one inference, loads the test
set and predicts all of it, then stores the result for this process. Under gunicorn the
post_worker_init hook in gunicorn.conf.py calls it before the worker accepts requests.
Where nothing did (the Flask test client, `flask run`), the first /readyz request runs it.
A failed warm-up is not stored, so /readyz tries again on the next request.

Metrics use prometheus_client. When PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py sets
it), every worker writes its values there and /metrics adds up all workers' files.
Otherwise /metrics shows this process's default registry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort
from flask import Blueprint, Flask, Response, current_app, g, has_request_context, jsonify, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client import CONTENT_TYPE_LATEST

from webapp.digit_pages import current_digit_pages
from webapp.process_cache import ProcessCache
from webapp.resources import current_model, current_test_set, model_card

log = logging.getLogger(__name__)

bp = Blueprint("ops", __name__)

REQUEST_ID_HEADER = "X-Request-ID"
# Incoming ids are echoed and logged only if they are short and plain. This keeps clients
# from injecting line breaks or fake fields into the logs. Other ids are replaced.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:@+-]{1,128}")
# Other methods are counted as "other", so that clients cannot create new label values.
KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

REQUESTS = Counter(
    "mnist_http_requests",
    "HTTP requests by Flask endpoint (unmatched for unknown URLs), method and status code.",
    ["endpoint", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "mnist_http_request_duration_seconds",
    "Time from the start of the Flask request to the response, by Flask endpoint.",
    ["endpoint"],
)
ERRORS = Counter(
    "mnist_http_errors",
    "Error responses (status 400 and above) by kind.",
    ["kind"],
)
INFERENCE_SECONDS = Histogram(
    "mnist_inference_duration_seconds",
    "Time of one ONNX Runtime call for the API's predictions.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
INFERENCE_BATCH_SIZE = Histogram(
    "mnist_inference_batch_size",
    "Images in one ONNX Runtime call for the API's predictions.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)

ERROR_KINDS = {
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "no_digit_found",
}


# ---------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------


@bp.get("/healthz")
def healthz():
    """Return 200 while the process serves requests; it checks nothing else."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Report whether this process is warm, warming it first if nothing has yet."""
    app = current_app._get_current_object()
    try:
        details = warm_up(app)
    except Exception as exc:  # any failure means "not ready"; the reason goes to the probe
        reason = f"{type(exc).__name__}: {first_line(exc)}"
        log_failed_warm_up(reason)
        return jsonify(status="not ready", reason=reason), 503
    return jsonify(
        status="ready",
        gunicorn_workers=app.config.get("GUNICORN_WORKERS"),
        pid=os.getpid(),
        digit_sections_cached=current_digit_pages().section_cache_info().currsize,
        **details,
    )


@bp.get("/metrics")
def metrics():
    """Return the metrics in the Prometheus text format, added up over all workers under gunicorn."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


# ---------------------------------------------------------------------------
# Warm-up and readiness
# ---------------------------------------------------------------------------

_warm_states: ProcessCache[dict] = ProcessCache()
_last_failure: list[str] = []  # the last reason logged, so that repeated probes log it once


def warm_up(app: Flask, gunicorn_workers: int | None = None) -> dict:
    """Load the model and the test set in this process and predict them. Return the details for /readyz.

    Runs once per process and settings, and later calls return the stored result. Raises
    StartupError for invalid provider settings and ModelError for an unusable model file.
    """
    if gunicorn_workers is not None:
        app.config["GUNICORN_WORKERS"] = gunicorn_workers
    config = app.config
    key = (
        config["MODEL_PATH"],
        config["MNIST_DIR"],
        config["ORT_PROVIDERS"],
        config["ORT_PROVIDER_FALLBACK"],
        config["ORT_INTRA_OP_THREADS"],
    )
    with app.app_context():
        return _warm_states.get(key, run_warm_up)


def run_warm_up() -> dict:
    start = time.perf_counter()
    model = current_model()
    sha256 = model_sha256(model.path)
    log_event(
        logging.INFO,
        "model_loaded",
        path=model.path,
        sha256=sha256,
        providers=",".join(model.providers),
        intra_op_threads=model.settings.intra_op_threads,
        onnxruntime=ort.__version__,
    )
    card_sha256 = model_card().get("sha256")
    if card_sha256 and card_sha256 != sha256:
        log_event(logging.WARNING, "model_card_mismatch", path=model.path, sha256=sha256, card_sha256=card_sha256)

    model.predict(np.zeros((1, 1, 28, 28), dtype=np.float32))
    test_set = current_test_set()
    test_set.probabilities(model)
    seconds = time.perf_counter() - start
    log_event(logging.INFO, "warm_up_done", seconds=f"{seconds:.3f}", test_digits=len(test_set))
    _last_failure.clear()
    return {
        "onnxruntime_version": ort.__version__,
        "execution_providers": list(model.providers),
        "requested_providers": list(current_app.config["ORT_PROVIDERS"]),
        "intra_op_threads": model.settings.intra_op_threads,
        "model_file": model.path.name,
        "model_sha256": sha256,
        "test_digits": len(test_set),
        "warm_up_seconds": round(seconds, 3),
    }


def prerender_digit_pages(app: Flask) -> None:
    """Render and cache the section of every test digit, and log how many and how long.

    The sections are rendered for the script root in the SCRIPT_NAME environment
    variable, which gunicorn puts into every request, or "" without it. Pages under
    another root (a proxy's prefix header) render their sections on first request.
    """
    start = time.perf_counter()
    script_root = os.environ.get("SCRIPT_NAME", "").rstrip("/")
    try:
        # A request context provides url_for and the script root.
        with app.test_request_context("/", base_url=f"http://localhost{script_root}/"):
            count = current_digit_pages().prerender(range(len(current_test_set())))
    except Exception as exc:  # the pages still render on first request
        log_event(logging.ERROR, "digit_sections_failed", reason=f"{type(exc).__name__}: {first_line(exc)}")
        return
    log_event(logging.INFO, "digit_sections_rendered", count=count, seconds=f"{time.perf_counter() - start:.3f}")


def start_prerender(app: Flask) -> threading.Thread:
    """Run prerender_digit_pages in a daemon thread, so that the process serves meanwhile."""
    thread = threading.Thread(target=prerender_digit_pages, args=(app,), name="prerender-digit-pages", daemon=True)
    thread.start()
    return thread


def log_failed_warm_up(reason: str) -> None:
    if _last_failure != [reason]:
        log_event(logging.ERROR, "warm_up_failed", reason=reason)
        _last_failure[:] = [reason]


@lru_cache(maxsize=8)
def model_sha256(path: Path) -> str:
    """Return the SHA-256 of the model file, read once per process and path."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else ""


# ---------------------------------------------------------------------------
# Request ids, metrics and error logs for every request
# ---------------------------------------------------------------------------


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(start_request)
    app.after_request(finish_request)


def start_request() -> None:
    g.request_started = time.perf_counter()
    incoming = request.environ.get("HTTP_X_REQUEST_ID", "")
    g.request_id = incoming if REQUEST_ID_PATTERN.fullmatch(incoming) else secrets.token_hex(16)


def finish_request(response: Response) -> Response:
    if "request_id" not in g:  # another before_request hook failed before start_request ran
        start_request()
    # The objects behind the proxies, looked up once: each proxy access costs a context lookup.
    state, current = g._get_current_object(), request._get_current_object()
    response.headers[REQUEST_ID_HEADER] = state.request_id

    rule, method, status = current.url_rule, current.method, response.status_code
    endpoint = rule.endpoint if rule else "unmatched"
    method = method if method in KNOWN_METHODS else "other"
    request_metrics(endpoint, method, status).observe(time.perf_counter() - state.request_started)

    if status >= 400:
        kind = error_kind(response.status_code)
        ERRORS.labels(kind).inc()
        body = response.get_json(silent=True) if response.is_json else None
        message = body.get("error") if isinstance(body, dict) else None
        log_event(
            logging.ERROR if response.status_code >= 500 else logging.INFO,
            "request_error",
            method=request.method,
            path=request.path,
            endpoint=endpoint,
            status=response.status_code,
            kind=kind,
            error=message[:300] if isinstance(message, str) else None,
        )
    return response


class RequestMetrics:
    """The request counter and duration histogram for one endpoint, method and status."""

    def __init__(self, endpoint: str, method: str, status: int) -> None:
        self.count = REQUESTS.labels(endpoint, method, str(status))
        self.seconds = REQUEST_SECONDS.labels(endpoint)

    def observe(self, seconds: float) -> None:
        self.count.inc()
        self.seconds.observe(seconds)


# Labelled metrics by (endpoint, method, status), so that a request skips the label
# checks of prometheus_client's labels(). The keys are bounded: endpoints and methods
# come from fixed sets, and status codes from the app.
_request_metrics: dict[tuple[str, str, int], RequestMetrics] = {}


def request_metrics(endpoint: str, method: str, status: int) -> RequestMetrics:
    key = (endpoint, method, status)
    metrics = _request_metrics.get(key)
    if metrics is None:
        metrics = _request_metrics.setdefault(key, RequestMetrics(endpoint, method, status))
    return metrics


def error_kind(status: int) -> str:
    if status >= 500:
        return "server_error"
    return ERROR_KINDS.get(status, "input_error")


def observe_inference(batch_size: int, seconds: float) -> None:
    INFERENCE_BATCH_SIZE.observe(batch_size)
    INFERENCE_SECONDS.observe(seconds)


# ---------------------------------------------------------------------------
# Structured logs: one line per event, key=value
# ---------------------------------------------------------------------------

PLAIN_VALUE = re.compile(r"[A-Za-z0-9._:/,@+-]+")


def format_fields(fields: dict) -> str:
    """Format fields as key=value; values with spaces, quotes or line breaks are JSON strings."""
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        parts.append(f"{key}={text if PLAIN_VALUE.fullmatch(text) else json.dumps(text)}")
    return " ".join(parts)


def log_event(level: int, event: str, **fields) -> None:
    log.log(level, "event=%s %s", event, format_fields(fields))


class RequestIdFilter(logging.Filter):
    """Adds the current request's id to each record as `request_id` ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


class KeyValueFormatter(logging.Formatter):
    """Formats a record as one key=value line, with any traceback as one JSON string."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        fields = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "request_id": getattr(record, "request_id", "-"),
        }
        line = format_fields(fields)
        # Messages of log_event are key=value already; any other message becomes one field.
        line += " " + (message if message.startswith("event=") else format_fields({"message": message}))
        if record.exc_info:
            line += " " + format_fields({"exception": self.formatException(record.exc_info)})
        return line


def configure_logging(level: str = "info") -> None:
    """Send the webapp loggers' records to stderr as key=value lines; called in each gunicorn worker."""
    logger = logging.getLogger("webapp")
    if any(isinstance(handler.formatter, KeyValueFormatter) for handler in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(KeyValueFormatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
