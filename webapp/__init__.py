"""Flask app that shows MNIST test digits with the ONNX model's predictions."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

from train.data import IDXError, default_data_dir, find_file, FILES

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


def check_settings(config) -> None:
    """Raise StartupError if a setting is invalid or a file the app serves from is missing."""
    for name in ("ORT_INTRA_OP_THREADS", "PNG_SCALE"):
        if not isinstance(config[name], int) or config[name] < 1:
            raise StartupError(f"{name}={config[name]!r} is invalid; expected a positive integer")

    model_path = Path(config["MODEL_PATH"])
    if not model_path.is_file():
        raise StartupError(
            f"model file {model_path} not found; train one with: python -m train --out {model_path} "
            f"(or set MODEL_PATH to an existing file)"
        )
    data_dir = Path(config["MNIST_DIR"])
    for split_and_kind in (("test", "images"), ("test", "labels")):
        try:
            find_file(data_dir, FILES[split_and_kind].name)
        except IDXError as exc:
            raise StartupError(str(exc)) from None


def create_app(test_config: dict | None = None) -> Flask:
    """Create the app; settings come from defaults, then the environment, then test_config."""
    app = Flask(
        __name__,
        template_folder=str(REPO_ROOT / "templates"),
        static_folder=str(REPO_ROOT / "static"),
    )
    app.config.from_mapping(
        # ONNX model to serve: input [N, 1, 28, 28] pixels in [0, 1], output [N, 10] probabilities.
        MODEL_PATH=str(DEFAULT_MODEL_PATH),
        # Folder with the MNIST test files (t10k-*-ubyte, raw or .gz).
        MNIST_DIR=str(default_data_dir()),
        # Threads of each process's ONNX Runtime session; keep workers x threads <= cores.
        ORT_INTRA_OP_THREADS=1,
        # Digit PNGs are 28 x PNG_SCALE pixels wide.
        PNG_SCALE=10,
    )
    app.config.update(settings_from_environment())
    if test_config is not None:
        app.config.from_mapping(test_config)
    check_settings(app.config)

    from webapp import errors, resources, views

    app.register_blueprint(views.bp)
    errors.init_app(app)
    app.context_processor(lambda: {"card": resources.model_card()})
    return app
