"""Decoding images from untrusted bytes (uploads, files given to the CLI) into BGR ``uint8`` arrays.

Every input is checked against the :class:`fer_core.settings.Budgets` before it is decoded
(:func:`check_image_budget`: its bytes, and its pixels from the header), so a small file that would
decode to gigabytes is refused for the cost of reading its header; the pages, the CLI and the HTTP API
all decode through here. Pillow reads the file, because it honours the EXIF orientation a phone writes (OpenCV's decoder
would give a sideways picture and boxes that do not match what the user sees), and because it
reports what is wrong with a bad file. Every failure becomes one :class:`ImageError` whose message
names the file and the problem, so a page can show it and carry on.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_core.settings import Budgets, env_name

if TYPE_CHECKING:
    import PIL.Image

IMAGE_TYPES = ("jpg", "jpeg", "png", "webp", "bmp", "gif")


class ImageError(ValueError):
    """An image that cannot be used; the message names the file and says why."""


class ImageTooLarge(ImageError):
    """An image over a budget (bytes, or pixels by its header), refused before it is decoded."""


def check_image_budget(name: str, budgets: Budgets, n_bytes: int, size: tuple[int, int] | None = None) -> None:
    """Raise :class:`ImageTooLarge` when a file of ``n_bytes`` bytes, or a picture of ``size``
    (width, height, from its header) is over ``budgets``; the message names the limit and its setting."""
    if n_bytes > budgets.max_upload_bytes:
        raise ImageTooLarge(f"{name}: {n_bytes / 2**20:.0f} MB is too large (limit "
                            f"{budgets.max_upload_bytes / 2**20:.0f} MB, {env_name('max_upload_bytes')})")
    if size is not None and size[0] * size[1] > budgets.max_image_pixels:
        raise ImageTooLarge(f"{name}: {size[0]}×{size[1]} pixels is too large (limit "
                            f"{budgets.max_image_pixels / 1e6:.0f} megapixels, {env_name('max_image_pixels')}); "
                            "downscale the picture first")


def _open(data: bytes, name: str, budgets: Budgets) -> PIL.Image.Image:
    """Open and fully decode with Pillow, turning its many exceptions into :class:`ImageError`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns (rather than fails) between its own limit and twice that: refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            check_image_budget(name, budgets, len(data), image.size)
            image.seek(0)  # first frame of an animation
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"{name}: refused as a decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file (or a format Pillow cannot read); "
                         f"use one of {', '.join(IMAGE_TYPES)}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow raises OSError for truncated data, SyntaxError/ValueError for broken headers.
        raise ImageError(f"{name}: damaged or truncated image ({exc})") from None
    return image


def _upright(image: PIL.Image.Image) -> PIL.Image.Image:
    """Rotate/flip as the EXIF orientation tag says; a broken EXIF block is ignored, not fatal."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError, KeyError, TypeError, SyntaxError):
        return image


def _high_depth_to_gray8(image: PIL.Image.Image) -> np.ndarray:
    """16-bit and 32-bit gray (``I;16``, ``I``, ``F``) to 8 bits, keeping the full range visible."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        return (values / 257).round().astype(np.uint8)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, np.uint8)
    return ((values - low) * (255 / (high - low))).round().astype(np.uint8)


def _flatten_alpha(image: PIL.Image.Image) -> PIL.Image.Image:
    """Transparent pixels composed onto white: their colour values are arbitrary (often black)."""
    from PIL import Image

    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_bgr(image: PIL.Image.Image) -> np.ndarray:
    import cv2

    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return cv2.cvtColor(_high_depth_to_gray8(image), cv2.COLOR_GRAY2BGR)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info)
    rgb = _flatten_alpha(image) if has_alpha else image if image.mode == "RGB" else image.convert("RGB")
    # One writable copy turned to BGR in place: a 48-megapixel photo is 144 MB per copy.
    pixels = np.array(rgb)
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR, dst=pixels)


def decode_image(data: bytes, name: str = "image", budgets: Budgets | None = None) -> np.ndarray:
    """BGR ``uint8`` image ``(H, W, 3)`` from file bytes, upright as its EXIF orientation says.

    Handles gray, palette, RGBA, CMYK, 16-bit and animated (first frame) images. Raises
    :class:`ImageError` for empty, non-image, damaged and truncated files, and :class:`ImageTooLarge`
    for files over ``budgets`` (:meth:`Budgets.from_env` when not given), before decoding them.
    """
    budgets = budgets or Budgets.from_env()
    if len(data) == 0:
        raise ImageError(f"{name}: the file is empty (0 bytes)")
    check_image_budget(name, budgets, len(data))
    image = _upright(_open(data, name, budgets))
    return _to_bgr(image)


def read_image(path: str | os.PathLike, budgets: Budgets | None = None) -> np.ndarray:
    """:func:`decode_image` of a file; a missing or unreadable file is an :class:`ImageError` too."""
    path = Path(path)
    budgets = budgets or Budgets.from_env()
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO or /dev/zero would be read for ever
            raise ImageError(f"{path}: not a regular file")
        check_image_budget(str(path), budgets, info.st_size)
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    return decode_image(data, str(path), budgets)


def encode_png(image_bgr: np.ndarray) -> bytes:
    """PNG bytes of a BGR image (for downloads and the CLI's annotated copies)."""
    import cv2

    ok, buffer = cv2.imencode(".png", image_bgr)
    if not ok:
        raise ValueError(f"cannot encode an image of shape {image_bgr.shape} as PNG")
    return buffer.tobytes()


def failure_reason(name: str, exc: BaseException) -> str:
    """What went wrong with input ``name``, in one line and without the name: an :class:`ImageError`
    says it for the user; anything else is a fault of ours, named with its type so it can be traced."""
    message = str(exc)
    if isinstance(exc, ImageError):
        return message.removeprefix(f"{name}: ")
    first_line = message.splitlines()[0] if message else ""
    return f"unexpected {type(exc).__name__}" + (f": {first_line}" if first_line else "")
