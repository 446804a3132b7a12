"""Preprocessing of uploads, canvas drawings and JSON pixels, checked with the real model.

The images are made here with Pillow and NumPy from real MNIST test digits, so each case
states exactly what a user could send.
"""

from __future__ import annotations

import io
import math
import resource
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from webapp.exceptions import InputError, NoDigitFound
from webapp.inference import Model, SessionSettings
from webapp.preprocess import (
    MAX_UPLOAD_PIXELS,
    Preprocessed,
    decode_image,
    pixels_from_json,
    preprocess_image,
    preprocess_upload,
)

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(model_path):
    return Model(SessionSettings(model_path=str(model_path)))


def first_digit(split, label: int) -> np.ndarray:
    """Return the first MNIST test image with this label, uint8 [28, 28] white on black."""
    images, labels = split
    return images[int(np.argmax(labels == label))]


def predict(model: Model, result: Preprocessed) -> int:
    return int(model.predict(result.model_input()).argmax())


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def dark_on_white(digit: np.ndarray, size: int) -> Image.Image:
    """Return the digit as dark ink on white paper, upscaled to size x size (mode L)."""
    return Image.fromarray(255 - digit).resize((size, size), Image.Resampling.BILINEAR)


def transparent_canvas(digit: np.ndarray, size: int = 280) -> Image.Image:
    """Return an RGBA canvas, clear (0, 0, 0, 0), with the digit as black strokes of alpha = intensity."""
    alpha = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR))
    rgba = np.zeros((size, size, 4), dtype=np.uint8)
    rgba[..., 3] = alpha
    return Image.fromarray(rgba)


def photo_of(digit: np.ndarray, seed: int) -> bytes:
    """Return a JPEG like a phone photo: grey paper with a lighting gradient and noise, and a dark digit."""
    rng = np.random.default_rng(seed)
    width, height = 400, 300
    xs = np.linspace(0.0, 1.0, width)[None, :]
    ys = np.linspace(0.0, 1.0, height)[:, None]
    page = 165.0 + 60.0 * xs + 20.0 * ys  # light grey, lighter to the right and bottom
    ink = np.asarray(Image.fromarray(digit).resize((160, 160), Image.Resampling.BILINEAR), dtype=np.float64) / 255
    region = page[70:230, 150:310]
    page[70:230, 150:310] = region * (1.0 - ink) + 50.0 * ink  # pencil-grey strokes
    page += rng.normal(0.0, 8.0, page.shape)
    # A slightly warm white, as paper under indoor light.
    rgb = np.clip(np.stack([page, page * 0.97, page * 0.92], axis=-1), 0, 255).astype(np.uint8)
    return encode(Image.fromarray(rgb), "JPEG", quality=85)


def centre_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(pixels.shape)
    mass = pixels.astype(np.float64).sum()
    return float((rows * pixels).sum() / mass), float((cols * pixels).sum() / mass)


def bounding_box_size(pixels: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero(pixels.any(axis=1))
    cols = np.flatnonzero(pixels.any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def png_declaring(width: int, height: int) -> bytes:
    """Return a valid 1x1 PNG whose IHDR is patched to declare width x height, with a correct CRC."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    # Bytes 8-15 are the IHDR chunk's length and type, 16-28 its data and 29-32 its CRC.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def assert_input_error(data: bytes, status: int, fragment: str) -> InputError:
    with pytest.raises(InputError) as caught:
        preprocess_upload(data)
    assert caught.value.status == status
    assert fragment in caught.value.message
    return caught.value


# ---------------------------------------------------------------------------
# Digits the model must recognise
# ---------------------------------------------------------------------------


def test_transparent_canvas_seven(model, test_split):
    canvas = transparent_canvas(first_digit(test_split, 7))
    assert predict(model, preprocess_upload(encode(canvas, "PNG"))) == 7


def test_dark_on_white_three(model, test_split):
    inverted = Image.fromarray(255 - first_digit(test_split, 3))
    upscaled = inverted.resize((280, 280), Image.Resampling.NEAREST).convert("RGB")
    assert predict(model, preprocess_upload(encode(upscaled, "PNG"))) == 3


def test_small_nine_in_corner(model, test_split):
    canvas = Image.new("RGB", (280, 280), "white")
    canvas.paste(dark_on_white(first_digit(test_split, 9), 60), (0, 0))
    result = preprocess_upload(encode(canvas, "PNG"))
    assert predict(model, result) == 9
    row, col = centre_of_mass(result.pixels)
    assert abs(row - 14) <= 1
    assert abs(col - 14) <= 1


@pytest.mark.parametrize("label", range(10))
def test_photo_on_grey_paper(model, test_split, label):
    result = preprocess_upload(photo_of(first_digit(test_split, label), seed=label))
    assert predict(model, result) == label


def test_photo_without_digit_no_digit_found():
    rng = np.random.default_rng(0)
    paper = np.clip(190 + rng.normal(0, 8, (300, 400)), 0, 255).astype(np.uint8)
    with pytest.raises(NoDigitFound):
        preprocess_upload(encode(Image.fromarray(paper), "JPEG", quality=85))


def test_mnist_digit_round_trip(model, test_split):
    images, labels = test_split
    predicted = [predict(model, preprocess_image(Image.fromarray(images[i]))) for i in range(200)]
    correct = int((np.array(predicted) == labels[:200]).sum())
    assert correct >= 196, f"{correct} of 200 MNIST digits right after preprocessing"


@pytest.mark.parametrize("label", [0, 1, 4, 7, 8])
def test_output_centred_and_twenty_pixels(test_split, label):
    result = preprocess_image(dark_on_white(first_digit(test_split, label), 280))
    row, col = centre_of_mass(result.pixels)
    height, width = bounding_box_size(result.pixels)
    assert abs(row - 14) <= 1, f"centre row {row:.2f}"
    assert abs(col - 14) <= 1, f"centre column {col:.2f}"
    assert abs(max(height, width) - 20) <= 1, f"bounding box {height}x{width}"


def test_white_on_black_not_inverted(test_split):
    digit = first_digit(test_split, 2)
    white_on_black = preprocess_image(Image.fromarray(digit))
    black_on_white = preprocess_image(Image.fromarray(255 - digit))
    assert white_on_black.pixels.max() == 255
    assert white_on_black.pixels[0, 0] == 0
    assert np.abs(white_on_black.pixels.astype(int) - black_on_white.pixels).max() <= 2


# ---------------------------------------------------------------------------
# Blank images
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGBA", (280, 280), (0, 0, 0, 0)),
        Image.new("RGB", (280, 280), "white"),
        Image.new("L", (280, 280), 0),
        Image.new("RGB", (280, 280), (120, 40, 200)),
        Image.new("LA", (50, 50), (255, 0)),
    ],
    ids=["transparent", "white", "black", "purple", "clear-LA"],
)
def test_blank_canvas_no_digit(image):
    with pytest.raises(NoDigitFound) as caught:
        preprocess_upload(encode(image, "PNG"))
    assert caught.value.status == 422


@pytest.mark.parametrize("colour", [(255, 255, 255, 255), (0, 0, 0, 255), (0, 0, 0, 0)])
def test_one_pixel_no_digit(colour):
    # A 1x1 image is one flat colour, which by definition has no ink.
    with pytest.raises(NoDigitFound):
        preprocess_upload(encode(Image.new("RGBA", (1, 1), colour), "PNG"))


def test_blank_strip_no_digit():
    with pytest.raises(NoDigitFound):
        preprocess_upload(encode(Image.new("L", (10000, 10), 255), "PNG"))


def test_strip_with_line_gives_line():
    strip = Image.new("L", (10000, 10), 255)
    strip.paste(0, (4000, 3, 6000, 7))  # a dash across the middle fifth
    result = preprocess_upload(encode(strip, "PNG"))
    height, width = bounding_box_size(result.pixels)
    assert width == 20
    assert height <= 2


# ---------------------------------------------------------------------------
# Formats and colour modes
# ---------------------------------------------------------------------------


def test_exif_rotated_jpeg_matches_upright(model, test_split):
    upright = dark_on_white(first_digit(test_split, 7), 280).convert("RGB")
    # Orientation 6 means: rotate the stored pixels 90 degrees clockwise to display them.
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    from_exif = preprocess_upload(encode(stored, "JPEG", quality=95, exif=exif))
    from_upright = preprocess_upload(encode(upright, "JPEG", quality=95))
    ignoring_exif = preprocess_upload(encode(stored, "JPEG", quality=95))

    difference = np.abs(from_exif.pixels.astype(int) - from_upright.pixels).mean()
    sideways = np.abs(ignoring_exif.pixels.astype(int) - from_upright.pixels).mean()
    assert predict(model, from_exif) == 7
    assert difference < 2, f"mean difference {difference:.2f} of 255"
    assert sideways > 10 * difference


def test_palette_png_with_transparency(model, test_split):
    digit = first_digit(test_split, 4)
    indexes = (np.asarray(Image.fromarray(digit).resize((140, 140), Image.Resampling.BILINEAR)) > 100).astype(np.uint8)
    image = Image.fromarray(indexes, mode=None).convert("P")
    image.putpalette([0, 0, 0, 20, 20, 20] + [0] * 762)  # index 0: clear background, 1: dark ink
    data = encode(image, "PNG", transparency=0)
    assert Image.open(io.BytesIO(data)).mode == "P"
    assert predict(model, preprocess_upload(data)) == 4


def test_sixteen_bit_png(model, test_split):
    ink = first_digit(test_split, 5).astype(np.uint16) * 257  # 0..65535
    image = Image.fromarray(65535 - ink).resize((112, 112), Image.Resampling.BILINEAR)
    data = encode(image, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    result = preprocess_upload(data)
    eight_bit = preprocess_image(dark_on_white(first_digit(test_split, 5), 112))
    assert predict(model, result) == 5
    assert np.abs(result.pixels.astype(int) - eight_bit.pixels).mean() < 2


def test_cmyk_jpeg(model, test_split):
    key = np.asarray(Image.fromarray(first_digit(test_split, 6)).resize((140, 140), Image.Resampling.BILINEAR))
    cmyk = np.zeros((140, 140, 4), dtype=np.uint8)
    cmyk[..., 3] = key  # black ink only, on white paper
    data = encode(Image.fromarray(cmyk, mode="CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    assert predict(model, preprocess_upload(data)) == 6


def test_la_png_transparent(model, test_split):
    alpha = np.asarray(Image.fromarray(first_digit(test_split, 2)).resize((140, 140), Image.Resampling.BILINEAR))
    luminance = np.full_like(alpha, 30)
    image = Image.fromarray(np.stack([luminance, alpha], axis=-1), mode="LA")
    assert predict(model, preprocess_upload(encode(image, "PNG"))) == 2


def test_animated_gif_first_frame(model, test_split):
    first = dark_on_white(first_digit(test_split, 7), 140).convert("P")
    second = dark_on_white(first_digit(test_split, 3), 140).convert("P")
    data = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert predict(model, preprocess_upload(data)) == 7


@pytest.mark.parametrize("lossless", [True, False])
def test_webp(model, test_split, lossless):
    image = dark_on_white(first_digit(test_split, 8), 140).convert("RGB")
    assert predict(model, preprocess_upload(encode(image, "WEBP", lossless=lossless))) == 8


def test_large_jpeg_decoded_reduced(model, test_split):
    image = dark_on_white(first_digit(test_split, 1), 3000).convert("RGB")
    decoded = decode_image(encode(image, "JPEG", quality=90))
    assert decoded.size == (750, 750)  # 1/4 scale keeps both sides above 512
    assert predict(model, preprocess_image(decoded)) == 1


# ---------------------------------------------------------------------------
# Rejected uploads
# ---------------------------------------------------------------------------


def test_empty_upload():
    assert_input_error(b"", 400, "The upload is empty")


def test_text_named_png():
    error = assert_input_error(b"just some text, saved as digit.png\n", 400, "not a PNG, JPEG, WebP or GIF image")
    assert "35 bytes" in error.message


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP", "GIF"])
def test_truncated_upload(image_format):
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (120, 120, 3), dtype=np.uint8))
    if image_format == "GIF":
        noise = noise.convert("P")
    data = encode(noise, image_format)
    assert_input_error(data[: int(len(data) * 0.6)], 400, "truncated or corrupt")


@pytest.mark.parametrize("image_format", ["BMP", "TIFF", "ICO", "PPM"])
def test_other_format_rejected(image_format):
    data = encode(Image.new("RGB", (32, 32), "white"), image_format)
    error = assert_input_error(data, 415, f"The upload is a {image_format} image")
    assert "expected PNG, JPEG, WebP or GIF" in error.message


def test_declared_size_over_limit():
    error = assert_input_error(png_declaring(8000, 7000), 413, "declares 8000x7000 pixels (56,000,000)")
    assert f"the limit is {MAX_UPLOAD_PIXELS:,} pixels" in error.message


@pytest.mark.parametrize("side", [10_000, 20_000])
def test_decompression_bomb_rejected_before_decoding(side):
    # 10,000 squared is above Pillow's bomb warning and 20,000 squared above its error.
    # Decoding either would take seconds and hundreds of MB.
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    assert_input_error(png_declaring(side, side), 413, "Upload a smaller image")
    elapsed = time.perf_counter() - start
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert elapsed < 1.0
    assert grown_kib < 50_000


def test_declared_size_at_limit_passes_header_check():
    # 7000x7000 = 49 million pixels: the header passes, and the fake pixel data then fails.
    assert_input_error(png_declaring(7000, 7000), 400, "truncated or corrupt")


# ---------------------------------------------------------------------------
# Preprocessed
# ---------------------------------------------------------------------------


def test_preprocessed_arrays_read_only():
    result = Preprocessed(np.full((28, 28), 255, dtype=np.uint8))
    assert not result.pixels.flags.writeable
    assert not result.values.flags.writeable
    model_input = result.model_input()
    assert model_input.shape == (1, 1, 28, 28)
    assert model_input.dtype == np.float32
    model_input[...] = 0  # a copy: the stored values stay unchanged
    assert result.values.min() == 1.0


def test_preprocessed_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(28, 28\)"):
        Preprocessed(np.zeros((27, 28), dtype=np.uint8))


# ---------------------------------------------------------------------------
# JSON pixels
# ---------------------------------------------------------------------------


def test_json_flat_kept_exactly():
    rng = np.random.default_rng(0)
    values = rng.random(784).tolist()
    result = pixels_from_json(values)
    expected = np.array(values, dtype=np.float64).astype(np.float32).reshape(1, 1, 28, 28)
    np.testing.assert_array_equal(result.model_input(), expected)
    np.testing.assert_array_equal(result.pixels, np.rint(expected[0, 0] * 255).astype(np.uint8))


def test_json_nested_equals_flat():
    values = [(i % 29) / 28 for i in range(784)]
    nested = [values[r * 28 : (r + 1) * 28] for r in range(28)]
    np.testing.assert_array_equal(pixels_from_json(nested).model_input(), pixels_from_json(values).model_input())


def test_json_integers_and_bounds_accepted():
    values = [0] * 392 + [1] * 391 + [0.5]
    result = pixels_from_json(values)
    assert result.pixels.reshape(-1)[:392].max() == 0
    assert result.pixels.reshape(-1)[392:783].min() == 255
    assert result.pixels.reshape(-1)[783] == 128  # round(127.5) to even


def test_json_not_centred_or_cropped():
    values = [0.0] * 784
    values[0] = 1.0  # a single dot in the corner stays in the corner
    result = pixels_from_json(values)
    assert result.pixels[0, 0] == 255
    assert result.pixels.sum() == 255


def _flat_with(index: int, item) -> list:
    values = [0.0] * 784
    values[index] = item
    return values


def _nested_with(row: int, col: int, item) -> list:
    rows = [[0.0] * 28 for _ in range(28)]
    rows[row][col] = item
    return rows


BAD_JSON = [
    ("object", {"pixels": [0.0] * 784}, "pixels: expected a list of 784 numbers or 28 lists of 28, got an object"),
    ("string", "0.5", "got a string"),
    ("null", None, "got null"),
    ("number", 0.5, "got a number"),
    ("boolean", True, "got a boolean"),
    ("empty", [], "pixels: expected 784 values, got 0"),
    ("783 values", [0.0] * 783, "pixels: expected 784 values, got 783"),
    ("785 values", [0.0] * 785, "pixels: expected 784 values, got 785"),
    ("27 rows", [[0.0] * 28 for _ in range(27)], "expected 28 rows of 28 values, got 27 rows"),
    ("short row", [[0.0] * 28] * 5 + [[0.0] * 27] + [[0.0] * 28] * 22, "pixels[5]: expected 28 values in row 5, got 27"),
    ("row not a list", [[0.0] * 28] * 3 + [0.0] + [[0.0] * 28] * 24, "pixels[3]: expected row 3 to be a list of 28 numbers, got a number"),
    ("true", _flat_with(12, True), "pixels[12]: expected a number in [0, 1], got true"),
    ("false", _flat_with(0, False), "pixels[0]: expected a number in [0, 1], got false"),
    ("string value", _flat_with(7, "0.5"), 'pixels[7]: expected a number in [0, 1], got the string "0.5"'),
    ("long string", _flat_with(7, "x" * 100), 'got the string "xxxxxxxxxxxxxxxxxxxx..."'),
    ("null value", _flat_with(783, None), "pixels[783]: expected a number in [0, 1], got null"),
    ("nested list value", _flat_with(3, [0.5]), "pixels[3]: expected a number in [0, 1], got a list"),
    ("object value", _flat_with(3, {}), "pixels[3]: expected a number in [0, 1], got an object"),
    ("NaN", _flat_with(100, math.nan), "pixels[100]: expected a finite number in [0, 1], got NaN"),
    ("Infinity", _flat_with(5, math.inf), "pixels[5]: expected a finite number in [0, 1], got Infinity"),
    ("-Infinity", _flat_with(5, -math.inf), "got -Infinity"),
    ("above 1", _flat_with(9, 1.5), "pixels[9]: expected a number in [0, 1], got 1.5"),
    ("below 0", _flat_with(9, -0.001), "pixels[9]: expected a number in [0, 1], got -0.001"),
    ("integer 255", _flat_with(40, 255), "pixels[40]: expected a number in [0, 1], got 255"),
    ("huge integer", _flat_with(40, 10**5000), "pixels[40]: expected a number in [0, 1], got an integer of more than 18 digits"),
    ("nested value", _nested_with(2, 5, 2.0), "pixels[2][5]: expected a number in [0, 1], got 2.0"),
    ("nested NaN", _nested_with(27, 27, math.nan), "pixels[27][27]: expected a finite number in [0, 1], got NaN"),
    ("first bad of two", _flat_with(4, "a")[:10] + [None] + [0.0] * 773, 'pixels[4]: expected a number in [0, 1], got the string "a"'),
]


@pytest.mark.parametrize(("value", "fragment"), [case[1:] for case in BAD_JSON], ids=[case[0] for case in BAD_JSON])
def test_json_rejected(value, fragment):
    with pytest.raises(InputError) as caught:
        pixels_from_json(value)
    assert caught.value.status == 400
    assert fragment in caught.value.message


# ---------------------------------------------------------------------------
# Properties: no input raises anything but InputError
# ---------------------------------------------------------------------------


def _small_sample_files() -> list[bytes]:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    return [
        encode(image, "PNG"),
        encode(image.convert("RGBA"), "PNG"),
        encode(image, "JPEG"),
        encode(image.convert("P"), "GIF"),
        encode(image, "WEBP"),
        encode(image, "WEBP", lossless=True),
        encode(image, "BMP"),
    ]


SAMPLE_FILES = _small_sample_files()


@st.composite
def corrupted_files(draw) -> bytes:
    """Return a valid small image file with a few bytes overwritten and possibly truncated."""
    data = bytearray(draw(st.sampled_from(SAMPLE_FILES)))
    for position, byte in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=6)):
        data[position] = byte
    return bytes(data[: draw(st.integers(0, len(data)))])


@PROPERTY_SETTINGS
@given(st.binary(max_size=2000) | corrupted_files())
def test_any_bytes_only_input_error(data):
    try:
        preprocess_upload(data)
    except InputError:
        pass


JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=30) | st.dictionaries(st.text(max_size=5), children, max_size=5),
    max_leaves=60,
)


@st.composite
def nearly_valid_pixels(draw) -> list:
    """Return 784 valid values, flat or nested, with a few items replaced by any JSON value."""
    values: list = [0.25] * 784
    for index, item in draw(st.lists(st.tuples(st.integers(0, 783), JSON_VALUES), max_size=3)):
        values[index] = item
    values = values[: draw(st.integers(780, 784))]
    if draw(st.booleans()):
        return values
    return [values[r * 28 : (r + 1) * 28] for r in range(28)]


@PROPERTY_SETTINGS
@given(JSON_VALUES | nearly_valid_pixels())
def test_any_json_only_input_error(value):
    try:
        result = pixels_from_json(value)
    except InputError:
        return
    assert result.model_input().shape == (1, 1, 28, 28)


@st.composite
def small_images(draw) -> Image.Image:
    """Return an image of any Pillow mode, 1 to 64 pixels a side: noise, flat or a rectangle on a flat ground."""
    mode = draw(st.sampled_from(sorted(Image.MODES)))
    size = (draw(st.integers(1, 64)), draw(st.integers(1, 64)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    byte_count = len(Image.new(mode, size).tobytes())

    def random_fill() -> Image.Image:
        return Image.frombytes(mode, size, rng.integers(0, 256, byte_count, dtype=np.uint8).tobytes())

    content = draw(st.sampled_from(["noise", "flat", "rectangle"]))
    if content == "noise":
        return random_fill()
    ground = Image.frombytes(mode, size, bytes([int(rng.integers(0, 256))]) * byte_count)
    if content == "rectangle":
        left, top = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        box = (left, top, int(rng.integers(left, size[0])) + 1, int(rng.integers(top, size[1])) + 1)
        ground.paste(random_fill().crop(box), box[:2])
    return ground


@PROPERTY_SETTINGS
@given(small_images())
def test_any_small_image_only_input_error(image):
    try:
        result = preprocess_image(image)
    except InputError:
        return
    assert result.pixels.shape == (28, 28)
    assert result.pixels.max() == 255
