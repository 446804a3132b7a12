"""Training, augmentation and export, on small subsets of the real data."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

from train.augment import random_affine
from train.export import ExportError, compare_with_pytorch, export_onnx
from train.loop import TrainConfig, evaluate, to_tensor
from train.model import MNIST_MEAN, MNIST_STD, Net, count_parameters
from train.cli import main as train_main

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_network_layout():
    model = Net()
    assert [m.out_channels for m in (model.conv1, model.conv2)] == [10, 20]
    assert model.conv1.kernel_size == (5, 5)
    assert (model.fc1.in_features, model.fc1.out_features, model.fc2.out_features) == (320, 50, 10)
    assert model.conv2_drop.p == 0.2
    assert model.fc1_drop.p == 0.2
    assert count_parameters(model) == 21_840


def test_forward_returns_logits():
    torch.manual_seed(0)
    logits = Net().eval()(torch.rand(4, 1, 28, 28))
    assert logits.shape == (4, 10)
    assert not torch.allclose(logits.sum(1), torch.ones(4))


def test_normalisation_inside_model():
    torch.manual_seed(0)
    model = Net().eval()
    x = torch.rand(3, 1, 28, 28)
    by_hand = model.fc2(torch.relu(model.fc1(torch.flatten(torch.relu(torch.max_pool2d(
        model.conv2(torch.relu(torch.max_pool2d(model.conv1((x - MNIST_MEAN) / MNIST_STD), 2))), 2)), 1))))
    torch.testing.assert_close(model(x), by_hand)


def test_augmentation_keeps_shape_and_range():
    images = torch.rand(64, 1, 28, 28)
    augmented = random_affine(images, 10, 2, 0.1, torch.Generator().manual_seed(0))
    assert augmented.shape == images.shape
    assert augmented.dtype == images.dtype
    assert augmented.min() >= 0
    assert augmented.max() <= 1
    assert not torch.equal(augmented, images)


def test_augmentation_zero_ranges_is_identity():
    images = torch.rand(8, 1, 28, 28)
    assert torch.equal(random_affine(images, 0, 0, 0), images)


def test_augmentation_shift_moves_ink():
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 12:16, 12:16] = 1.0
    shifted = random_affine(image, 0, 2, 0, torch.Generator().manual_seed(3))
    ys, xs = torch.nonzero(shifted[0, 0] > 0.5, as_tuple=True)
    assert abs(ys.float().mean().item() - 13.5) <= 2.01
    assert abs(xs.float().mean().item() - 13.5) <= 2.01
    assert shifted.sum() > 0


def test_augmentation_is_seeded():
    images = torch.rand(16, 1, 28, 28)
    first = random_affine(images, 10, 2, 0.1, torch.Generator().manual_seed(7))
    second = random_affine(images, 10, 2, 0.1, torch.Generator().manual_seed(7))
    assert torch.equal(first, second)


def test_evaluation_is_deterministic(test_split):
    images, labels = test_split
    torch.manual_seed(0)
    model = Net()
    model.train()
    x, y = to_tensor(images[:500]), torch.from_numpy(labels[:500].astype(np.int64))
    assert evaluate(model, x, y) == evaluate(model, x, y)
    assert model.training


def test_export_matches_pytorch(tmp_path, test_split):
    images, _ = test_split
    torch.manual_seed(0)
    model = Net().eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, path)
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    pixels = to_tensor(images[:200]).numpy()
    result = compare_with_pytorch(model, session, pixels)
    assert result["max_abs_diff"] < 1e-5
    assert result["argmax_agreement"] == 1.0
    assert session.run(None, {"input": pixels[:7]})[0].shape == (7, 10)


def test_export_check_detects_mismatch(tmp_path, test_split):
    images, _ = test_split
    torch.manual_seed(0)
    model = Net().eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        model.fc2.bias += 5.0 * torch.arange(10)
    with pytest.raises(ExportError, match="ONNX Runtime disagrees with PyTorch"):
        compare_with_pytorch(model, session, to_tensor(images[:50]).numpy())


def test_export_ignores_dropout(tmp_path, test_split):
    images, _ = test_split
    torch.manual_seed(0)
    model = Net()
    model.train()
    path = tmp_path / "m.onnx"
    export_onnx(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    pixels = to_tensor(images[:20]).numpy()
    np.testing.assert_array_equal(session.run(None, {"input": pixels})[0], session.run(None, {"input": pixels})[0])
    compare_with_pytorch(model, session, pixels)


def test_smoke_run_exports_loadable_model(tmp_path, mnist_dir):
    out = tmp_path / "models" / "smoke.onnx"
    result = subprocess.run(
        [sys.executable, "-m", "train", "--limit", "600", "--epochs", "2", "--batch-size", "64",
         "--data-dir", str(mnist_dir), "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "epoch  2/2" in result.stdout
    assert "test accuracy" in result.stdout
    assert sorted(os.listdir(out.parent)) == ["smoke.json", "smoke.onnx"]

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    probabilities = session.run(None, {"input": np.zeros((3, 1, 28, 28), np.float32)})[0]
    assert probabilities.shape == (3, 10)

    card = json.loads(out.with_suffix(".json").read_text())
    assert card["test_count"] == 600
    assert card["epochs"] == 2
    assert card["training"]["batch_size"] == 64
    assert card["opset"] == 20
    assert len(card["sha256"]) == 64
    assert card["input"]["name"] == "input"
    assert card["versions"]["torch"].startswith("2.13")
    assert len(card["history"]) == 2


def test_cli_rejects_bad_options(capsys, mnist_dir):
    assert train_main(["--epochs", "0", "--data-dir", str(mnist_dir)]) == 2
    assert "--epochs must be at least 1, got 0" in capsys.readouterr().err


def test_cli_reports_missing_data(capsys, tmp_path):
    assert train_main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "m.onnx")]) == 1
    error = capsys.readouterr().err
    assert "file not found" in error
    assert "python -m train.data download" in error
    assert not (tmp_path / "m.onnx").exists()


def test_same_seed_same_weights(mnist_dir):
    from train.data import load_split
    from train.loop import train

    images, labels = load_split("train", mnist_dir)
    x, y = to_tensor(images[:256]), torch.from_numpy(labels[:256].astype(np.int64))
    config = TrainConfig(epochs=1, batch_size=64, seed=5)
    weights = []
    for _ in range(2):
        torch.manual_seed(config.seed)
        model = Net()
        train(model, x, y, x[:64], y[:64], config, log=lambda *_: None)
        weights.append(model.fc2.weight.detach().clone())
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


def test_train_calls_on_start_once(mnist_dir):
    from train.data import load_split
    from train.loop import train

    images, labels = load_split("train", mnist_dir)
    x, y = to_tensor(images[:128]), torch.from_numpy(labels[:128].astype(np.int64))
    events = []
    torch.manual_seed(0)
    train(
        Net(), x, y, x[:64], y[:64], TrainConfig(epochs=2, batch_size=64),
        log=lambda line: events.append("epoch"), on_start=lambda: events.append("start"),
    )
    assert events == ["start", "epoch", "epoch"]
