"""Hostile and unusual files through ``decode_image``, the function the Upload page and the CLI use."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fer_core.inference.images import (
    ImageError,
    decode_image,
    encode_png,
    read_image,
)
from fer_core.inference.inputs import find_images


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width × height`` RGB pixels (no real pixel data)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """80×60 RGB with a red left half and a blue right half."""
    pixels = np.zeros((60, 80, 3), np.uint8)
    pixels[:, :40] = (255, 0, 0)
    pixels[:, 40:] = (0, 0, 255)
    return Image.fromarray(pixels)


def assert_bgr(image: np.ndarray, shape=(60, 80)) -> None:
    assert image.dtype == np.uint8 and image.shape == (*shape, 3) and image.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("data, message", [
    (np.random.default_rng(0).bytes(4096), "not an image file"),  # seeded: xdist workers must collect alike
    (b"", "empty"),
    (b"GIF89a", "not an image file"),
    (png_header_claiming(20000, 20000), "decompression bomb"),
    (png_header_claiming(10000, 10000), "decompression bomb"),  # Pillow only warns at this size
    (png_header_claiming(8000, 8000), "too large"),  # under Pillow's limit, over ours
], ids=["random bytes", "empty", "GIF header only", "PNG 20000x20000", "PNG 10000x10000", "PNG 8000x8000"])
def test_unusable_bytes_raise_a_clear_error_naming_the_file(data, message):
    with pytest.raises(ImageError, match=message) as info:
        decode_image(data, "holiday.png")
    assert str(info.value).startswith("holiday.png: ")


def test_truncated_jpeg(photo):
    jpeg = encoded(photo, "JPEG")
    with pytest.raises(ImageError, match="truncated"):
        decode_image(jpeg[: len(jpeg) // 2], "cut.jpg")


def test_jpeg_is_bgr(photo):
    image = decode_image(encoded(photo, "JPEG", quality=95), "a.jpg")
    assert_bgr(image)
    assert image[30, 10, 2] > 200 and image[30, 10, 0] < 50  # red on the left: high R (index 2 in BGR)
    assert image[30, 70, 0] > 200 and image[30, 70, 2] < 50


def test_sixteen_bit_gray_png_keeps_its_range():
    ramp = np.tile(np.linspace(0, 65535, 80).astype(np.uint16), (60, 1))
    image = decode_image(encoded(Image.fromarray(ramp), "PNG"), "deep.png")
    assert_bgr(image)
    assert image[0, 0, 0] == 0 and image[0, -1, 0] == 255 and 100 < image[0, 40, 0] < 160


def test_cmyk_jpeg(photo):
    image = decode_image(encoded(photo.convert("CMYK"), "JPEG", quality=95), "print.jpg")
    assert_bgr(image)
    assert image[30, 10, 2] > 200 and image[30, 70, 0] > 200


def test_rgba_png_is_composed_on_white(photo):
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.where(np.arange(80) < 40, 255, 0).astype(np.uint8)[None].repeat(60, 0)))
    image = decode_image(encoded(rgba, "PNG"), "cutout.png")
    assert_bgr(image)
    assert image[30, 10].tolist() == [0, 0, 255] and image[30, 70].tolist() == [255, 255, 255]


@pytest.mark.parametrize("mode", ["L", "P", "1", "LA"])
def test_gray_palette_and_bilevel_images(photo, mode):
    assert_bgr(decode_image(encoded(photo.convert(mode), "PNG"), f"{mode}.png"))


@pytest.mark.parametrize("fmt", ["WEBP", "BMP"])
def test_other_upload_formats(photo, fmt):
    assert_bgr(decode_image(encoded(photo, fmt, **({"lossless": True} if fmt == "WEBP" else {})), f"x.{fmt.lower()}"))


def test_animated_gif_gives_the_first_frame(photo):
    red = Image.new("RGB", (80, 60), (255, 0, 0))
    green = Image.new("RGB", (80, 60), (0, 255, 0))
    gif = encoded(red, "GIF", save_all=True, append_images=[green], duration=100, loop=0)
    image = decode_image(gif, "anim.gif")
    assert_bgr(image)
    assert image[30, 40].tolist() == [0, 0, 255]


def test_exif_orientation_is_applied(photo):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90° clockwise to show
    image = decode_image(encoded(photo, "JPEG", exif=exif, quality=95), "phone.jpg")
    assert_bgr(image, shape=(80, 60))
    assert image[10, 30, 2] > 200 and image[70, 30, 0] > 200  # red now on top, blue at the bottom


def test_read_image_reports_missing_files(tmp_path):
    with pytest.raises(ImageError, match="cannot read the file"):
        read_image(tmp_path / "missing.jpg")


def test_read_image_refuses_what_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")  # reading it would block for ever
    for path in (tmp_path / "pipe.jpg", tmp_path, "/dev/zero"):
        with pytest.raises(ImageError, match="not a regular file"):
            read_image(path)


def test_png_round_trip(photo):
    image = decode_image(encoded(photo, "PNG"), "a.png")
    assert np.array_equal(decode_image(encode_png(image), "b.png"), image)


def test_find_images_searches_folders_and_reports_missing_paths(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.jpg", "a.PNG", "sub/c.webp", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    files, missing = find_images([tmp_path, tmp_path / "notes.txt", tmp_path / "nope.jpg"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a.PNG", "b.jpg", "sub/c.webp", "notes.txt"]
    assert missing == [tmp_path / "nope.jpg"]
