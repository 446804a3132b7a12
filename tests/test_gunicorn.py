"""The app under a real gunicorn on 127.0.0.1, started as a user would start it."""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import GUNICORN, REPO_ROOT, free_port, running_gunicorn


def get(url: str, headers: dict | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture(scope="module")
def server(mnist_dir, model_path):
    env = {"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "WEB_CONCURRENCY": "2"}
    with running_gunicorn(env) as base:
        yield base


def test_page_under_gunicorn(server):
    status, headers, body = get(server + "/")
    assert status == 200
    assert b"<!doctype html>" in body
    assert "HX-Request" in headers["Vary"]


def test_fragment_under_gunicorn(server):
    status, _, body = get(server + "/digits/5", {"HX-Request": "true"})
    assert status == 200
    assert b"<!doctype html>" not in body
    assert b'<img src="/digits/5.png"' in body


def test_png_under_gunicorn(server):
    status, headers, body = get(server + "/digits/5.png")
    assert status == 200
    assert headers["Content-Type"] == "image/png"
    assert body.startswith(b"\x89PNG")
    assert get(server + "/digits/5.png", {"If-None-Match": headers["ETag"]})[0] == 304


def test_many_requests_across_workers(server):
    statuses = [get(f"{server}/digits/{i}")[0] for i in range(0, 10_000, 250)]
    assert statuses == [200] * 40


def test_404_under_gunicorn(server):
    status, _, body = get(server + "/digits/10000")
    assert status == 404
    assert b"numbered 0 to 9999" in body


@pytest.mark.parametrize("setting", ["MNIST_DIR", "MODEL_PATH"])
def test_missing_file_stops_gunicorn(tmp_path, mnist_dir, model_path, setting):
    env = {**os.environ, "MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path),
           "GUNICORN_BIND": f"127.0.0.1:{free_port()}", setting: str(tmp_path / "absent")}
    result = subprocess.run([GUNICORN, "wsgi:app"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert str(tmp_path / "absent") in errors[0]
    assert "python -m train" in errors[0]
    assert "Traceback" not in result.stderr
