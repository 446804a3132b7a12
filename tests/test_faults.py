"""Faults under a real gunicorn on 127.0.0.1: broken files at start, a killed worker, SIGTERM.

A broken model or MNIST file stops the server at start with one `error:` line that names
the file and the command that replaces it. The master checks that the files exist and
that the test files parse (exit status 1). Each worker loads the model before it
serves, and a model that ONNX Runtime cannot use stops the server with exit status 3.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import fetch, gunicorn_server
from test_ops import JSON_HEADERS, PIXELS_BODY, run_gunicorn_to_exit

IMAGES = "t10k-images-idx3-ubyte"
LABELS = "t10k-labels-idx1-ubyte"
TRAIN_HINT = "python -m train --out"
DOWNLOAD_HINT = "python -m train.data download --dir"

# Two workers, so that the tests check for one `error:` line when both workers fail.
WORKERS = "2"


# ---------------------------------------------------------------------------
# Broken files at start-up
# ---------------------------------------------------------------------------


def flat_input_model(path: Path) -> None:
    """Write a valid ONNX model whose input is [N, 784] instead of [N, 1, 28, 28]."""
    import onnx
    from onnx import TensorProto, helper

    weights = helper.make_tensor("weights", TensorProto.FLOAT, [784, 10], np.zeros(7840, dtype=np.float32).tolist())
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "weights"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["output"], axis=1),
        ],
        "flat_input",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 784])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 10])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every ONNX Runtime release in use
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def truncated(data: bytes) -> bytes:
    return data[: int(len(data) * 0.6)]


def read_genuine(mnist_dir: Path, name: str) -> bytes:
    """Return the decompressed bytes of a genuine MNIST file, stored raw or as .gz."""
    compressed = mnist_dir / f"{name}.gz"
    if compressed.is_file():
        return gzip.decompress(compressed.read_bytes())
    return (mnist_dir / name).read_bytes()


def make_model(kind: str, folder: Path, genuine: Path) -> Path:
    path = folder / "model.onnx"
    if kind == "missing":
        return path
    if kind == "truncated":
        path.write_bytes(truncated(genuine.read_bytes()))
    elif kind == "text":
        path.write_text("This is not an ONNX model, only text with an .onnx name.\n")
    elif kind == "flat-input":
        flat_input_model(path)
    return path


def make_data(kind: str, folder: Path, mnist_dir: Path) -> Path:
    """Write the test images and labels into folder, with the one that `kind` names broken."""
    images = read_genuine(mnist_dir, IMAGES)
    labels = read_genuine(mnist_dir, LABELS)
    if kind == "images-missing":
        images = None
    elif kind == "images-truncated-gz":
        (folder / f"{IMAGES}.gz").write_bytes(truncated(gzip.compress(images, compresslevel=1)))
        images = None
    elif kind == "images-wrong-magic":
        images = b"\x12\x34" + images[2:]
    elif kind == "empty-test-set":
        # Valid headers that declare 0 images and 0 labels.
        images = images[:4] + (0).to_bytes(4, "big") + images[8:16]
        labels = labels[:4] + (0).to_bytes(4, "big")
    elif kind == "labels-count-mismatch":
        # A header that declares 9,999 labels, followed by 9,999 labels.
        labels = labels[:4] + (9999).to_bytes(4, "big") + labels[8 : 8 + 9999]
    if images is not None:
        (folder / IMAGES).write_bytes(images)
    (folder / LABELS).write_bytes(labels)
    return folder


# (id, what is broken, exit status, fragments of the error line). "{path}" is the broken file.
START_FAULTS = [
    ("model-missing", "model", "missing", 1, ["model file {path} not found", TRAIN_HINT + " {path}"]),
    ("model-truncated", "model", "truncated", 3, ["model file {path} could not be loaded by ONNX Runtime", TRAIN_HINT + " {path}"]),
    ("model-text", "model", "text", 3, ["model file {path} could not be loaded by ONNX Runtime", TRAIN_HINT + " {path}"]),
    ("model-flat-input", "model", "flat-input", 3, ["model file {path}: expected input float [N, 1, 28, 28], found tensor(float) ['N', 784]", TRAIN_HINT + " {path}"]),
    ("images-missing", "data", "images-missing", 1, ["{path}/" + IMAGES + ".gz: file not found", DOWNLOAD_HINT + " {path}"]),
    ("images-truncated-gz", "data", "images-truncated-gz", 1, ["{path}/" + IMAGES + ".gz: invalid gzip data", DOWNLOAD_HINT + " {path}"]),
    ("images-wrong-magic", "data", "images-wrong-magic", 1, ["{path}/" + IMAGES + ": invalid IDX magic number 0x12340803", DOWNLOAD_HINT + " {path}"]),
    ("empty-test-set", "data", "empty-test-set", 1, ["the MNIST test files in {path} contain no digits", DOWNLOAD_HINT + " {path}"]),
    ("labels-count-mismatch", "data", "labels-count-mismatch", 1, ["{path}/" + LABELS + ": expected 10000 labels to match", "found 9999", DOWNLOAD_HINT + " {path}"]),
]


@pytest.mark.parametrize(
    "case_id, target, kind, exit_status, fragments", START_FAULTS, ids=[fault[0] for fault in START_FAULTS]
)
def test_broken_file_stops_gunicorn(tmp_path, mnist_dir, model_path, case_id, target, kind, exit_status, fragments):
    env = {"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "WEB_CONCURRENCY": WORKERS}
    if target == "model":
        broken = make_model(kind, tmp_path, model_path)
        env["MODEL_PATH"] = str(broken)
    else:
        broken = make_data(kind, tmp_path, mnist_dir)
        env["MNIST_DIR"] = str(broken)

    started = time.monotonic()
    result = run_gunicorn_to_exit(env, timeout=60)
    output = result.stdout + result.stderr

    assert result.returncode == exit_status, output[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output[-2000:]
    for fragment in fragments:
        assert fragment.format(path=broken) in errors[0]
    assert "Traceback" not in output
    # No crash loop: the master starts each worker once at most, then stops.
    assert output.count("Booting worker") <= int(WORKERS)
    assert time.monotonic() - started < 45


# ---------------------------------------------------------------------------
# A worker killed during load
# ---------------------------------------------------------------------------

LOAD_CLIENTS = 4  # client threads, so at most 4 requests are in flight at any moment
THREADS_PER_WORKER = 2  # gunicorn.conf.py's GUNICORN_THREADS default


def worker_pids(master_pid: int) -> set[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return {int(pid) for pid in children}


def run_load(base: str, stop: threading.Event, results: list, client: int) -> None:
    """Send page and API requests on new connections until `stop` is set; record (time, status)."""
    count = 0
    while not stop.is_set() and count < 5000:
        try:
            if count % 3 == 2:
                status = fetch(base + "/api/predict", PIXELS_BODY, JSON_HEADERS)[0]
            else:
                status = fetch(f"{base}/digits/{(client * 2500 + count) % 10_000}")[0]
        except http.client.HTTPException:  # a reply cut off by the killed worker
            status = 0
        results.append((time.monotonic(), status))
        count += 1


def test_killed_worker_is_replaced(tmp_path, mnist_dir, model_path):
    env = {"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "WEB_CONCURRENCY": WORKERS}
    with gunicorn_server(env, tmp_path / "server.log", warm_workers=2) as server:
        master = server.process.pid
        before = worker_pids(master)
        assert len(before) == 2

        results: list[tuple[float, int]] = []
        stop = threading.Event()
        clients = [threading.Thread(target=run_load, args=(server.base, stop, results, i)) for i in range(LOAD_CLIENTS)]
        for thread in clients:
            thread.start()
        try:
            time.sleep(2)
            victim = min(before)
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()

            # The master starts a replacement, which warms up before it serves.
            deadline = killed_at + 45
            while time.monotonic() < deadline:
                current = worker_pids(master)
                if victim not in current and len(current) == 2 and server.log().count("event=warm_up_done") == 3:
                    break
                time.sleep(0.2)
            replaced_at = time.monotonic()
            time.sleep(2)  # load on both workers again
        finally:
            stop.set()
            for thread in clients:
                thread.join(timeout=30)

        after = worker_pids(master)
        readyz = fetch(server.base + "/readyz")
        log = server.log()

    replacement = after - before
    assert victim not in after
    assert len(replacement) == 1, log[-3000:]
    assert replaced_at - killed_at < 45
    assert readyz[0] == 200
    assert f"Worker (pid:{victim}) was sent SIGKILL" in log

    failures = [status for _, status in results if status != 200]
    before_kill = [status for moment, status in results if moment < killed_at]
    after_replacement = [status for moment, status in results if moment > replaced_at + 0.5]
    # Only requests in flight on the killed worker may fail: at most one per client
    # thread. That can be more than the worker's request threads, because a gthread
    # worker accepts connections and queues them while its threads are busy.
    assert len(failures) <= LOAD_CLIENTS, failures
    assert set(failures) <= {0}  # connection reset, never an HTTP error status
    assert before_kill and set(before_kill) == {200}
    assert after_replacement and set(after_replacement) == {200}
    print(f"requests={len(results)} failures={len(failures)} replacement_seconds={replaced_at - killed_at:.1f}")


# ---------------------------------------------------------------------------
# SIGTERM with requests in flight
# ---------------------------------------------------------------------------

BATCH_SIZE = 256  # the default API_MAX_BATCH: the slowest valid request
# Each request occupies a worker thread while it waits for the rest of its body. Were
# there more requests than one worker's threads, and all went to one worker, the extra
# ones would wait unread, and their senders would never reach the barrier.
IN_FLIGHT = THREADS_PER_WORKER


def batch_body() -> bytes:
    """Return a batch of 256 random images as JSON, about 2 MB."""
    rng = np.random.default_rng(0)
    items = [{"pixels": rng.random(784).round(6).tolist()} for _ in range(BATCH_SIZE)]
    return json.dumps({"items": items}).encode()


TAIL_BYTES = 1024


def send_batch(host: str, port: int, body: bytes, ready: threading.Barrier, sent: threading.Event, results: list, index: int) -> None:
    """POST the batch in two parts and record (status, predictions, end time).

    The kernel completes a TCP connection and buffers data before gunicorn accepts it, and
    a connection not yet accepted is dropped at shutdown. With a 32 KiB send buffer the
    body of about 2 MB cannot fit into the socket buffers, so the first part is written
    only after a worker has accepted the connection and read most of it. The last
    TAIL_BYTES follow once every sender is that far, and then `sent` is set: the server
    cannot finish the request before that, and it takes a few hundred ms after it.
    """
    connection = http.client.HTTPConnection(host, port, timeout=60)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
    sock.settimeout(60)
    try:
        sock.connect((host, port))
        connection.sock = sock
        connection.putrequest("POST", "/api/predict/batch")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        connection.send(body[:-TAIL_BYTES])
        ready.wait(timeout=30)
        connection.send(body[-TAIL_BYTES:])
        sent.set()
        response = connection.getresponse()
        payload = response.read()
        count = len(json.loads(payload)["predictions"]) if response.status == 200 else 0
        results[index] = (response.status, count, time.monotonic())
    except (OSError, threading.BrokenBarrierError) as error:
        results[index] = (0, 0, time.monotonic(), repr(error))
    finally:
        sent.set()
        connection.close()
        sock.close()


def test_sigterm_finishes_requests_in_flight(tmp_path, mnist_dir, model_path):
    env = {"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "WEB_CONCURRENCY": WORKERS}
    body = batch_body()
    with gunicorn_server(env, tmp_path / "server.log", warm_workers=2) as server:
        host, port = server.base.removeprefix("http://").split(":")
        # One batch first: it takes measurable time, so the ones below are still running at SIGTERM.
        started = time.monotonic()
        assert fetch(server.base + "/api/predict/batch", body, JSON_HEADERS, timeout=60)[0] == 200
        single_seconds = time.monotonic() - started

        results: list = [None] * IN_FLIGHT
        ready = threading.Barrier(IN_FLIGHT)
        sent = [threading.Event() for _ in range(IN_FLIGHT)]
        senders = [
            threading.Thread(target=send_batch, args=(host, int(port), body, ready, sent[i], results, i))
            for i in range(IN_FLIGHT)
        ]
        for thread in senders:
            thread.start()
        for event in sent:
            assert event.wait(timeout=30)
        server.process.send_signal(signal.SIGTERM)
        term_at = time.monotonic()
        for thread in senders:
            thread.join(timeout=60)
        exit_status = server.process.wait(timeout=60)
        log = server.log()

    assert all(result is not None for result in results)
    assert [result[:2] for result in results] == [(200, BATCH_SIZE)] * IN_FLIGHT, results
    # Every request was still running when the master received SIGTERM.
    assert all(result[2] > term_at for result in results)
    assert exit_status == 0
    assert "Handling signal: term" in log
    assert "Traceback" not in log
    print(f"single_batch_seconds={single_seconds:.2f} last_reply_after_term={max(r[2] for r in results) - term_at:.2f}")

