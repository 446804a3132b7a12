"""Shared fixtures: the real MNIST test set, the committed model and the Flask app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from train.data import FILES, default_data_dir
from webapp import create_app

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_PATH = REPO_ROOT / "models" / "mnist.onnx"


def _has_mnist(folder: Path) -> bool:
    return all(
        (folder / f"{f.name}.gz").is_file() or (folder / f.name).is_file() for f in FILES.values()
    )


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
    return create_app({"TESTING": True, "MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path)})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def test_split(mnist_dir):
    from train.data import load_split

    return load_split("test", mnist_dir)
