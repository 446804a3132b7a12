"""Quantise the exported model to int8 with ONNX Runtime and measure what it costs.

    python -m train.quantize --model models/mnist.onnx --out models/mnist.int8.onnx

Static quantisation: weights and activations become int8 (QDQ format), with activation
ranges calibrated on training images. The script measures the int8 model on all test
images through ONNX Runtime. If its accuracy stays within --max-drop points of the
float32 model's, it writes the model to --out with a model card next to it. Otherwise it
prints the figures, writes nothing and exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from train.data import IDXError, default_data_dir, load_split
from train.export import INPUT_NAME, OUTPUT_NAME, library_versions, onnx_probabilities, sha256_of


class ImageReader(CalibrationDataReader):
    """Feed calibration images to the quantiser in batches."""

    def __init__(self, images: np.ndarray, batch_size: int = 100) -> None:
        self.batches = iter([{INPUT_NAME: images[i : i + batch_size]} for i in range(0, len(images), batch_size)])

    def get_next(self):
        return next(self.batches, None)


def to_input(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) / 255.0)[:, None, :, :]


def accuracy(model_path: Path, images: np.ndarray, labels: np.ndarray) -> tuple[int, float]:
    """Return (correct, seconds per 10,000 images) for the model on one CPU thread."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    onnx_probabilities(session, images[:1000])  # warm-up
    started = time.perf_counter()
    predicted = onnx_probabilities(session, images).argmax(1)
    seconds = (time.perf_counter() - started) * 10_000 / len(images)
    return int((predicted == labels).sum()), seconds


def quantize(model: Path, out: Path, calibration: np.ndarray) -> None:
    """Write the int8 model to `out`, through a temporary file so a failure leaves nothing behind."""
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".quantize-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(model), str(prepared))
        quantized = Path(tmp) / out.name
        quantize_static(
            str(prepared),
            str(quantized),
            ImageReader(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
        shutil.move(quantized, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.quantize", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/mnist.onnx"), help="float32 model (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("models/mnist.int8.onnx"), help="int8 model to write (default: %(default)s)")
    parser.add_argument("--calibration-images", type=int, default=1000, help="training images for calibration (default: %(default)s)")
    parser.add_argument("--max-drop", type=float, default=0.1, help="largest accepted accuracy drop, in percentage points (default: %(default)s)")
    parser.add_argument(
        "--mnist-dir", "--data-dir", dest="data_dir", metavar="DIR", type=Path, default=None,
        help="MNIST folder (default: $MNIST_DIR, else data/mnist)",
    )
    args = parser.parse_args(argv)

    data_dir = args.data_dir or default_data_dir()
    try:
        train_images, _ = load_split("train", data_dir)
        test_images, test_labels = load_split("test", data_dir)
    except IDXError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.model.is_file():
        print(f"error: model file {args.model} not found; train one with: python -m train --out {args.model}", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp:
        candidate = Path(tmp) / args.out.name
        # Calibrate on a fixed, evenly spread subset of the training set, never on test images.
        step = max(1, len(train_images) // args.calibration_images)
        quantize(args.model, candidate, to_input(train_images[::step][: args.calibration_images]))

        inputs = to_input(test_images)
        float_correct, float_seconds = accuracy(args.model, inputs, test_labels)
        int8_correct, int8_seconds = accuracy(candidate, inputs, test_labels)
        drop = 100 * (float_correct - int8_correct) / len(test_labels)
        print(f"float32: {float_correct}/{len(test_labels)} correct, {float_seconds:.3f} s per 10,000 images (1 thread)")
        print(f"int8:    {int8_correct}/{len(test_labels)} correct, {int8_seconds:.3f} s per 10,000 images (1 thread)")
        print(f"accuracy drop: {drop:.2f} points (limit {args.max_drop})")
        if drop > args.max_drop:
            print(f"error: the int8 model loses {drop:.2f} points of accuracy, more than --max-drop {args.max_drop}; "
                  f"{args.out} was not written", file=sys.stderr)
            return 1
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(candidate, args.out)

    card = {
        "model_file": args.out.name,
        "sha256": sha256_of(args.out),
        "quantized_from": {"model_file": args.model.name, "sha256": sha256_of(args.model)},
        "quantization": {"method": "static, QDQ, per-channel weights", "weights": "int8", "activations": "int8",
                         "calibration_images": args.calibration_images},
        "input": {"name": INPUT_NAME, "shape": ["N", 1, 28, 28], "dtype": "float32", "range": [0.0, 1.0]},
        "output": {"name": OUTPUT_NAME, "shape": ["N", 10], "dtype": "float32", "meaning": "class probabilities"},
        "test_accuracy": int8_correct / len(test_labels),
        "test_correct": int8_correct,
        "test_count": len(test_labels),
        "float32_test_correct": float_correct,
        "seconds_per_10000_images_1_thread": {"float32": round(float_seconds, 4), "int8": round(int8_seconds, 4)},
        "versions": library_versions(),
    }
    # Copy the float model's card fields that describe the network and its training.
    float_card_path = args.model.with_suffix(".json")
    if float_card_path.is_file():
        float_card = json.loads(float_card_path.read_text())
        for key in ("parameters", "opset", "epochs", "seed", "training"):
            if key in float_card:
                card[key] = float_card[key]
    args.out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
