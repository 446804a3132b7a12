"""One ONNX Runtime session per process, created on first use.

The session is never created at import time, so under gunicorn each worker builds its
own session after the fork. A process that forks after predicting (a test, or a server
started with --preload) builds a fresh one in the child instead of sharing the parent's
thread pool. InferenceSession.run is thread-safe, so threads of one process share the
session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from webapp.process_cache import ProcessCache

IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10


class ModelError(RuntimeError):
    """The model file is missing, unreadable or has the wrong inputs or outputs."""


@dataclass(frozen=True)
class SessionSettings:
    model_path: str
    intra_op_threads: int = 1
    providers: tuple[str, ...] = ("CPUExecutionProvider",)


class Model:
    """An ONNX Runtime session for the MNIST model, with its input and output names."""

    def __init__(self, settings: SessionSettings) -> None:
        path = Path(settings.model_path)
        if not path.is_file():
            raise ModelError(f"model file {path} not found; train one with: python -m train --out {path}")

        options = ort.SessionOptions()
        # Set explicitly: ONNX Runtime's default is one thread per core, which
        # oversubscribes the CPU as soon as several server workers run side by side.
        options.intra_op_num_threads = settings.intra_op_threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=list(settings.providers))
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelError(
                f"model file {path} could not be loaded by ONNX Runtime ({type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0]}); train a new one with: python -m train --out {path}"
            ) from exc

        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"model file {path}: expected one input and one output, found {len(inputs)} and {len(outputs)}")
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        input_shape, output_shape = inputs[0].shape, outputs[0].shape
        if list(input_shape[1:]) != list(IMAGE_SHAPE) or inputs[0].type != "tensor(float)":
            raise ModelError(
                f"model file {path}: expected input float [N, 1, 28, 28], found {inputs[0].type} {input_shape}; "
                f"train a new one with: python -m train --out {path}"
            )
        if list(output_shape[1:]) != [NUM_CLASSES]:
            raise ModelError(f"model file {path}: expected output [N, 10], found {output_shape}")

        self.settings = settings
        self.path = path
        self.providers = self.session.get_providers()

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Return probabilities [N, 10] for float32 images [N, 1, 28, 28] in [0, 1]."""
        return self.session.run([self.output_name], {self.input_name: images})[0]


_sessions: ProcessCache[Model] = ProcessCache()


def get_model(settings: SessionSettings) -> Model:
    """Return this process's session for `settings`, creating it on first use."""
    return _sessions.get(settings, lambda: Model(settings))


def reset() -> None:
    """Drop this process's sessions; the next get_model call creates a new one."""
    _sessions.clear()
