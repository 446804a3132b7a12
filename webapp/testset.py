"""The MNIST test set and the model's predictions for it, loaded once per process."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

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


class TestSet:
    """Test images and labels, with probabilities for all of them computed on first use."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = images  # uint8 [N, 28, 28]
        self.labels = labels  # uint8 [N]
        self._probabilities: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.labels)

    def probabilities(self, model: Model) -> np.ndarray:
        """Return the model's probabilities [N, 10] for every test digit, computed once."""
        key = str(model.path)
        result = self._probabilities.get(key)
        if result is None:
            with self._lock:
                result = self._probabilities.get(key)
                if result is None:
                    result = self._predict_all(model)
                    self._probabilities[key] = result
        return result

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
    def png(self, index: int, scale: int) -> bytes:
        """Return test digit `index` as a grayscale PNG, upscaled `scale` times by nearest neighbour."""
        return encode_png(self.images[index], scale)


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
