"""Turn a user's image or a JSON pixel list into the model's 28x28 input, the way MNIST was made.

MNIST digits are white ink on black. Each was scaled, keeping its aspect ratio, to fit a
20x20 box with anti-aliasing, then placed in a 28x28 field so that the centre of mass of
its pixels lies at the centre. preprocess_image repeats those steps for a canvas drawing
or a photo. Before that it finds the ink: it inverts dark-on-light images and subtracts
the paper's brightness.

This module needs only Pillow and NumPy, so the serving side never imports torch.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

from webapp.exceptions import InputError, NoDigitFound

log = logging.getLogger(__name__)

IMAGE_SIZE = 28
FIT_SIZE = 20  # MNIST scaled each digit so that its longer side is 20 pixels
# Index coordinates of the centre of mass. The mean centroid of the 10,000 MNIST test
# digits is (13.99, 14.01), so the centroid goes at 14, not at the geometric centre 13.5.
CENTRE = 14.0

# A 50-megapixel phone camera saves full-resolution photos of up to about 8192x6144 =
# 50.3 million pixels, so 52 million accepts them with a small margin. Decoded as RGB, such
# a photo takes about 156 MB; JPEGs are decoded at reduced scale and take far less.
# The limit stays below Pillow's own bomb warning at Image.MAX_IMAGE_PIXELS (89,478,485
# in Pillow 13). Photos from 64- to 200-megapixel modes must be downscaled first.
MAX_UPLOAD_PIXELS = 52_000_000

ACCEPTED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WebP", "GIF": "GIF"}
ACCEPTED_FORMATS_TEXT = "PNG, JPEG, WebP or GIF"

# Images are reduced to at most this many pixels on the longer side before the ink is
# located. The digit ends up 20 pixels on its longer side, so nothing visible is lost. Averaging
# neighbouring pixels also reduces camera noise, and memory stays bounded for photos.
WORKING_SIZE = 512

HIGH_DEPTH_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}

# Ink detection, on a brightness scale of 0 to 1 after light backgrounds are inverted.
BORDER_FRACTION = 0.05  # the border band is 5% of the shorter side wide, at least 1 pixel
# Ink must be 6 noise sigmas above the paper on the 3x3-averaged contrast. On 200 synthetic
# photos (MNIST digits on grey paper with a gradient, Gaussian noise of sigma 8 or 12 levels,
# JPEG quality 85), 5 sigmas misread 2.5% and 4.5% of the digits. A speck of noise counted as
# ink and stretched the bounding box. With 6 sigmas the model read all 200 in both settings.
NOISE_SIGMAS = 6.0
MIN_MARGIN = 0.05  # ink is at least 13 of 255 levels brighter than the paper, even with no noise
MIN_INK_CONTRAST = 0.15  # an image with no area 38 of 255 levels brighter than the paper has no digit
MAD_TO_SIGMA = 1.4826  # scales a median absolute deviation to a normal standard deviation

JSON_SIZE = IMAGE_SIZE * IMAGE_SIZE
JSON_EXPECTED = f"a list of {JSON_SIZE} numbers or {IMAGE_SIZE} lists of {IMAGE_SIZE}"


@dataclass(frozen=True, eq=False)
class Preprocessed:
    """A 28x28 digit, white ink on black, as the model receives it.

    `values` keeps the exact float32 input. Images get values = pixels / 255, and JSON
    pixels keep the numbers that the client sent. Both arrays are read-only copies.
    """

    pixels: np.ndarray  # uint8 [28, 28], round(values * 255)
    values: np.ndarray | None = field(default=None)  # float32 [28, 28] in [0, 1]; None means pixels / 255

    def __post_init__(self) -> None:
        pixels = np.array(self.pixels, dtype=np.uint8)
        if pixels.shape != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"pixels must have shape (28, 28), got {pixels.shape}")
        if self.values is None:
            values = pixels.astype(np.float32) / np.float32(255.0)
        else:
            values = np.array(self.values, dtype=np.float32)
            if values.shape != (IMAGE_SIZE, IMAGE_SIZE):
                raise ValueError(f"values must have shape (28, 28), got {values.shape}")
        pixels.setflags(write=False)
        values.setflags(write=False)
        object.__setattr__(self, "pixels", pixels)
        object.__setattr__(self, "values", values)

    def model_input(self) -> np.ndarray:
        """Return the model's input: float32 [1, 1, 28, 28] in [0, 1]."""
        return self.values.reshape(1, 1, IMAGE_SIZE, IMAGE_SIZE).copy()


# ---------------------------------------------------------------------------
# Decoding uploads
# ---------------------------------------------------------------------------


def preprocess_upload(data: bytes) -> Preprocessed:
    """Decode an uploaded file and turn it into model input. Raises InputError or NoDigitFound."""
    return preprocess_image(decode_image(data))


_warnings_lock = threading.Lock()


def decode_image(data: bytes) -> Image.Image:
    """Decode a PNG, JPEG, WebP or GIF file, upright per its EXIF orientation.

    Raises InputError with status 400 for data that is empty, not an image, truncated or
    corrupt, 415 for another image format and 413 for more than MAX_UPLOAD_PIXELS. The
    size is checked on the size that the header declares, before any pixel is decoded.
    Animated GIF, PNG and WebP files give their first frame. JPEGs much larger than
    WORKING_SIZE are decoded at 1/2, 1/4 or 1/8 scale, so the image can be smaller than
    the file declares.
    """
    if not data:
        raise InputError(f"The upload is empty: expected an image file ({ACCEPTED_FORMATS_TEXT}).")

    # catch_warnings changes process-wide state and is not thread-safe before Python 3.14,
    # so decoding is serialised within a process; gunicorn runs threaded workers.
    # NOTE: a warning raised by another thread meanwhile is recorded here, not shown.
    with _warnings_lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = _open_lazily(data)
        _check_declared_image(image)
        image = _decode_pixels(image)
    for warning in caught:
        log.debug("Pillow warning while decoding an upload: %s", warning.message)
    return image


def _open_lazily(data: bytes) -> Image.Image:
    """Read the header only. Pillow decodes the pixels on load()."""
    try:
        return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(exc) from exc
    except Exception as exc:
        # Pillow's format plugins raise many types on unknown or malformed headers
        # (UnidentifiedImageError, SyntaxError, struct.error, IndexError ...).
        log.debug("upload not identified as an image: %s: %s", type(exc).__name__, exc)
        kind = _format_from_signature(data)
        if kind:
            raise _corrupt_error(kind) from exc
        raise InputError(
            f"The upload is not a {ACCEPTED_FORMATS_TEXT} image: its {len(data):,} bytes match none "
            f"of these formats. Upload an image file."
        ) from exc


def _check_declared_image(image: Image.Image) -> None:
    if image.format not in ACCEPTED_FORMATS:
        raise InputError(
            f"The upload is a {image.format} image: expected {ACCEPTED_FORMATS_TEXT}. "
            f"Convert it to PNG or JPEG and upload it again.",
            status=415,
        )
    width, height = image.size
    if width * height > MAX_UPLOAD_PIXELS:
        raise InputError(
            f"The image declares {width}x{height} pixels ({width * height:,}); the limit is "
            f"{MAX_UPLOAD_PIXELS:,} pixels. Upload a smaller image.",
            status=413,
        )


def _bomb_error(exc: Exception) -> InputError:
    """Return the 413 error for Pillow's decompression-bomb check, which runs inside Image.open."""
    # Pillow warns above Image.MAX_IMAGE_PIXELS and raises above twice that.
    limit = Image.MAX_IMAGE_PIXELS or 0
    if isinstance(exc, Image.DecompressionBombError):
        limit *= 2
    return InputError(
        f"The image declares more than {limit:,} pixels; the limit is {MAX_UPLOAD_PIXELS:,} pixels. "
        f"Upload a smaller image.",
        status=413,
    )


def _decode_pixels(image: Image.Image) -> Image.Image:
    """Decode the first frame and apply the EXIF orientation."""
    kind = ACCEPTED_FORMATS[image.format]
    try:
        # JPEG only: decode at the smallest 1/2^k scale that keeps both sides at least
        # WORKING_SIZE. Other formats ignore draft().
        image.draft(None, (WORKING_SIZE, WORKING_SIZE))
        image.load()
        return ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(exc) from exc
    except Exception as exc:
        # Truncated files raise OSError, and corrupt ones also raise SyntaxError,
        # ValueError, EOFError and others, depending on the plugin.
        log.debug("%s upload could not be decoded: %s: %s", kind, type(exc).__name__, exc)
        raise _corrupt_error(kind) from exc


def _corrupt_error(kind: str) -> InputError:
    return InputError(
        f"The {kind} image is truncated or corrupt: its data could not be decoded. "
        f"Upload the complete file again."
    )


def _format_from_signature(data: bytes) -> str | None:
    """Return the accepted format whose magic bytes start the data, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WebP"
    return None


# ---------------------------------------------------------------------------
# From an image to MNIST-style pixels
# ---------------------------------------------------------------------------


def preprocess_image(image: Image.Image) -> Preprocessed:
    """Find the digit in an image and centre it in 28x28 as MNIST did. Raises NoDigitFound.

    Any size works. A 1x1 image, like any flat colour, has no ink and raises NoDigitFound.
    A long strip such as 10000x10 is reduced to at most WORKING_SIZE on its longer side
    and at least 1 pixel on the shorter, so a dash across it becomes a line 20 pixels long.
    """
    brightness = _brightness_map(image)
    ink = _ink_map(brightness)
    patch = _fit_to_box(_crop_to_ink(ink))
    canvas = _place_by_centre_of_mass(patch)
    return Preprocessed(np.rint(canvas * 255.0).astype(np.uint8))


def _brightness_map(image: Image.Image) -> np.ndarray:
    """Return float32 [H, W] in [0, 1] at most WORKING_SIZE on a side, with transparency resolved.

    The values are brightness, where 1 is white. For a mostly transparent image they are
    the alpha channel instead, so opaque strokes on a clear canvas become white on black.
    """
    if image.mode in HIGH_DEPTH_MODES:
        return _high_depth_brightness(image)

    image = _shrink(_to_standard_mode(image))
    array = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    if image.mode == "L":
        return array
    luminance = array[..., 0] * 0.299 + array[..., 1] * 0.587 + array[..., 2] * 0.114  # ITU-R 601, as Pillow's "L"
    if image.mode == "RGB":
        return luminance
    return _resolve_alpha(luminance, array[..., 3])


def _to_standard_mode(image: Image.Image) -> Image.Image:
    """Convert any 8-bit mode to L, RGB or RGBA, keeping transparency."""
    bands = image.getbands()
    has_alpha = "A" in bands or "a" in bands or "transparency" in image.info
    if image.mode == "La":
        image = image.convert("LA")  # Pillow converts premultiplied La only to LA
    # Pillow 13 converts every other mode in Image.MODES, LAB and HSV included, to RGB and RGBA.
    if has_alpha:
        return image.convert("RGBA")
    return image.convert("L" if image.mode in ("1", "L") else "RGB")


def _high_depth_brightness(image: Image.Image) -> np.ndarray:
    """Scale 16- and 32-bit greyscale to [0, 1] and shrink it.

    Modes I;16* and I (Pillow's modes for 16-bit PNGs) span 0 to 65535. Mode F is taken
    to span 0 to 255, the scale that Image.convert("F") gives an 8-bit image.
    """
    # NOTE: a 16-bit PNG's tRNS transparency is ignored here.
    full_scale = 255.0 if image.mode == "F" else 65535.0
    # NaN and infinities in mode F are replaced before the cast, which would warn about them.
    raw = np.nan_to_num(np.asarray(image), nan=0.0, posinf=full_scale, neginf=0.0)
    array = np.clip(raw.astype(np.float64) / full_scale, 0.0, 1.0).astype(np.float32)
    return np.asarray(_shrink(Image.fromarray(array)), dtype=np.float32)


def _shrink(image: Image.Image) -> Image.Image:
    """Reduce the image so that its longer side is at most WORKING_SIZE, by area averaging."""
    scale = WORKING_SIZE / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)  # Pillow premultiplies alpha for RGBA


def _resolve_alpha(luminance: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Return alpha as the ink if most pixels are transparent, else composite onto the paper."""
    opaque = alpha >= 0.5
    if opaque.mean() < 0.5:
        # A drawing on a clear canvas: whatever is painted is the digit, whatever its colour.
        return alpha
    # Mostly opaque: the transparent pixels take the median brightness of the opaque ones,
    # so a transparent corner neither adds ink nor changes which side is paper.
    paper = np.float32(np.median(luminance[opaque]))
    return alpha * luminance + (1.0 - alpha) * paper


def _ink_map(brightness: np.ndarray) -> np.ndarray:
    """Return ink intensity in [0, 1] with the paper at 0. Raises NoDigitFound.

    Paper is what the border band shows. If it is light (median above 0.5) the image is
    inverted, so ink is always brighter than paper. A plane fitted through the border
    models the paper's brightness and its lighting gradient. Ink is found on a 3x3
    average of the contrast above that plane, where it must stand NOISE_SIGMAS times the
    border's noise (at least MIN_MARGIN) above the paper. Found pixels and their
    neighbours keep their contrast, scaled so that the brightest is 1 as in most MNIST
    digits. Every other pixel becomes 0.
    """
    band = _border_band(brightness.shape)
    if np.median(brightness[band]) > 0.5:
        brightness = 1.0 - brightness  # dark ink on light paper

    contrast = brightness - _fit_paper(brightness, band)
    # Averaging 3x3 pixels divides uncorrelated noise by 3 but a stroke at least 3 pixels
    # wide keeps its contrast, so camera noise and JPEG specks no longer pass as ink.
    smoothed = _mean_3x3(contrast)
    noise = _robust_sigma(smoothed[band])
    threshold = max(NOISE_SIGMAS * noise, MIN_MARGIN)
    strongest = float(smoothed.max())
    if strongest <= threshold or strongest < MIN_INK_CONTRAST:
        raise NoDigitFound()

    # One pixel of margin keeps the anti-aliased edges that the average left below the threshold.
    mask = _max_3x3(smoothed > threshold)
    peak = float(contrast[mask].max())
    return np.where(mask, np.clip(contrast / peak, 0.0, 1.0), 0.0).astype(np.float32)


def _neighbourhoods_3x3(array: np.ndarray) -> np.ndarray:
    """Return the nine shifted copies [9, H, W] of each pixel's 3x3 neighbourhood, edges repeated."""
    height, width = array.shape
    padded = np.pad(array, 1, mode="edge")
    return np.stack([padded[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)])


def _mean_3x3(array: np.ndarray) -> np.ndarray:
    return _neighbourhoods_3x3(array).mean(axis=0)


def _max_3x3(mask: np.ndarray) -> np.ndarray:
    return _neighbourhoods_3x3(mask).any(axis=0)


def _robust_sigma(values: np.ndarray) -> float:
    """Estimate the standard deviation of noise from the median absolute deviation."""
    return MAD_TO_SIGMA * float(np.median(np.abs(values - np.median(values))))


def _border_band(shape: tuple[int, int]) -> np.ndarray:
    """Return a mask of the outer band: BORDER_FRACTION of the shorter side, at least 1 pixel."""
    height, width = shape
    width_of_band = max(1, round(BORDER_FRACTION * min(height, width)))
    band = np.ones(shape, dtype=bool)
    band[width_of_band : height - width_of_band, width_of_band : width - width_of_band] = False
    return band


def _fit_paper(brightness: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Fit a plane a + b*x + c*y to the border band and return it for the whole image.

    The second fit leaves out border pixels more than 3 sigma from the first, so a
    stroke that touches the edge does not tilt the plane.
    """
    height, width = brightness.shape
    rows, cols = np.nonzero(band)
    # Coordinates in [0, 1] keep the least-squares problem well conditioned.
    design = np.column_stack([np.ones(len(rows)), cols / max(width - 1, 1), rows / max(height - 1, 1)])
    values = brightness[band].astype(np.float64)

    keep = np.ones(len(values), dtype=bool)
    for _ in range(2):
        coefficients = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
        residuals = values - design @ coefficients
        # Least-squares residuals centre on 0, so their median absolute value estimates the noise.
        noise = MAD_TO_SIGMA * float(np.median(np.abs(residuals[keep])))
        inliers = np.abs(residuals) <= max(3.0 * noise, MIN_MARGIN)
        if inliers.sum() < design.shape[1]:
            break  # too few pixels left to fit three coefficients
        keep = inliers

    ys, xs = np.mgrid[0:height, 0:width]
    plane = coefficients[0] + coefficients[1] * xs / max(width - 1, 1) + coefficients[2] * ys / max(height - 1, 1)
    return plane.astype(np.float32)


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """Return the bounding box of the pixels with ink above 0."""
    # NOTE: a stray mark far from the digit (a speck, the edge of the paper) widens the box.
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _fit_to_box(crop: np.ndarray) -> np.ndarray:
    """Scale the crop so that its longer side is FIT_SIZE, keeping the aspect ratio."""
    height, width = crop.shape
    scale = FIT_SIZE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Lanczos anti-aliases when shrinking, as MNIST's scaling did. It overshoots next to
    # sharp edges, so the result is clipped back into [0, 1].
    resized = Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32)).resize(size, Image.Resampling.LANCZOS)
    patch = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    peak = float(patch.max())
    if peak <= 0.0:
        raise NoDigitFound()
    # TODO: strokes thinner than about a fifth of the digit's height come out fainter and
    # thinner than MNIST's 2-3 pixel strokes. Normalising the peak restores only the brightness.
    return patch / peak


def _place_by_centre_of_mass(patch: np.ndarray) -> np.ndarray:
    """Paste the patch into a 28x28 field with its centre of mass at (CENTRE, CENTRE).

    The offset is rounded to whole pixels and clamped so that no ink falls off the field.
    """
    height, width = patch.shape
    rows, cols = np.indices(patch.shape)
    mass = float(patch.sum())
    centre_row = float((rows * patch).sum()) / mass
    centre_col = float((cols * patch).sum()) / mass

    top = min(max(round(CENTRE - centre_row), 0), IMAGE_SIZE - height)
    left = min(max(round(CENTRE - centre_col), 0), IMAGE_SIZE - width)
    canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    canvas[top : top + height, left : left + width] = patch
    return canvas


# ---------------------------------------------------------------------------
# JSON pixels
# ---------------------------------------------------------------------------


def pixels_from_json(value: object) -> Preprocessed:
    """Validate the JSON field `pixels` and return it unchanged as model input.

    Accepts 784 numbers in [0, 1], flat or as 28 lists of 28. The values are cast to
    float32 and used as they are, without cropping or centring. Raises InputError (400)
    naming the first invalid index and its value.
    """
    if not isinstance(value, list):
        raise InputError(f"pixels: expected {JSON_EXPECTED}, got {_json_type(value)}.")
    nested = bool(value) and isinstance(value[0], list)
    if nested:
        _check_rows(value)
        items = [item for row in value for item in row]
    else:
        if len(value) != JSON_SIZE:
            raise InputError(
                f"pixels: expected {JSON_SIZE} values, got {len(value)}. "
                f"Send {JSON_EXPECTED}, each in [0, 1]."
            )
        items = value

    values = _unit_interval_array(items)
    if values is None:
        for i, item in enumerate(items):
            _check_pixel_value(f"pixels[{i // IMAGE_SIZE}][{i % IMAGE_SIZE}]" if nested else f"pixels[{i}]", item)
        values = np.array(items, dtype=np.float64)  # valid after all; the fast check is only stricter
    values = values.astype(np.float32).reshape(IMAGE_SIZE, IMAGE_SIZE)
    pixels = np.rint(values * np.float32(255.0)).astype(np.uint8)
    return Preprocessed(pixels, values)


def _check_rows(rows: list) -> None:
    """Raise InputError unless rows are 28 lists of 28 items."""
    if len(rows) != IMAGE_SIZE:
        raise InputError(f"pixels: expected {IMAGE_SIZE} rows of {IMAGE_SIZE} values, got {len(rows)} rows.")
    for r, row in enumerate(rows):
        if not isinstance(row, list):
            raise InputError(f"pixels[{r}]: expected row {r} to be a list of {IMAGE_SIZE} numbers, got {_json_type(row)}.")
        if len(row) != IMAGE_SIZE:
            raise InputError(f"pixels[{r}]: expected {IMAGE_SIZE} values in row {r}, got {len(row)}.")


def _unit_interval_array(items: list) -> np.ndarray | None:
    """Return items as float64 if every one is a JSON number in [0, 1], else None.

    The vectorised check of valid input. On None, the caller checks item by item to name
    the first invalid one, which costs roughly ten times as much.
    """
    # Exact types: bool, a subclass of int, is not a JSON number.
    if not {type(item) for item in items} <= {int, float}:
        return None
    try:
        values = np.array(items, dtype=np.float64)
    except OverflowError:  # an integer too large for a float64
        return None
    # NaN fails both comparisons, and infinity the second.
    if not ((values >= 0).all() and (values <= 1).all()):
        return None
    return values


def _check_pixel_value(location: str, item: object) -> None:
    # bool is a subclass of int in Python, but JSON true and false are not numbers.
    if isinstance(item, bool) or not isinstance(item, (int, float)):
        raise InputError(f"{location}: expected a number in [0, 1], got {_describe_json(item)}.")
    if isinstance(item, float) and not math.isfinite(item):
        raise InputError(f"{location}: expected a finite number in [0, 1], got {_describe_json(item)}.")
    # Compared before any float conversion, so a huge JSON integer cannot overflow.
    if not 0 <= item <= 1:
        raise InputError(f"{location}: expected a number in [0, 1], got {_describe_json(item)}.")


def _json_type(value: object) -> str:
    """Return the JSON name of a parsed value's type, with an article."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _describe_json(value: object) -> str:
    """Return a short JSON-style rendering of a parsed value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, int):
        # str() raises ValueError above 4300 digits, and a long number makes the message unreadable.
        return str(value) if abs(value) < 10**18 else "an integer of more than 18 digits"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:20] + "..."
        return f'the string "{shown}"'
    return _json_type(value)
