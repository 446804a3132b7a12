"""Tests for train/data.py: IDX parsing, split loading, checksums, download and the CLI.

Most tests build small IDX files in tmp_path. Tests that use the genuine_mnist_dir fixture read the
four MNIST files from $MNIST_DIR and fail when it is unset. The download tests run HTTP servers on
127.0.0.1 that serve folders under a temporary directory, so no request leaves the machine.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.client
import http.server
import os
import shutil
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from train.data import (
    FILES,
    IDXError,
    download,
    load_split,
    main,
    parse_idx,
    read_idx,
    verify,
)

TEST_IMAGES = FILES[("test", "images")].name
TEST_LABELS = FILES[("test", "labels")].name
GZ_NAMES = sorted(f"{mnist_file.name}.gz" for mnist_file in FILES.values())

# Label counts for digits 0-9, as published with the data set.
LABEL_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}

HTML_PAGE = b"<html>Not found</html>"


def idx_header(type_code: int, shape: tuple[int, ...]) -> bytes:
    """Build an IDX header: two zero bytes, the type code, the dimension count, then each size."""
    return struct.pack(">BBBB", 0, 0, type_code, len(shape)) + struct.pack(f">{len(shape)}I", *shape)


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """Encode `array` as an IDX file, storing the values big-endian."""
    big_endian = array.dtype.newbyteorder(">")
    return idx_header(type_code, array.shape) + array.astype(big_endian).tobytes()


def make_images(count: int) -> np.ndarray:
    return np.arange(count * 28 * 28, dtype=np.uint8).reshape(count, 28, 28)


def write_split(
    folder: Path,
    images: np.ndarray,
    labels: np.ndarray,
    compress: bool = True,
    image_type_code: int = 0x08,
) -> None:
    """Write the test split's two files into folder, as `name.gz` or as raw `name`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in ((TEST_IMAGES, idx_bytes(images, image_type_code)), (TEST_LABELS, idx_bytes(labels))):
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (folder / name).write_bytes(content)


@pytest.fixture(scope="session")
def genuine_mnist_dir() -> Path:
    """The folder named by $MNIST_DIR, which contains the four published MNIST .gz files."""
    if "MNIST_DIR" not in os.environ:
        pytest.fail(
            "MNIST_DIR is not set; set it to the folder with the four MNIST .gz files "
            "(for example ../shared/mnist beside the checkout) to run the tests that read the real data"
        )
    return Path(os.environ["MNIST_DIR"])


# --- parse_idx and read_idx -----------------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "compress"),
    [
        ("labels-idx1-ubyte", False),
        ("labels-idx1-ubyte.gz", True),
        ("labels-idx1-ubyte", True),
        ("labels-idx1-ubyte.gz", False),
    ],
    ids=["raw", "gzip", "gzip-without-suffix", "raw-named-gz"],
)
def test_read_idx_valid_file(tmp_path, file_name, compress):
    labels = np.array([7, 2, 1, 0, 4], dtype=np.uint8)
    content = idx_bytes(labels)
    path = tmp_path / file_name
    path.write_bytes(gzip.compress(content) if compress else content)

    array = read_idx(path)

    assert array.dtype == np.uint8
    np.testing.assert_array_equal(array, labels)


def test_read_idx_three_dims(tmp_path):
    images = make_images(3)
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(idx_bytes(images)))

    np.testing.assert_array_equal(read_idx(path), images)


def test_parse_idx_zero_length_dimension():
    array = parse_idx(idx_header(0x08, (0,)))

    assert array.shape == (0,)


@pytest.mark.parametrize(
    ("type_code", "values"),
    [
        (0x09, np.array([-128, -1, 0, 127], dtype=np.int8)),
        (0x0B, np.array([-32768, -2, 258, 32767], dtype=np.int16)),
        (0x0C, np.array([[-5, 70000], [2**31 - 1, -(2**31)]], dtype=np.int32)),
        (0x0D, np.array([-1.5, 0.0, 3.25e10], dtype=np.float32)),
        (0x0E, np.array([-1e300, 0.1, 2.5], dtype=np.float64)),
    ],
    ids=["int8", "int16", "int32", "float32", "float64"],
)
def test_parse_idx_wide_types(type_code, values):
    array = parse_idx(idx_bytes(values, type_code))

    assert array.dtype == values.dtype
    assert array.dtype.isnative
    np.testing.assert_array_equal(array, values)


def test_parse_idx_int32_header_bytes():
    data = bytes.fromhex("00000c01 00000002 fffffffb 00011170")

    array = parse_idx(data)

    assert array.tolist() == [-5, 70000]


@pytest.mark.parametrize(
    "header",
    [
        b"\x01\x00\x08\x01\x00\x00\x00\x01\x07",
        b"\x00\x01\x08\x01\x00\x00\x00\x01\x07",
        b"\x00\x00\x07\x01\x00\x00\x00\x01\x07",
        b"\x00\x00\x0a\x01\x00\x00\x00\x01\x07",
        b"\x00\x00\x08\x00\x07",
    ],
    ids=["nonzero-first-byte", "nonzero-second-byte", "type-code-0x07", "type-code-0x0a", "zero-dims"],
)
def test_parse_idx_invalid_magic(header):
    with pytest.raises(IDXError, match="invalid IDX magic number") as excinfo:
        parse_idx(header, "sample.idx")

    assert str(excinfo.value).startswith("sample.idx: ")
    assert f"0x{header[:4].hex()}" in str(excinfo.value)


@pytest.mark.parametrize("data", [b"", b"\x00\x00\x08"], ids=["empty", "three-bytes"])
def test_parse_idx_short_magic(data):
    with pytest.raises(IDXError, match=f"header of at least 4 bytes, found {len(data)} bytes"):
        parse_idx(data)


def test_parse_idx_header_shorter_than_dims():
    data = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">I", 10)

    with pytest.raises(IDXError) as excinfo:
        parse_idx(data, "images.idx")

    message = str(excinfo.value)
    assert "declares 3 dimensions" in message
    assert "needs 16 bytes" in message
    assert "has 8 bytes" in message


@pytest.mark.parametrize(
    ("data_bytes", "suffix"),
    [(1500, ""), (1570, ""), (1500, ".gz"), (0, "")],
    ids=["truncated", "trailing-bytes", "truncated-gzip", "header-only"],
)
def test_read_idx_wrong_data_size(tmp_path, data_bytes, suffix):
    content = idx_header(0x08, (2, 28, 28)) + bytes(data_bytes)
    path = tmp_path / f"images-idx3-ubyte{suffix}"
    path.write_bytes(gzip.compress(content) if suffix else content)

    with pytest.raises(IDXError) as excinfo:
        read_idx(path)

    message = str(excinfo.value)
    assert str(path) in message
    assert "shape 2x28x28" in message
    assert "needs 1568 data bytes" in message
    assert f"the file has {data_bytes}" in message


def test_read_idx_html_named_gz(tmp_path):
    path = tmp_path / f"{TEST_LABELS}.gz"
    path.write_bytes(HTML_PAGE)

    with pytest.raises(IDXError, match="invalid IDX magic number") as excinfo:
        read_idx(path)

    assert str(path) in str(excinfo.value)


@pytest.mark.parametrize(
    "content",
    [
        b"\x1f\x8b" + b"this is not a deflate stream",
        gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)))[:40],
    ],
    ids=["garbage-after-magic", "truncated-stream"],
)
def test_read_idx_corrupt_gzip(tmp_path, content):
    path = tmp_path / f"{TEST_LABELS}.gz"
    path.write_bytes(content)

    with pytest.raises(IDXError, match="invalid gzip data") as excinfo:
        read_idx(path)

    assert str(path) in str(excinfo.value)


def test_read_idx_missing_file(tmp_path):
    path = tmp_path / "absent-idx1-ubyte"

    with pytest.raises(IDXError, match="file not found") as excinfo:
        read_idx(path)

    assert str(path) in str(excinfo.value)


def test_parse_idx_overflowing_shape():
    data = idx_header(0x08, (2**31, 2**31, 4))

    with pytest.raises(IDXError, match="huge.idx"):
        parse_idx(data, "huge.idx")


# --- load_split -----------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
def test_load_split_small_files(tmp_path, compress):
    images = make_images(3)
    labels = np.array([0, 9, 4], dtype=np.uint8)
    write_split(tmp_path, images, labels, compress=compress)

    loaded_images, loaded_labels = load_split("test", tmp_path)

    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)


def test_load_split_prefers_gzip(tmp_path):
    images = make_images(2)
    write_split(tmp_path, images, np.array([1, 2], dtype=np.uint8), compress=True)
    write_split(tmp_path, images, np.array([8, 8], dtype=np.uint8), compress=False)

    _, labels = load_split("test", tmp_path)

    assert labels.tolist() == [1, 2]


def test_load_split_default_dir(tmp_path, monkeypatch):
    write_split(tmp_path, make_images(2), np.array([3, 5], dtype=np.uint8))
    monkeypatch.setenv("MNIST_DIR", str(tmp_path))

    _, labels = load_split("test")

    assert labels.tolist() == [3, 5]


def test_load_split_invalid_split(tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'valid'"):
        load_split("valid", tmp_path)


def test_load_split_count_mismatch(tmp_path):
    write_split(tmp_path, make_images(3), np.array([1, 2], dtype=np.uint8))

    with pytest.raises(IDXError) as excinfo:
        load_split("test", tmp_path)

    message = str(excinfo.value)
    assert TEST_LABELS in message
    assert "expected 3 labels" in message
    assert "found 2" in message


@pytest.mark.parametrize(
    ("images", "type_code", "found"),
    [
        (np.zeros((2, 27, 28), dtype=np.uint8), 0x08, "uint8 of shape [2, 27, 28]"),
        (np.zeros((2, 28, 28, 1), dtype=np.uint8), 0x08, "uint8 of shape [2, 28, 28, 1]"),
        (np.zeros((2, 784), dtype=np.uint8), 0x08, "uint8 of shape [2, 784]"),
        (np.zeros((2, 28, 28), dtype=np.int8), 0x09, "int8 of shape [2, 28, 28]"),
    ],
    ids=["27-rows", "four-dims", "flat", "int8"],
)
def test_load_split_wrong_images(tmp_path, images, type_code, found):
    write_split(tmp_path, images, np.array([1, 2], dtype=np.uint8), image_type_code=type_code)

    with pytest.raises(IDXError) as excinfo:
        load_split("test", tmp_path)

    message = str(excinfo.value)
    assert TEST_IMAGES in message
    assert "expected unsigned bytes of shape [N, 28, 28]" in message
    assert found in message


def test_load_split_two_dim_labels(tmp_path):
    write_split(tmp_path, make_images(2), np.array([[1], [2]], dtype=np.uint8))

    with pytest.raises(IDXError, match=r"expected unsigned bytes of shape \[N\], found uint8 of shape \[2, 1\]"):
        load_split("test", tmp_path)


@pytest.mark.parametrize("bad_label", [10, 255])
def test_load_split_label_out_of_range(tmp_path, bad_label):
    write_split(tmp_path, make_images(3), np.array([0, bad_label, 9], dtype=np.uint8))

    with pytest.raises(IDXError) as excinfo:
        load_split("test", tmp_path)

    message = str(excinfo.value)
    assert TEST_LABELS in message
    assert f"expected labels 0-9, found {bad_label}" in message


@pytest.mark.parametrize("present", [[], [TEST_IMAGES]], ids=["both-missing", "labels-missing"])
def test_load_split_missing_files(tmp_path, present):
    for name in present:
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(make_images(1))))

    with pytest.raises(IDXError) as excinfo:
        load_split("test", tmp_path)

    message = str(excinfo.value)
    assert "file not found" in message
    assert "python -m train.data download" in message
    assert str(tmp_path) in message


# --- genuine MNIST files --------------------------------------------------------------


@pytest.mark.parametrize(("split", "count"), [("test", 10_000), ("train", 60_000)])
def test_load_split_genuine(genuine_mnist_dir, split, count):
    images, labels = load_split(split, genuine_mnist_dir)

    assert images.shape == (count, 28, 28)
    assert images.dtype == np.uint8
    assert labels.shape == (count,)
    assert labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == LABEL_COUNTS[split]


def test_verify_genuine(genuine_mnist_dir):
    assert verify(genuine_mnist_dir) == []


def test_verify_empty_dir(tmp_path):
    problems = verify(tmp_path)

    assert len(problems) == 4
    assert all("file not found" in problem for problem in problems)


def test_verify_wrong_content(tmp_path, genuine_mnist_dir):
    for name in GZ_NAMES:
        shutil.copyfile(genuine_mnist_dir / name, tmp_path / name)
    (tmp_path / f"{TEST_LABELS}.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(10_000, dtype=np.uint8))))

    problems = verify(tmp_path)

    assert len(problems) == 1
    assert f"{TEST_LABELS}.gz" in problems[0]
    assert "SHA-256 of the decompressed data" in problems[0]


# --- download -------------------------------------------------------------------------


class QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    """A file server handler that keeps request logs out of the test output."""

    def log_message(self, format, *args):
        pass


class TruncatingHandler(http.server.BaseHTTPRequestHandler):
    """A handler that declares a 1000-byte body, sends 10 bytes and closes the connection."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"\x1f\x8b" + bytes(8))

    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def local_server(handler) -> Iterator[str]:
    """Run an HTTP server on 127.0.0.1 at a free port and yield its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """Keep urllib from sending the requests for 127.0.0.1 through a proxy set in the environment."""
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory, genuine_mnist_dir) -> Iterator[dict[str, str]]:
    """Serve three mirror folders and yield their URLs by role.

    "bad" serves a corrupt gzip stream and an HTML page under two of the names and nothing
    (404) under the other two. "good" serves copies of the genuine files. "empty" serves no files.
    """
    root = tmp_path_factory.mktemp("mirrors")
    bad, good, empty = root / "bad", root / "good", root / "empty"
    for folder in (bad, good, empty):
        folder.mkdir()

    for name in GZ_NAMES:
        shutil.copyfile(genuine_mnist_dir / name, good / name)

    genuine_labels = (genuine_mnist_dir / f"{TEST_LABELS}.gz").read_bytes()
    (bad / f"{TEST_LABELS}.gz").write_bytes(genuine_labels[:20] + bytes(len(genuine_labels) - 20))
    (bad / f"{FILES[('train', 'images')].name}.gz").write_bytes(HTML_PAGE)

    with local_server(functools.partial(QuietFileHandler, directory=str(root))) as base_url:
        yield {role: f"{base_url}/{role}/" for role in ("bad", "good", "empty")}


def test_download_falls_back_to_next_mirror(tmp_path, mirrors):
    target = tmp_path / "mnist"
    messages = []

    written = download(target, mirrors=[mirrors["bad"], mirrors["good"]], timeout=10, log=messages.append)

    assert sorted(path.name for path in written) == GZ_NAMES
    assert sorted(path.name for path in target.iterdir()) == GZ_NAMES
    assert verify(target) == []
    assert sum("trying the next mirror" in message for message in messages) == 4
    assert sum("checksum verified" in message for message in messages) == 4


def test_download_keeps_valid_files(tmp_path, mirrors):
    target = tmp_path / "mnist"
    download(target, mirrors=[mirrors["good"]], timeout=10, log=lambda message: None)
    mtimes = {path.name: path.stat().st_mtime_ns for path in target.iterdir()}
    messages = []

    written = download(target, mirrors=[mirrors["empty"]], timeout=10, log=messages.append)

    assert sorted(path.name for path in written) == GZ_NAMES
    assert {path.name: path.stat().st_mtime_ns for path in target.iterdir()} == mtimes
    assert len(messages) == 4
    assert all("present, checksum verified" in message for message in messages)


def test_download_all_mirrors_bad(tmp_path, mirrors):
    target = tmp_path / "mnist"
    messages = []

    with pytest.raises(IDXError) as excinfo:
        download(target, mirrors=[mirrors["bad"], mirrors["empty"]], timeout=10, log=messages.append)

    message = str(excinfo.value)
    first_name = f"{FILES[('train', 'images')].name}.gz"
    assert f"could not download {first_name} from any mirror" in message
    assert f"{mirrors['bad']}{first_name}" in message
    assert f"{mirrors['empty']}{first_name}" in message
    assert "404" in message
    assert list(target.iterdir()) == []


def test_download_replaces_corrupt_file(tmp_path, mirrors, genuine_mnist_dir):
    target = tmp_path / "mnist"
    target.mkdir()
    corrupt = target / f"{TEST_LABELS}.gz"
    corrupt.write_bytes(HTML_PAGE)
    messages = []

    download(target, mirrors=[mirrors["good"]], timeout=10, log=messages.append)

    assert corrupt.read_bytes() == (genuine_mnist_dir / f"{TEST_LABELS}.gz").read_bytes()
    assert verify(target) == []
    assert any(f"{corrupt}: SHA-256 of the decompressed data" in message for message in messages)
    assert any("downloading it again" in message for message in messages)
    assert sorted(path.name for path in target.iterdir()) == GZ_NAMES


def test_download_truncated_response(tmp_path, mirrors):
    target = tmp_path / "mnist"

    with local_server(TruncatingHandler) as truncating_url:
        download(target, mirrors=[truncating_url, mirrors["good"]], timeout=10, log=lambda message: None)

    assert verify(target) == []


def test_download_file_mode_follows_umask(tmp_path, mirrors):
    target = tmp_path / "mnist"
    previous_umask = os.umask(0o022)
    try:
        download(target, mirrors=[mirrors["good"]], timeout=10, log=lambda message: None)
    finally:
        os.umask(previous_umask)

    modes = {path.name: path.stat().st_mode & 0o777 for path in target.iterdir()}
    assert modes == {name: 0o644 for name in GZ_NAMES}


# --- command line ---------------------------------------------------------------------


def test_cli_verify_empty_dir(tmp_path, capsys):
    assert main(["verify", "--dir", str(tmp_path)]) == 1

    captured = capsys.readouterr()
    assert captured.err.count("error: ") == 4
    assert "file not found" in captured.err
    assert captured.out == ""


def test_cli_verify_genuine(genuine_mnist_dir, capsys):
    assert main(["verify", "--dir", str(genuine_mnist_dir)]) == 0

    captured = capsys.readouterr()
    assert "checksums verified" in captured.out
    assert captured.err == ""


def test_cli_download_bad_mirror(tmp_path, mirrors, capsys):
    target = tmp_path / "mnist"

    status = main(["download", "--dir", str(target), "--mirror", mirrors["bad"], "--timeout", "10"])

    assert status == 1
    assert "error: could not download" in capsys.readouterr().err
    assert list(target.iterdir()) == []


def test_cli_download_good_mirror(tmp_path, mirrors):
    target = tmp_path / "mnist"

    status = main(["download", "--dir", str(target), "--mirror", mirrors["bad"], "--mirror", mirrors["good"]])

    assert status == 0
    assert verify(target) == []
