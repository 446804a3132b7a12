"""The MNIST test set and the model's predictions for it, loaded once per process."""

from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image
from werkzeug.http import quote_etag

from train.data import load_split
from webapp.inference import Model
from webapp.process_cache import ProcessCache

PREDICTION_BATCH_SIZE = 1000


@dataclass(frozen=True)
class Digit:
    """One test digit with the model's output for it."""

    index: int
    label: int
    probabilities: tuple[float, ...]
    predicted: int

    @property
    def confidence(self) -> float:
        return self.probabilities[self.predicted]

    @property
    def correct(self) -> bool:
        return self.predicted == self.label


@dataclass(frozen=True)
class Predictions:
    """The model's output for the whole test set, with the figures the explorer filters on."""

    labels: np.ndarray  # int64 [N]
    probabilities: np.ndarray  # float32 [N, 10]
    predicted: np.ndarray  # int64 [N]
    confidence: np.ndarray  # float32 [N], probability of the predicted class
    margin: np.ndarray  # float32 [N], top probability minus the runner-up; small means hard

    @classmethod
    def from_probabilities(cls, labels: np.ndarray, probabilities: np.ndarray) -> "Predictions":
        top_two = np.sort(probabilities, axis=1)[:, -2:]
        return cls(
            labels=labels.astype(np.int64),
            probabilities=probabilities,
            predicted=probabilities.argmax(1),
            confidence=top_two[:, 1],
            margin=top_two[:, 1] - top_two[:, 0],
        )

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    def confusion_matrix(self) -> np.ndarray:
        """Return counts [10, 10]: rows are true labels, columns are predicted classes."""
        matrix = np.zeros((10, 10), dtype=np.int64)
        np.add.at(matrix, (self.labels, self.predicted), 1)
        return matrix


class TestSet:
    """Test images and labels, with probabilities for all of them computed on first use."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = images  # uint8 [N, 28, 28]
        self.labels = labels  # uint8 [N]
        self._predictions: dict[str, Predictions] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.labels)

    def predictions(self, model: Model) -> Predictions:
        """Return the model's predictions for every test digit, computed once per model."""
        key = str(model.path)
        result = self._predictions.get(key)
        if result is None:
            with self._lock:
                result = self._predictions.get(key)
                if result is None:
                    result = Predictions.from_probabilities(self.labels, self._predict_all(model))
                    self._predictions[key] = result
        return result

    def probabilities(self, model: Model) -> np.ndarray:
        """Return the model's probabilities [N, 10] for every test digit, computed once."""
        return self.predictions(model).probabilities

    def _predict_all(self, model: Model) -> np.ndarray:
        batches = []
        for start in range(0, len(self), PREDICTION_BATCH_SIZE):
            pixels = self.images[start : start + PREDICTION_BATCH_SIZE]
            batches.append(model.predict(to_model_input(pixels)))
        return np.concatenate(batches)

    def digit(self, index: int, model: Model) -> Digit:
        probabilities = self.probabilities(model)[index]
        return Digit(
            index=index,
            label=int(self.labels[index]),
            probabilities=tuple(float(p) for p in probabilities),
            predicted=int(probabilities.argmax()),
        )

    @lru_cache(maxsize=None)
    def png(self, index: int, scale: int) -> tuple[bytes, str]:
        """Return test digit `index` as a grayscale PNG, upscaled `scale` times, and its quoted strong ETag.

        Both are computed once per process and digit, so serving a PNG costs no encoding
        and no hashing.
        """
        data = encode_png(self.images[index], scale)
        return data, quote_etag(hashlib.sha256(data).hexdigest()[:32])


def to_model_input(pixels: np.ndarray) -> np.ndarray:
    """Convert uint8 images [N, 28, 28] to the model's float32 input [N, 1, 28, 28] in [0, 1]."""
    return (pixels.astype(np.float32) / np.float32(255.0))[:, None, :, :]


def encode_png(pixels: np.ndarray, scale: int) -> bytes:
    """Encode a uint8 image [H, W] as a grayscale PNG upscaled by nearest neighbour."""
    image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))  # 2-D uint8 gives mode "L"
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


_test_sets: ProcessCache[TestSet] = ProcessCache()


def get_test_set(data_dir: str) -> TestSet:
    """Return this process's copy of the test set in data_dir, loading it on first use."""
    return _test_sets.get(data_dir, lambda: TestSet(*load_split("test", data_dir)))
