"""Shared fixtures: the real MNIST test set, the committed model and the Flask app."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from train.data import FILES, default_data_dir
from webapp import create_app

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_PATH = REPO_ROOT / "models" / "mnist.onnx"
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
TEST_SECRET_KEY = "test-only-secret-key-0123456789abcdef"


def _has_mnist(folder: Path) -> bool:
    return all(
        (folder / f"{f.name}.gz").is_file() or (folder / f.name).is_file() for f in FILES.values()
    )


@pytest.fixture(scope="session", autouse=True)
def secret_key():
    """Give every test, and every server it starts, a SECRET_KEY as a deployment would."""
    previous = os.environ.get("SECRET_KEY")
    os.environ["SECRET_KEY"] = TEST_SECRET_KEY
    yield TEST_SECRET_KEY
    if previous is None:
        del os.environ["SECRET_KEY"]
    else:
        os.environ["SECRET_KEY"] = previous


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder with the genuine MNIST files: $MNIST_DIR, else data/mnist in the checkout."""
    folder = default_data_dir()
    if not _has_mnist(folder):
        message = (
            f"MNIST files not found in {folder}; set MNIST_DIR to a folder with the four IDX files "
            f"or run: python -m train.data download"
        )
        # CI always provides the data, so a missing folder there is a failure, not a skip.
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def model_path() -> Path:
    assert MODEL_PATH.is_file(), f"{MODEL_PATH} is missing; it is committed with the repository"
    return MODEL_PATH


@pytest.fixture
def app(mnist_dir, model_path):
    return create_app(
        {"TESTING": True, "SECRET_KEY": TEST_SECRET_KEY, "MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path)}
    )


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def test_split(mnist_dir):
    from train.data import load_split

    return load_split("test", mnist_dir)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_gunicorn(env: dict, ready_path: str = "/digits/0", timeout: float = 60):
    """Start `gunicorn wsgi:app` on a free 127.0.0.1 port, yield its base URL, stop it with SIGTERM."""
    port = free_port()
    env = {**os.environ, "SECRET_KEY": TEST_SECRET_KEY, **env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
    # The server logs to a file: a pipe that nobody reads would block it once full.
    log = tempfile.NamedTemporaryFile("w+", prefix="gunicorn-", suffix=".log")
    process = subprocess.Popen([GUNICORN, "wsgi:app"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(base + ready_path, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"gunicorn exited with {process.returncode}: {log.read()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not answer {ready_path} within {timeout} s")
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
