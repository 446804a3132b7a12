"""Access to the current app's model, test set and model card."""

from __future__ import annotations

import json
from pathlib import Path

from flask import current_app

from webapp.inference import Model, SessionSettings, get_model
from webapp.process_cache import ProcessCache
from webapp.providers import configured_providers
from webapp.testset import TestSet, get_test_set

_cards: ProcessCache[dict] = ProcessCache()


def session_settings() -> SessionSettings:
    config = current_app.config
    return SessionSettings(
        model_path=config["MODEL_PATH"],
        intra_op_threads=config["ORT_INTRA_OP_THREADS"],
        providers=configured_providers(config["ORT_PROVIDERS"], config["ORT_PROVIDER_FALLBACK"]),
    )


def current_model() -> Model:
    return get_model(session_settings())


def current_test_set() -> TestSet:
    return get_test_set(current_app.config["MNIST_DIR"])


def _read_card(model_path: str) -> dict:
    card_path = Path(model_path).with_suffix(".json")
    try:
        return json.loads(card_path.read_text())
    except (OSError, ValueError):
        return {}


def model_card() -> dict:
    """Return the card written next to the model at export, or {} if there is none."""
    model_path = current_app.config["MODEL_PATH"]
    return _cards.get(model_path, lambda: _read_card(model_path))
