"""Read, locate and download the MNIST IDX files.

This module needs only NumPy and the standard library, so the web app imports it
without pulling in torch.

Command line:
    python -m train.data download --dir data/mnist
    python -m train.data verify --dir data/mnist
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import math
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT / "data" / "mnist"

GZIP_MAGIC = b"\x1f\x8b"

# IDX type codes (third byte of the magic number) and the NumPy types they map to.
# All multi-byte values in IDX files are big-endian.
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

IMAGE_SIZE = 28
NUM_CLASSES = 10


@dataclass(frozen=True)
class MnistFile:
    """One of the four published files: its name and the SHA-256 of its decompressed bytes."""

    name: str
    sha256: str


# Checksums of the decompressed files as published by LeCun, Cortes and Burges. They are
# taken on the decompressed bytes because mirrors may recompress the gzip files.
FILES = {
    ("train", "images"): MnistFile(
        "train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
    ),
    ("train", "labels"): MnistFile(
        "train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
    ),
    ("test", "images"): MnistFile(
        "t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
    ),
    ("test", "labels"): MnistFile(
        "t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
    ),
}

# Public mirrors that serve the four files gzip-compressed under their usual names.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

DOWNLOAD_HINT = "python -m train.data download --dir {dir}"


class IDXError(ValueError):
    """An IDX file that is missing, unreadable or not what the caller expected."""


def default_data_dir() -> Path:
    """Return the MNIST directory: $MNIST_DIR if set, else data/mnist in the checkout."""
    configured = os.environ.get("MNIST_DIR")
    return Path(configured) if configured else DEFAULT_DATA_DIR


def _decompress_if_gzip(raw: bytes, path: Path) -> bytes:
    # Detect gzip by its magic bytes: a file named .gz may hold anything (an HTML error
    # page from a mirror, say), and a compressed file may have lost its suffix.
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise IDXError(f"{path}: invalid gzip data ({exc}); delete the file and download it again") from exc


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse decompressed IDX bytes into an array; `source` names the data in errors."""
    if len(data) < 4:
        raise IDXError(f"{source}: expected an IDX header of at least 4 bytes, found {len(data)} bytes")
    zero, type_code, ndim = int.from_bytes(data[0:2], "big"), data[2], data[3]
    if zero != 0 or type_code not in IDX_DTYPES or ndim == 0:
        raise IDXError(
            f"{source}: invalid IDX magic number 0x{data[:4].hex()}; expected 0x0000 followed by a "
            f"type code ({', '.join(f'0x{code:02x}' for code in IDX_DTYPES)}) and a dimension count"
        )

    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IDXError(
            f"{source}: header declares {ndim} dimensions, which needs {header_size} bytes, "
            f"but the file has {len(data)} bytes"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))

    dtype = IDX_DTYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: a forged header cannot overflow
    found = len(data) - header_size
    if found != expected:
        dims = "x".join(str(d) for d in shape)
        raise IDXError(
            f"{source}: header declares shape {dims}, which needs {expected} data bytes, "
            f"but the file has {found}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed, into a NumPy array."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise IDXError(f"{path}: file not found") from None
    except OSError as exc:
        raise IDXError(f"{path}: cannot read file ({exc.strerror})") from exc
    return parse_idx(_decompress_if_gzip(raw, path), str(path))


def find_file(data_dir: Path, name: str) -> Path:
    """Return the path of `name` in data_dir, compressed (`name.gz`) or raw (`name`)."""
    for candidate in (data_dir / f"{name}.gz", data_dir / name):
        if candidate.is_file():
            return candidate
    raise IDXError(
        f"{data_dir / (name + '.gz')}: file not found; set MNIST_DIR to the folder with the MNIST "
        f"files or run: {DOWNLOAD_HINT.format(dir=data_dir)}"
    )


def load_split(split: str, data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load the "train" or "test" split as (images uint8 [N, 28, 28], labels uint8 [N])."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()

    images_path = find_file(data_dir, FILES[(split, "images")].name)
    labels_path = find_file(data_dir, FILES[(split, "labels")].name)
    images = read_idx(images_path)
    labels = read_idx(labels_path)

    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise IDXError(
            f"{images_path}: expected unsigned bytes of shape [N, 28, 28], "
            f"found {images.dtype} of shape {list(images.shape)}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise IDXError(
            f"{labels_path}: expected unsigned bytes of shape [N], found {labels.dtype} of shape {list(labels.shape)}"
        )
    if len(labels) != len(images):
        raise IDXError(f"{labels_path}: expected {len(images)} labels to match {images_path}, found {len(labels)}")
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise IDXError(f"{labels_path}: expected labels 0-9, found {int(labels.max())}")
    return images, labels


# --- download -------------------------------------------------------------------------


def _fetch(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _write_atomically(path: Path, content: bytes) -> None:
    # Write to a temporary file in the same folder, then rename it over the target, so an
    # interrupted download never leaves a half-written file under the real name.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(content)
            tmp.flush()
            os.fsync(tmp.fileno())
        # mkstemp creates the file with mode 0600; give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _verified_decompressed(content: bytes, expected_sha256: str, source: str) -> bytes:
    data = _decompress_if_gzip(content, Path(source))
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise IDXError(f"{source}: SHA-256 of the decompressed data is {digest}, expected {expected_sha256}")
    return data


def download(
    data_dir: str | os.PathLike,
    mirrors: tuple[str, ...] | list[str] = MIRRORS,
    timeout: float = 60.0,
    log=print,
) -> list[Path]:
    """Download the four MNIST files into data_dir, verifying each one's SHA-256.

    A file already present with the right checksum is kept. Each file is tried on every
    mirror in turn; the function raises IDXError if no mirror gives valid data.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for mnist_file in FILES.values():
        target = data_dir / f"{mnist_file.name}.gz"
        if target.is_file():
            try:
                _verified_decompressed(target.read_bytes(), mnist_file.sha256, str(target))
                log(f"{target}: present, checksum verified")
                written.append(target)
                continue
            except IDXError as exc:
                log(f"{exc}; downloading it again")

        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + f"/{mnist_file.name}.gz"
            try:
                content = _fetch(url, timeout)
                _verified_decompressed(content, mnist_file.sha256, url)
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                failures.append(f"{url}: {exc}")
                log(f"{url}: failed ({exc}); trying the next mirror")
                continue
            _write_atomically(target, content)
            log(f"{target}: downloaded from {url}, checksum verified")
            written.append(target)
            break
        else:
            raise IDXError(
                f"could not download {mnist_file.name}.gz from any mirror:\n  " + "\n  ".join(failures)
                + f"\nCheck the network, name another mirror with --mirror URL, or copy the four files "
                f"into {data_dir} (or any folder, then set MNIST_DIR to it)"
            )
    return written


def verify(data_dir: str | os.PathLike) -> list[str]:
    """Check the four files in data_dir against their checksums; return one problem per line."""
    problems = []
    for mnist_file in FILES.values():
        try:
            path = find_file(Path(data_dir), mnist_file.name)
            _verified_decompressed(path.read_bytes(), mnist_file.sha256, str(path))
        except IDXError as exc:
            problems.append(str(exc))
        except OSError as exc:
            problems.append(f"{exc.filename}: cannot read file ({exc.strerror})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.data", description="Download or verify the MNIST files.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("download", "download the four files and verify their checksums"),
                            ("verify", "verify the checksums of the files already present")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument(
            "--dir", "--mnist-dir", dest="dir", type=Path, default=default_data_dir(),
            help="folder for the MNIST files (default: $MNIST_DIR, else data/mnist in the checkout)",
        )
    download_parser = commands.choices["download"]
    download_parser.add_argument(
        "--mirror", action="append", dest="mirrors",
        help="base URL of a mirror to try, in order; repeat for several (default: the public mirrors)",
    )
    download_parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default: 60)")
    args = parser.parse_args(argv)

    if args.command == "download":
        try:
            download(args.dir, tuple(args.mirrors or MIRRORS), args.timeout)
        except IDXError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0

    problems = verify(args.dir)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print(f"{args.dir}: all four MNIST files present, checksums verified")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
