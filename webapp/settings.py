"""App settings: defaults, environment variables and the start-up checks.

This module imports neither onnxruntime nor Flask's views, so gunicorn's master can run
the checks before it forks workers.
"""

from __future__ import annotations

import os
from pathlib import Path

from train.data import FILES, IDXError, default_data_dir, find_file

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_PATH = REPO_ROOT / "models" / "mnist.onnx"

# Settings that can come from environment variables of the same name, with their types.
ENVIRONMENT_SETTINGS = {
    "MODEL_PATH": str,
    "MNIST_DIR": str,
    "ORT_INTRA_OP_THREADS": int,
    "PNG_SCALE": int,
}


class StartupError(RuntimeError):
    """A setting or file the app needs is missing or invalid; the message says how to fix it."""


def default_settings() -> dict:
    return {
        # ONNX model to serve: input [N, 1, 28, 28] pixels in [0, 1], output [N, 10] probabilities.
        "MODEL_PATH": str(DEFAULT_MODEL_PATH),
        # Folder with the MNIST test files (t10k-*-ubyte, raw or .gz).
        "MNIST_DIR": str(default_data_dir()),
        # Threads of each process's ONNX Runtime session; keep workers x threads <= cores.
        "ORT_INTRA_OP_THREADS": 1,
        # Digit PNGs are 28 x PNG_SCALE pixels wide.
        "PNG_SCALE": 10,
    }


def settings_from_environment(environ=os.environ) -> dict:
    settings = {}
    for name, kind in ENVIRONMENT_SETTINGS.items():
        value = environ.get(name)
        if value is None or value == "":
            continue
        try:
            settings[name] = kind(value)
        except ValueError:
            raise StartupError(f"environment variable {name}={value!r} is invalid; expected an integer") from None
    return settings


def check_settings(settings: dict) -> None:
    """Raise StartupError if a setting is invalid or a file the app serves from is missing."""
    for name in ("ORT_INTRA_OP_THREADS", "PNG_SCALE"):
        value = settings[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise StartupError(f"{name}={value!r} is invalid; expected a positive integer")

    model_path = Path(settings["MODEL_PATH"])
    if not model_path.is_file():
        raise StartupError(
            f"model file {model_path} not found; train one with: python -m train --out {model_path} "
            f"(or set MODEL_PATH to an existing file)"
        )
    data_dir = Path(settings["MNIST_DIR"])
    for key in (("test", "images"), ("test", "labels")):
        try:
            find_file(data_dir, FILES[key].name)
        except IDXError as exc:
            raise StartupError(str(exc)) from None


def load_settings(test_config: dict | None = None) -> dict:
    """Return the checked settings: defaults, then the environment, then test_config."""
    settings = default_settings()
    settings.update(settings_from_environment())
    if test_config is not None:
        settings.update(test_config)
    check_settings(settings)
    return settings
