"""App settings: defaults, environment variables and the start-up checks.

This module imports neither onnxruntime nor Flask's views, so gunicorn's master can run
the checks before it forks workers.
"""

from __future__ import annotations

import os
from pathlib import Path

from train.data import DOWNLOAD_HINT, FILES, IDXError, default_data_dir, find_file, load_split

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_PATH = REPO_ROOT / "models" / "mnist.onnx"

# Settings that can come from environment variables of the same name, with their types.
ENVIRONMENT_SETTINGS = {
    "MODEL_PATH": str,
    "MNIST_DIR": str,
    "ORT_INTRA_OP_THREADS": int,
    "PNG_SCALE": int,
    "DIGIT_HTML_CACHE": int,
    "ORT_PROVIDERS": str,
    "ORT_PROVIDER_FALLBACK": str,
    "API_MAX_BATCH": int,
    "MAX_CONTENT_LENGTH": int,
    "SECRET_KEY": str,
}
MIN_SECRET_KEY_LENGTH = 16
SECRET_KEY_HINT = "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"

# Values of ORT_PROVIDER_FALLBACK, the action taken when ORT_PROVIDERS requests a provider
# that this ONNX Runtime build lacks.
PROVIDER_FALLBACKS = ("cpu", "fail")


class StartupError(RuntimeError):
    """A setting or file the app needs is missing or invalid. The message gives the fix."""


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
        # Rendered digit page sections that each process keeps (about 5 KB each); 0 turns the cache off.
        "DIGIT_HTML_CACHE": 10_000,
        # ONNX Runtime execution providers in priority order; a comma-separated string in
        # the environment, a tuple of names once loaded (see webapp/providers.py).
        "ORT_PROVIDERS": ("CPUExecutionProvider",),
        # "cpu": run on the CPU when a requested provider is unavailable; "fail": stop.
        "ORT_PROVIDER_FALLBACK": "cpu",
        # Maximum number of images in one POST /api/predict/batch request.
        "API_MAX_BATCH": 256,
        # Maximum request body size in bytes; Flask rejects larger bodies with 413.
        "MAX_CONTENT_LENGTH": 4 * 1024 * 1024,
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


def check_secret_key(settings: dict) -> None:
    """Raise StartupError unless SECRET_KEY is set; only tests (TESTING) may run without one.

    The key signs the session cookie that carries the CSRF token. There is deliberately
    no default: a key in the source code would let anyone forge sessions.
    """
    key = settings.get("SECRET_KEY")
    if not key:
        if settings.get("TESTING"):
            return
        raise StartupError(
            f"SECRET_KEY is not set; {SECRET_KEY_HINT} and pass it in the environment. "
            f"Every instance behind one load balancer needs the same key"
        )
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise StartupError(f"SECRET_KEY is {len(key)} characters long; use at least {MIN_SECRET_KEY_LENGTH}: {SECRET_KEY_HINT}")


def check_settings(settings: dict) -> None:
    """Raise StartupError if a setting is invalid or a file the app serves from is missing."""
    check_secret_key(settings)
    for name in ("ORT_INTRA_OP_THREADS", "PNG_SCALE", "API_MAX_BATCH", "MAX_CONTENT_LENGTH"):
        value = settings[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise StartupError(f"{name}={value!r} is invalid; expected a positive integer")
    cache_size = settings["DIGIT_HTML_CACHE"]
    if not isinstance(cache_size, int) or isinstance(cache_size, bool) or cache_size < 0:
        raise StartupError(f"DIGIT_HTML_CACHE={cache_size!r} is invalid; expected 0 (no cache) or a positive integer")
    if not settings["ORT_PROVIDERS"]:
        raise StartupError("ORT_PROVIDERS is empty; name at least one execution provider, e.g. CPUExecutionProvider")
    if settings["ORT_PROVIDER_FALLBACK"] not in PROVIDER_FALLBACKS:
        raise StartupError(
            f"ORT_PROVIDER_FALLBACK={settings['ORT_PROVIDER_FALLBACK']!r} is invalid; "
            f"expected one of {', '.join(PROVIDER_FALLBACKS)}"
        )

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


def check_test_files(data_dir: str | Path) -> None:
    """Raise StartupError unless the MNIST test images and labels in data_dir parse and match.

    Reads and decompresses both files (about 8 MB, 40 ms on a 2-core test machine), so
    gunicorn's master runs it once at start instead of every worker failing its warm-up
    on a truncated or corrupt file. Any number of digits above 0 is accepted. The
    checksums are not compared, so a test set other than MNIST's own still serves.
    """
    hint = f"get valid files with: {DOWNLOAD_HINT.format(dir=data_dir)}"
    try:
        images, _ = load_split("test", data_dir)
    except IDXError as exc:
        raise StartupError(f"{exc}; {hint}") from None
    if len(images) == 0:
        raise StartupError(f"the MNIST test files in {data_dir} contain no digits; {hint}")


def parse_provider_names(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Return provider names from a comma-separated string or a sequence, without blanks."""
    names = value.split(",") if isinstance(value, str) else value
    return tuple(name.strip() for name in names if name.strip())


def load_settings(test_config: dict | None = None) -> dict:
    """Return the checked settings: defaults, then the environment, then test_config."""
    settings = default_settings()
    settings.update(settings_from_environment())
    if test_config is not None:
        settings.update(test_config)
    settings["ORT_PROVIDERS"] = parse_provider_names(settings["ORT_PROVIDERS"])
    check_settings(settings)
    return settings
