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
import urllib.error
import urllib.request
from dataclasses import dataclass
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


@dataclass
class Server:
    """A running `gunicorn wsgi:app` with its output in a file."""

    base: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def fetch(url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 10):
    """Return (status, headers, body) for a request to a server on 127.0.0.1; status 0 if it is not up."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()
    except OSError:
        return 0, {}, b""


@contextlib.contextmanager
def gunicorn_server(env: dict, log_path: Path, warm_workers: int = 1, timeout: float = 90):
    """Start `gunicorn wsgi:app` on a free 127.0.0.1 port with output to log_path; stop it with SIGTERM.

    Yields once /readyz returns 200 and `warm_workers` workers have logged their warm-up.
    The output goes to a file because a pipe that is never read would block the server
    once it is full.
    """
    port = free_port()
    full_env = {**os.environ, "SECRET_KEY": TEST_SECRET_KEY, **env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # gunicorn.conf.py then makes a fresh folder
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            [GUNICORN, "wsgi:app"], cwd=REPO_ROOT, env=full_env, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + timeout
            while log_path.read_text().count("event=warm_up_done") < warm_workers or fetch(base + "/readyz")[0] != 200:
                if process.poll() is not None:
                    pytest.fail(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"gunicorn was not ready within {timeout} s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.2)
            yield Server(base, process, log_path)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@contextlib.contextmanager
def running_gunicorn(env: dict, warm_workers: int = 1):
    """Start `gunicorn wsgi:app` like gunicorn_server, logging to a temporary file; yield its base URL."""
    with tempfile.TemporaryDirectory(prefix="gunicorn-") as folder:
        with gunicorn_server(env, Path(folder) / "server.log", warm_workers=warm_workers) as server:
            yield server.base
