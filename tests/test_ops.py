"""Health, readiness, metrics, request ids, logs, provider choice and deployment files.

The gunicorn tests start the real server on 127.0.0.1 and read its log file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import runpy
import shutil
import subprocess
import sys
import time
from pathlib import Path

import onnxruntime as ort
import pytest

from conftest import GUNICORN, REPO_ROOT, fetch, free_port, gunicorn_server
from webapp import StartupError, create_app, ops
from webapp.providers import CPU_PROVIDER, configured_providers, select_providers

CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
ALL_PROVIDERS = [TENSORRT, CUDA, "OpenVINOExecutionProvider", CPU_PROVIDER]
CPU_ONLY = [CPU_PROVIDER]
GPU_BUILD = [TENSORRT, CUDA, CPU_PROVIDER]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def metric_value(text: str, name: str, **labels) -> float:
    """Return the sample `name` with exactly these labels from Prometheus text, or 0 if absent."""
    expected = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
        if found == expected:
            return float(match.group(3))
    return 0.0


def run_gunicorn_to_exit(env: dict, timeout: float = 90) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env, "GUNICORN_BIND": f"127.0.0.1:{free_port()}"}
    return subprocess.run([GUNICORN, "wsgi:app"], cwd=REPO_ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)


PIXELS_BODY = json.dumps({"pixels": [0.0] * 392 + [1.0] * 392}).encode()
JSON_HEADERS = {"Content-Type": "application/json"}


# ---------------------------------------------------------------------------
# Provider selection (pure)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "requested, available, fallback, expected",
    [
        ([CPU_PROVIDER], CPU_ONLY, "cpu", (CPU_PROVIDER,)),
        ([CPU_PROVIDER], CPU_ONLY, "fail", (CPU_PROVIDER,)),
        ([CUDA], GPU_BUILD, "cpu", (CUDA, CPU_PROVIDER)),
        ([CUDA], GPU_BUILD, "fail", (CUDA, CPU_PROVIDER)),
        ([CUDA, CPU_PROVIDER], GPU_BUILD, "fail", (CUDA, CPU_PROVIDER)),
        ([TENSORRT, CUDA], GPU_BUILD, "fail", (TENSORRT, CUDA, CPU_PROVIDER)),
        ([CUDA], CPU_ONLY, "cpu", (CPU_PROVIDER,)),
        ([CUDA, CPU_PROVIDER], CPU_ONLY, "cpu", (CPU_PROVIDER,)),
        ([TENSORRT, CUDA], [CUDA, CPU_PROVIDER], "cpu", (CUDA, CPU_PROVIDER)),
        ([CUDA, CUDA, CPU_PROVIDER, CPU_PROVIDER], GPU_BUILD, "cpu", (CUDA, CPU_PROVIDER)),
        ([CPU_PROVIDER, CUDA], GPU_BUILD, "cpu", (CPU_PROVIDER, CUDA)),
    ],
)
def test_select_providers(requested, available, fallback, expected):
    assert select_providers(requested, available, fallback, ALL_PROVIDERS).providers == expected


def test_select_providers_reports_unavailable():
    choice = select_providers([TENSORRT, CUDA, CPU_PROVIDER], CPU_ONLY, "cpu", ALL_PROVIDERS)
    assert choice.unavailable == (TENSORRT, CUDA)
    assert choice.providers == (CPU_PROVIDER,)


@pytest.mark.parametrize(
    "requested, available, fallback, fragments",
    [
        ([CUDA], CPU_ONLY, "fail", [CUDA, "does not have", "it has: CPUExecutionProvider", "ORT_PROVIDER_FALLBACK=cpu"]),
        ([CUDA, CPU_PROVIDER], CPU_ONLY, "fail", ["requests CUDAExecutionProvider,", "onnxruntime-gpu"]),
        (["Bogus"], CPU_ONLY, "cpu", ["unknown execution providers: Bogus", "build has: CPUExecutionProvider"]),
        (["Bogus", "Other", CPU_PROVIDER], GPU_BUILD, "cpu", ["Bogus, Other", f"{TENSORRT}, {CUDA}, {CPU_PROVIDER}"]),
        (["cuda"], CPU_ONLY, "cpu", ["unknown execution providers: cuda", f"did you mean {CUDA}?"]),
        (["cpuexecutionprovider"], CPU_ONLY, "cpu", [f"did you mean {CPU_PROVIDER}?"]),
        ([], CPU_ONLY, "cpu", ["ORT_PROVIDERS is empty"]),
        ([CPU_PROVIDER], CPU_ONLY, "gpu", ["ORT_PROVIDER_FALLBACK='gpu' is invalid", "cpu, fail"]),
    ],
)
def test_select_providers_rejects(requested, available, fallback, fragments):
    with pytest.raises(StartupError) as raised:
        select_providers(requested, available, fallback, ALL_PROVIDERS)
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message
    assert "\n" not in message


def test_available_provider_is_never_unknown():
    # A provider that a build has counts as known even if the `known` list lacks it.
    assert select_providers(["MyExecutionProvider"], ["MyExecutionProvider", CPU_PROVIDER], "fail").providers == (
        "MyExecutionProvider",
        CPU_PROVIDER,
    )


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, fragment",
    [
        ({"ORT_PROVIDER_FALLBACK": "maybe"}, "ORT_PROVIDER_FALLBACK='maybe' is invalid"),
        ({"ORT_PROVIDERS": " , "}, "ORT_PROVIDERS is empty"),
        ({"API_MAX_BATCH": 0}, "API_MAX_BATCH=0 is invalid"),
        ({"MAX_CONTENT_LENGTH": -1}, "MAX_CONTENT_LENGTH=-1 is invalid"),
    ],
)
def test_invalid_setting_stops_app(mnist_dir, model_path, config, fragment):
    with pytest.raises(StartupError, match=re.escape(fragment)):
        create_app({"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), **config})


def test_settings_from_environment(monkeypatch, mnist_dir, model_path):
    monkeypatch.setenv("ORT_PROVIDERS", f" {CUDA} , {CPU_PROVIDER} ,")
    monkeypatch.setenv("ORT_PROVIDER_FALLBACK", "fail")
    monkeypatch.setenv("API_MAX_BATCH", "8")
    monkeypatch.setenv("MAX_CONTENT_LENGTH", "1000")
    app = create_app({"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path)})
    assert app.config["ORT_PROVIDERS"] == (CUDA, CPU_PROVIDER)
    assert app.config["ORT_PROVIDER_FALLBACK"] == "fail"
    assert app.config["API_MAX_BATCH"] == 8
    assert app.config["MAX_CONTENT_LENGTH"] == 1000


# ---------------------------------------------------------------------------
# /healthz and /readyz through the test client
# ---------------------------------------------------------------------------


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_reports_real_settings(client, model_path):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json
    card = json.loads(model_path.with_suffix(".json").read_text())
    assert body["status"] == "ready"
    assert body["onnxruntime_version"] == ort.__version__
    assert body["execution_providers"] == [CPU_PROVIDER]
    assert body["requested_providers"] == [CPU_PROVIDER]
    assert body["intra_op_threads"] == 1
    assert body["gunicorn_workers"] is None
    assert body["pid"] == os.getpid()
    assert body["model_file"] == "mnist.onnx"
    assert body["model_sha256"] == hashlib.sha256(model_path.read_bytes()).hexdigest()
    assert body["model_sha256"] == card["sha256"]
    assert body["test_digits"] == 10_000


def test_readyz_reports_intra_op_threads(mnist_dir, model_path):
    app = create_app({"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "ORT_INTRA_OP_THREADS": 2})
    body = app.test_client().get("/readyz").json
    assert body["intra_op_threads"] == 2


def test_readyz_503_until_data_is_readable(tmp_path, mnist_dir, model_path):
    labels = next(mnist_dir.glob("t10k-labels-idx1-ubyte*"))
    images = next(mnist_dir.glob("t10k-images-idx3-ubyte*"))
    shutil.copy(labels, tmp_path / labels.name)
    (tmp_path / images.name).write_bytes(images.read_bytes()[:1000])  # truncated
    app = create_app({"MNIST_DIR": str(tmp_path), "MODEL_PATH": str(model_path)})
    client = app.test_client()

    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["status"] == "not ready"
    assert images.name in response.json["reason"]
    assert client.get("/healthz").status_code == 200

    shutil.copy(images, tmp_path / images.name)  # a failed warm-up is retried on the next probe
    assert client.get("/readyz").status_code == 200


def test_unavailable_provider_falls_back_to_cpu(mnist_dir, model_path, caplog):
    configured_providers.cache_clear()  # the fallback is logged once per process
    app = create_app({"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "ORT_PROVIDERS": f"{CUDA},{CPU_PROVIDER}"})
    with caplog.at_level(logging.WARNING, logger="webapp.providers"):
        body = app.test_client().get("/readyz").json
    assert body["status"] == "ready"
    assert body["requested_providers"] == [CUDA, CPU_PROVIDER]
    assert body["execution_providers"] == [CPU_PROVIDER]
    assert any("event=provider_fallback" in record.getMessage() and CUDA in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    "providers, fragment",
    [(CUDA, "requests CUDAExecutionProvider, which this ONNX Runtime build does not have"), ("Bogus", "unknown execution providers: Bogus")],
)
def test_readyz_503_for_provider_error(mnist_dir, model_path, providers, fragment):
    app = create_app(
        {"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "ORT_PROVIDERS": providers, "ORT_PROVIDER_FALLBACK": "fail"}
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["reason"].startswith("StartupError: ")
    assert fragment in response.json["reason"]


# ---------------------------------------------------------------------------
# /metrics and request ids through the test client
# ---------------------------------------------------------------------------


def test_prerender_fills_digit_cache(mnist_dir, model_path):
    app = create_app({"TESTING": True, "MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "DIGIT_HTML_CACHE": 25})
    pages = app.extensions["mnist_digit_pages"]
    assert app.test_client().get("/readyz").json["digit_sections_cached"] == 0

    ops.start_prerender(app).join(timeout=60)
    assert pages.section_cache_info().currsize == 25
    assert app.test_client().get("/readyz").json["digit_sections_cached"] == 25

    # The prerendered sections are what the pages serve: digit 24 is a hit, digit 25 a miss.
    hits = pages.section_cache_info().hits
    assert app.test_client().get("/digits/24").status_code == 200
    assert pages.section_cache_info().hits == hits + 1
    assert app.test_client().get("/digits/25").status_code == 200
    assert pages.section_cache_info().hits == hits + 1


def test_prerender_uses_script_name(monkeypatch, mnist_dir, model_path):
    monkeypatch.setenv("SCRIPT_NAME", "/mnist")
    app = create_app({"TESTING": True, "MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "DIGIT_HTML_CACHE": 3})
    pages = app.extensions["mnist_digit_pages"]
    ops.prerender_digit_pages(app)
    response = app.test_client().get("/digits/2", base_url="http://localhost/mnist")
    assert response.status_code == 200
    assert '<img src="/mnist/digits/2.png"' in response.text
    assert pages.section_cache_info().hits == 1


def test_metrics_count_requests(client):
    before = client.get("/metrics").text
    for _ in range(3):
        assert client.post("/api/predict", data=PIXELS_BODY, headers=JSON_HEADERS).status_code == 200
    assert client.post("/api/predict", data=b"[]", headers=JSON_HEADERS).status_code == 400
    assert client.get("/api/digits/99999").status_code == 404
    assert client.get("/no/such/page").status_code == 404
    response = client.get("/metrics")
    after = response.text

    assert response.status_code == 200
    assert response.mimetype == "text/plain"

    def increase(name, **labels):
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert increase("mnist_http_requests_total", endpoint="api.predict", method="POST", status="200") == 3
    assert increase("mnist_http_requests_total", endpoint="api.predict", method="POST", status="400") == 1
    assert increase("mnist_http_requests_total", endpoint="api.digit", method="GET", status="404") == 1
    assert increase("mnist_http_requests_total", endpoint="unmatched", method="GET", status="404") == 1
    assert increase("mnist_http_request_duration_seconds_count", endpoint="api.predict") == 4
    assert increase("mnist_http_errors_total", kind="input_error") == 1
    assert increase("mnist_http_errors_total", kind="not_found") == 2
    assert increase("mnist_inference_duration_seconds_count") == 3
    assert increase("mnist_inference_batch_size_count") == 3
    assert increase("mnist_inference_batch_size_sum") == 3


def test_metrics_label_unknown_method_as_other(client):
    client.open("/healthz", method="BREW")
    text = client.get("/metrics").text
    assert metric_value(text, "mnist_http_requests_total", endpoint="unmatched", method="other", status="405") >= 1
    assert 'method="BREW"' not in text


def test_request_id_echoed(client):
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123.x"})
    assert response.headers["X-Request-ID"] == "abc-123.x"


@pytest.mark.parametrize("incoming", [None, "", "has spaces", "x" * 129, 'quote"d'])
def test_request_id_generated(client, incoming):
    headers = {} if incoming is None else {"X-Request-ID": incoming}
    response = client.post("/api/predict", data=b"{", headers={**headers, **JSON_HEADERS})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_log_line_carries_request_id(app):
    from webapp.ops import KeyValueFormatter, RequestIdFilter, log_event

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("webapp.ops")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with app.test_request_context(headers={"X-Request-ID": "req-42"}):
            app.preprocess_request()
            log_event(logging.INFO, "request_error", status=400, error='bad "pixels"\nsecond line')
            try:
                raise ValueError("boom")
            except ValueError:
                logger.exception("plain message")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)

    lines = [KeyValueFormatter().format(record) for record in records]
    assert len(lines) == 2
    assert "request_id=req-42 event=request_error status=400" in lines[0]
    assert 'error="bad \\"pixels\\"\\nsecond line"' in lines[0]
    assert 'message="plain message"' in lines[1]
    assert "exception=" in lines[1]
    assert "ValueError: boom" in lines[1]
    assert all("\n" not in line for line in lines)


# ---------------------------------------------------------------------------
# Under gunicorn
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(mnist_dir, model_path, tmp_path_factory):
    env = {"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "WEB_CONCURRENCY": "2", "ORT_INTRA_OP_THREADS": "1"}
    with gunicorn_server(env, tmp_path_factory.mktemp("gunicorn") / "server.log", warm_workers=2) as running:
        yield running


def test_readyz_under_gunicorn(server, model_path):
    for _ in range(4):
        status, _, body = fetch(server.base + "/readyz")
        assert status == 200
        report = json.loads(body)
        assert report["gunicorn_workers"] == 2
        assert report["execution_providers"] == [CPU_PROVIDER]
        assert report["intra_op_threads"] == 1
        assert report["onnxruntime_version"] == ort.__version__
        assert report["model_sha256"] == hashlib.sha256(model_path.read_bytes()).hexdigest()
        assert report["pid"] != os.getpid()


def test_workers_prerender_digit_sections(server):
    deadline = time.monotonic() + 60
    while server.log().count("event=digit_sections_rendered") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert re.findall(r"event=digit_sections_rendered count=(\d+)", server.log()) == ["10000", "10000"]
    for _ in range(4):
        report = json.loads(fetch(server.base + "/readyz")[2])
        assert report["digit_sections_cached"] == 10_000


def test_metrics_add_up_workers(server):
    before = fetch(server.base + "/metrics")[2].decode()
    for _ in range(12):
        assert fetch(server.base + "/api/predict", PIXELS_BODY, JSON_HEADERS)[0] == 200
    assert fetch(server.base + "/api/predict", b"{", JSON_HEADERS)[0] == 400
    status, headers, body = fetch(server.base + "/metrics")
    after = body.decode()

    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    labels = {"endpoint": "api.predict", "method": "POST"}
    assert metric_value(after, "mnist_http_requests_total", status="200", **labels) - metric_value(
        before, "mnist_http_requests_total", status="200", **labels
    ) == 12
    assert metric_value(after, "mnist_http_requests_total", status="400", **labels) - metric_value(
        before, "mnist_http_requests_total", status="400", **labels
    ) == 1
    assert metric_value(after, "mnist_inference_batch_size_count") - metric_value(before, "mnist_inference_batch_size_count") == 12


def test_logs_under_gunicorn(server, model_path):
    status, headers, _ = fetch(server.base + "/api/predict", b"[1]", {**JSON_HEADERS, "X-Request-ID": "trace-7"})
    assert status == 400
    assert headers["X-Request-ID"] == "trace-7"
    sha256 = hashlib.sha256(model_path.read_bytes()).hexdigest()

    # The app's log line and gunicorn's access-log line are written separately, and the
    # access line comes after the response is sent: wait for both.
    access_line = re.compile(r'"POST /api/predict HTTP/1.1" 400 .* request_id=trace-7')
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = server.log()
        if "request_id=trace-7 event=request_error" in log and access_line.search(log):
            break
        time.sleep(0.1)
    assert re.search(r"event=sizing cores=\d+ workers=2 workers_from=WEB_CONCURRENCY intra_op_threads=1", log)
    assert f"event=model_loaded path={model_path} sha256={sha256} providers={CPU_PROVIDER}" in log
    assert log.count("event=warm_up_done") == 2
    error_lines = [line for line in log.splitlines() if "request_id=trace-7 event=request_error" in line]
    assert len(error_lines) == 1
    assert "status=400" in error_lines[0]
    assert 'error="the request body must be a JSON object, got array"' in error_lines[0]
    assert access_line.search(log)


def test_metrics_dir_removed_at_exit(mnist_dir, model_path, tmp_path):
    env = {"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "WEB_CONCURRENCY": "1"}
    with gunicorn_server(env, tmp_path / "server.log") as running:
        match = re.search(r"event=metrics_dir path=(\S+)", running.log())
        assert match
        folder = Path(match.group(1))
        assert list(folder.glob("*.db"))
    assert running.process.returncode == 0
    assert not folder.exists()


@pytest.mark.parametrize(
    "providers, fragment",
    [(CUDA, "requests CUDAExecutionProvider, which this ONNX Runtime build does not have"), ("Bogus", "unknown execution providers: Bogus")],
)
def test_provider_error_stops_gunicorn(mnist_dir, model_path, providers, fragment):
    env = {
        "MNIST_DIR": str(mnist_dir),
        "MODEL_PATH": str(model_path),
        "WEB_CONCURRENCY": "1",
        "ORT_PROVIDERS": providers,
        "ORT_PROVIDER_FALLBACK": "fail",
    }
    result = run_gunicorn_to_exit(env)
    assert result.returncode == 3  # gunicorn's "worker failed to boot"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert fragment in errors[0]
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------
# gunicorn sizing (gunicorn.conf.py evaluated as gunicorn reads it)
# ---------------------------------------------------------------------------


def sizing(monkeypatch, **env) -> dict:
    for name in ("WEB_CONCURRENCY", "ORT_INTRA_OP_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(REPO_ROOT / "gunicorn.conf.py"))


def test_sizing_defaults_to_cores(monkeypatch):
    config = sizing(monkeypatch)
    assert config["workers"] == len(os.sched_getaffinity(0))
    assert config["intra_op_threads"] == 1
    assert config["preload_app"] is False
    assert config["sizing_errors"] == []


def test_sizing_divides_cores_by_threads(monkeypatch):
    config = sizing(monkeypatch, ORT_INTRA_OP_THREADS="2")
    assert config["workers"] == max(1, len(os.sched_getaffinity(0)) // 2)


def test_sizing_keeps_one_worker(monkeypatch):
    config = sizing(monkeypatch, ORT_INTRA_OP_THREADS="1000")
    assert config["workers"] == 1


def test_sizing_web_concurrency_wins(monkeypatch):
    config = sizing(monkeypatch, WEB_CONCURRENCY="7", ORT_INTRA_OP_THREADS="4")
    assert config["workers"] == 7
    assert config["workers_source"] == "WEB_CONCURRENCY"


@pytest.mark.parametrize("name, value", [("ORT_INTRA_OP_THREADS", "0"), ("ORT_INTRA_OP_THREADS", "two"), ("WEB_CONCURRENCY", "-1")])
def test_sizing_rejects_invalid(monkeypatch, name, value):
    config = sizing(monkeypatch, **{name: value})
    assert config["sizing_errors"] == [f"environment variable {name}={value!r} is invalid; expected a positive integer"]


def test_invalid_threads_stop_gunicorn(mnist_dir, model_path):
    result = run_gunicorn_to_exit({"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "ORT_INTRA_OP_THREADS": "0"})
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: environment variable ORT_INTRA_OP_THREADS='0' is invalid; expected a positive integer"]


# ---------------------------------------------------------------------------
# Deployment files
# ---------------------------------------------------------------------------


def dockerfile_copy_sources() -> list[str]:
    sources = []
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words and words[0] == "COPY":
            sources.extend(word for word in words[1:-1] if not word.startswith("--"))
    return sources


def test_dockerfile_copy_sources_exist():
    sources = dockerfile_copy_sources()
    assert "wsgi.py" in sources
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"


def test_dockerignore_keeps_copy_sources():
    included = {line[1:].rstrip("/") for line in (REPO_ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    for source in dockerfile_copy_sources():
        assert source.rstrip("/") in included, f".dockerignore leaves out {source}"


def test_serving_requirements_leave_out_torch():
    names = [line.split("==")[0].strip().lower() for line in (REPO_ROOT / "requirements-serve.txt").read_text().splitlines()]
    assert "torch" not in names
    assert "prometheus_client" in names


def test_wsgi_imports_without_torch(mnist_dir, model_path):
    # A finder that rejects torch simulates an environment without it.
    script = (
        "import sys, importlib.abc\n"
        "class NoTorch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is not installed in the serving image')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import wsgi\n"
        "response = wsgi.app.test_client().post('/api/predict', json={'pixels': [0.5] * 784})\n"
        "assert response.status_code == 200, response.text\n"
        "assert 'torch' not in sys.modules\n"
        "print('served without torch')\n"
    )
    env = {**os.environ, "MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path)}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "served without torch" in result.stdout
