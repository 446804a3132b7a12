"""Export the trained network to ONNX, check the file and write its model card."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import logging
import os
import platform
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from train.model import WithSoftmax, count_parameters

INPUT_NAME = "input"
OUTPUT_NAME = "output"
OPSET = 20

# ONNX Runtime and PyTorch order floating-point sums differently, so their probabilities
# differ by rounding; anything above this bound means the graphs compute different things.
MAX_ABS_DIFF = 1e-4


class ExportError(RuntimeError):
    """The exported model failed a check against the PyTorch model."""


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_onnx(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Export model (returning logits) to a self-contained ONNX file that returns probabilities.

    Input `input` is float32 [N, 1, 28, 28] pixels in [0, 1]; output `output` is float32
    [N, 10] probabilities. The batch axis N is dynamic.
    """
    wrapped = WithSoftmax(model).eval().cpu()
    example = torch.rand(2, 1, 28, 28)
    batch = torch.export.Dim("batch")
    with quiet_exporter():
        _export(wrapped, example, path, batch)
    if metadata:
        proto = onnx.load(str(path))
        for key, value in metadata.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(path))


@contextlib.contextmanager
def quiet_exporter():
    """Hide the exporter's progress lines and its notes about its own internals.

    torch 2.13's exporter prints each step to stdout, logs that torchvision is missing
    (irrelevant here) and warns about a deprecated class it uses itself.
    """
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
            yield
    finally:
        exporter_log.setLevel(level)


def _export(wrapped: nn.Module, example: torch.Tensor, path: Path, batch) -> None:
    # external_data=False keeps the weights inside the .onnx file; the exporter would
    # otherwise write them to a separate .onnx.data file that deployments tend to lose.
    torch.onnx.export(
        wrapped,
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch},),
        opset_version=OPSET,
        external_data=False,
        dynamo=True,
        verbose=False,
    )


def onnx_probabilities(session: ort.InferenceSession, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Run float32 images [N, 1, 28, 28] through an ONNX Runtime session in batches."""
    outputs = [
        session.run([OUTPUT_NAME], {INPUT_NAME: images[i : i + batch_size]})[0]
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.empty((0, 10), np.float32)


def compare_with_pytorch(model: nn.Module, session: ort.InferenceSession, images: np.ndarray) -> dict:
    """Compare ONNX Runtime's probabilities with PyTorch's on the same images.

    Returns the maximum absolute difference and the fraction of images whose argmax
    agrees; raises ExportError if the difference exceeds MAX_ABS_DIFF or any argmax differs.
    """
    with torch.inference_mode():
        expected = WithSoftmax(model).eval().cpu()(torch.from_numpy(images)).numpy()
    actual = onnx_probabilities(session, images)
    max_abs_diff = float(np.abs(expected - actual).max())
    agreement = float((expected.argmax(1) == actual.argmax(1)).mean())
    if max_abs_diff > MAX_ABS_DIFF or agreement < 1.0:
        raise ExportError(
            f"ONNX Runtime disagrees with PyTorch on {len(images)} test images: max absolute difference "
            f"{max_abs_diff:.2e} (limit {MAX_ABS_DIFF:.0e}), argmax agreement {100 * agreement:.2f}% (expected 100%)"
        )
    return {"images": len(images), "max_abs_diff": max_abs_diff, "argmax_agreement": agreement}


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
    }


def export_and_check(
    model: nn.Module,
    out: Path,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    config: dict,
    history: list[dict],
    train_seconds: float,
    log=print,
) -> dict:
    """Export, check and evaluate the model, then move it to `out` and write the card.

    test_images: float32 [N, 1, 28, 28] in [0, 1]. The model is written to a temporary
    file first and replaces `out` only after every check passed, so a failed export never
    destroys a working model. Returns the model card, also written as `out` with .json.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as tmp:
        tmp_path = Path(tmp) / out.name
        export_onnx(model, tmp_path, metadata={"training_config": json.dumps(config, sort_keys=True)})
        onnx.checker.check_model(str(tmp_path), full_check=True)
        if Path(f"{tmp_path}.data").exists() or len(os.listdir(tmp)) != 1:
            raise ExportError(f"the exporter wrote extra files next to {tmp_path}: {sorted(os.listdir(tmp))}")

        session = ort.InferenceSession(str(tmp_path), providers=["CPUExecutionProvider"])
        comparison = compare_with_pytorch(model, session, test_images[:1000])
        log(
            f"ONNX Runtime matches PyTorch on {comparison['images']} test images: max absolute difference "
            f"{comparison['max_abs_diff']:.1e}, argmax agreement {100 * comparison['argmax_agreement']:.0f}%"
        )
        predicted = onnx_probabilities(session, test_images).argmax(1)
        correct = int((predicted == test_labels).sum())
        shutil.move(tmp_path, out)

    card = {
        "model_file": out.name,
        "sha256": sha256_of(out),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "opset": OPSET,
        "input": {"name": INPUT_NAME, "shape": ["N", 1, 28, 28], "dtype": "float32", "range": [0.0, 1.0]},
        "output": {"name": OUTPUT_NAME, "shape": ["N", 10], "dtype": "float32", "meaning": "class probabilities"},
        "parameters": count_parameters(model),
        "test_accuracy": correct / len(test_labels),
        "test_correct": correct,
        "test_count": int(len(test_labels)),
        "test_accuracy_measured_with": f"onnxruntime {ort.__version__}, CPUExecutionProvider",
        "onnx_vs_pytorch": comparison,
        "epochs": config["epochs"],
        "seed": config["seed"],
        "training": config,
        "train_seconds": round(train_seconds, 1),
        "history": history,
        "versions": library_versions(),
    }
    card_path = out.with_suffix(".json")
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    log(
        f"wrote {out} (sha256 {card['sha256'][:12]}...) and {card_path}: test accuracy "
        f"{100 * card['test_accuracy']:.2f}% ({correct}/{len(test_labels)}) through ONNX Runtime"
    )
    return card
