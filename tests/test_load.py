"""A short run of bench/load.py: wrk against gunicorn on 127.0.0.1 with no errors and steady memory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

LOAD_SCRIPT = REPO_ROOT / "bench" / "load.py"


@pytest.fixture
def wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        message = "wrk not found; install it with: apt-get install -y wrk"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_short_load_run_has_no_errors(wrk, mnist_dir, tmp_path):
    output = tmp_path / "load.json"
    env = {**os.environ, "MNIST_DIR": str(mnist_dir)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # gunicorn.conf.py then makes a fresh folder
    result = subprocess.run(
        [sys.executable, str(LOAD_SCRIPT), "--duration", "10", "--connections", "16", "--output", str(output)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    figures = json.loads(output.read_text())
    assert figures["passed"] is True
    assert figures["failures"] == []
    assert figures["non_2xx"] == 0
    assert figures["socket_errors_total"] == 0
    assert figures["workers_replaced"] == []
    assert figures["rss"]["growth_percent"] < 5
    assert figures["requests"] > 0
    assert set(figures["statuses"]) == {"200"}
    # Every kind of request in the mix was sent.
    assert all(figures["requests_sent_by_kind"][kind] > 0 for kind in ("page", "fragment", "png", "predict"))
    assert "requests/s" in result.stdout
