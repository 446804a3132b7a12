"""The ONNX Runtime session module, run on the committed model and the real test set."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from train.data import load_split
from webapp import inference
from webapp.inference import Model, ModelError, SessionSettings, get_model
from webapp.testset import to_model_input


@pytest.fixture
def settings(model_path):
    return SessionSettings(model_path=str(model_path), intra_op_threads=1)


def test_committed_model_accuracy(settings, test_split, model_path):
    images, labels = test_split
    model = Model(settings)
    probabilities = np.concatenate(
        [model.predict(to_model_input(images[i : i + 1000])) for i in range(0, len(images), 1000)]
    )
    correct = int((probabilities.argmax(1) == labels).sum())
    card = json.loads(model_path.with_suffix(".json").read_text())
    assert len(labels) == 10_000
    assert correct / len(labels) >= 0.99
    assert correct == card["test_correct"]


def test_probabilities_sum_to_one(settings, test_split):
    images, _ = test_split
    probabilities = Model(settings).predict(to_model_input(images[:100]))
    assert probabilities.shape == (100, 10)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)
    assert (probabilities >= 0).all()


def test_batch_matches_single_calls(settings, test_split):
    images, _ = test_split
    model = Model(settings)
    batch = to_model_input(images[:64])
    batched = model.predict(batch)
    singles = np.concatenate([model.predict(batch[i : i + 1]) for i in range(64)])
    np.testing.assert_array_equal(batched.argmax(1), singles.argmax(1))
    np.testing.assert_allclose(batched, singles, atol=1e-5)


def test_names_read_from_model(settings):
    model = Model(settings)
    assert model.input_name == "input"
    assert model.output_name == "output"
    assert model.providers == ["CPUExecutionProvider"]


def test_thread_setting_applied(settings):
    model = Model(settings)
    assert model.session.get_session_options().intra_op_num_threads == 1


def test_singleton_per_process(settings):
    inference.reset()
    first = get_model(settings)
    assert get_model(settings) is first
    inference.reset()
    assert get_model(settings) is not first


def test_concurrent_first_use_builds_once(settings):
    inference.reset()
    models = []
    threads = [threading.Thread(target=lambda: models.append(get_model(settings))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(models) == 8
    assert all(m is models[0] for m in models)


def _predict_in_child(settings, pixels, queue):
    model = get_model(settings)
    queue.put((id(model), model.predict(pixels).argmax(1).tolist()))


def test_forked_child_can_predict(settings, test_split):
    images, labels = test_split
    pixels = to_model_input(images[:16])
    parent_model = get_model(settings)
    expected = parent_model.predict(pixels).argmax(1).tolist()

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_predict_in_child, args=(settings, pixels, queue))
    child.start()
    child_model_id, child_predictions = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert child_predictions == expected


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="not found; train one with: python -m train"):
        Model(SessionSettings(model_path=str(tmp_path / "absent.onnx")))


@pytest.mark.parametrize(
    "content",
    [b"", b"<html>not a model</html>", b"\x08\x07" + b"\xff" * 100],
    ids=["empty", "html", "garbage"],
)
def test_invalid_model_file(tmp_path, content):
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=r"could not be loaded by ONNX Runtime.*python -m train"):
        Model(SessionSettings(model_path=str(path)))


def test_truncated_model_file(tmp_path, model_path):
    path = tmp_path / "truncated.onnx"
    data = model_path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(ModelError, match="could not be loaded by ONNX Runtime"):
        Model(SessionSettings(model_path=str(path)))


def _identity_model(path, input_shape, output_shape):
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "wrong",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_wrong_input_shape(tmp_path):
    path = tmp_path / "wrong.onnx"
    _identity_model(path, ["N", 784], ["N", 784])
    with pytest.raises(ModelError, match=r"expected input float \[N, 1, 28, 28\], found tensor\(float\) \['N', 784\]"):
        Model(SessionSettings(model_path=str(path)))


def test_wrong_output_shape(tmp_path):
    path = tmp_path / "wrong.onnx"
    _identity_model(path, ["N", 1, 28, 28], ["N", 1, 28, 28])
    with pytest.raises(ModelError, match=r"expected output \[N, 10\]"):
        Model(SessionSettings(model_path=str(path)))


def test_quantize_writes_model_within_limit(model_path, mnist_dir, tmp_path):
    from train import quantize

    out = tmp_path / "mnist.int8.onnx"
    # A generous limit: the tool must write the model and a card that match each other.
    status = quantize.main(["--model", str(model_path), "--out", str(out), "--data-dir", str(mnist_dir),
                            "--calibration-images", "200", "--max-drop", "5"])
    assert status == 0
    card = json.loads(out.with_suffix(".json").read_text())
    images, labels = load_split("test", mnist_dir)
    predicted = Model(SessionSettings(model_path=str(out))).predict(to_model_input(images)).argmax(1)
    assert int((predicted == labels).sum()) == card["test_correct"]
    assert card["quantized_from"]["sha256"] == hashlib.sha256(model_path.read_bytes()).hexdigest()
    assert card["float32_test_correct"] - card["test_correct"] <= 500


def test_quantize_rejects_accuracy_drop(model_path, mnist_dir, tmp_path, capsys):
    from train import quantize

    out = tmp_path / "mnist.int8.onnx"
    out.write_bytes(b"an older file")
    # A limit below zero fails even a model that loses nothing.
    status = quantize.main(["--model", str(model_path), "--out", str(out), "--data-dir", str(mnist_dir),
                            "--calibration-images", "200", "--max-drop", "-1"])
    assert status == 1
    assert f"{out} was not written" in capsys.readouterr().err
    assert out.read_bytes() == b"an older file"
    assert not out.with_suffix(".json").exists()
