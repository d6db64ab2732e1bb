"""Fuzz: hundreds of hostile files through the path the Upload page and ``predict`` take, and once
through the real ``predict FOLDER --jsonl`` command line.

Every input must end either analysed (faces found, or the whole picture classified as one face, and
drawn) or refused with a message that names the file and the reason; nothing may escape as an
uncaught exception, and the CLI must print one record per input. The corpus is generated from a
seed: ``FER_FUZZ_SEED=<n> python -m pytest tests/test_fuzz.py`` replays a run. The figures (tried /
analysed / refused / crashed, seconds) are printed and written to ``artifacts/fuzz_summary.json``.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import traceback
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_core.app.upload import analyze_upload
from fer_core.inference.images import ImageError
from fer_core.model_card import PROJECT_ROOT

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("FER_FUZZ_SEED", "20261123"))
MIN_INPUTS = 500
PICTURE_SIDE = 256  # large enough for a detectable face, small enough for hundreds of decodes
SUMMARY = PROJECT_ROOT / "artifacts" / "fuzz_summary.json"


@dataclass(frozen=True)
class FuzzInput:
    name: str  # file name, with the extension an upload of this kind would carry
    data: bytes


# --------------------------------------------------------------------------- the corpus


def base_picture(astronaut: Path) -> Image.Image:
    """The astronaut photo at 256 px when it is there (a real face reaches the classifier), else a
    synthetic picture with a face-like pattern."""
    if astronaut.is_file():
        return Image.open(astronaut).convert("RGB").resize((PICTURE_SIDE, PICTURE_SIDE))
    y, x = np.mgrid[:PICTURE_SIDE, :PICTURE_SIDE]
    pixels = np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)
    pixels[((x - 128) / 60) ** 2 + ((y - 128) / 80) ** 2 < 1] = (200, 170, 150)
    return Image.fromarray(pixels)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, depth: int = 8, color: int = 2, rows: int = 1) -> bytes:
    """A PNG whose header claims ``width × height``, with the zero pixels of ``rows`` rows: a
    decompression bomb's header, or a real strip image when ``rows == height``."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    row = b"\0" + b"\0" * (width * channels * depth // 8)
    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(row * rows, 9))
            + png_chunk(b"IEND", b""))


def base_encodings(picture: Image.Image) -> dict[str, bytes]:
    return {"jpg": encoded(picture, "JPEG", quality=90), "png": encoded(picture, "PNG"),
            "webp": encoded(picture, "WEBP", quality=80), "gif": encoded(picture, "GIF"),
            "bmp": encoded(picture, "BMP")}


def mutated(rng: np.random.Generator, data: bytes) -> bytes:
    """``data`` with one of: random bytes overwritten, a run zeroed, a chunk cut out, a chunk
    repeated, or the header's bytes scrambled."""
    out = bytearray(data)
    kind = int(rng.integers(5))
    at = int(rng.integers(len(out)))
    span = int(rng.integers(1, 64))
    if kind == 0:
        for i in rng.integers(0, len(out), int(rng.integers(1, 32))):
            out[int(i)] = int(rng.integers(256))
    elif kind == 1:
        out[at : at + span] = bytes(len(out[at : at + span]))
    elif kind == 2:
        del out[at : at + span * 8]
    elif kind == 3:
        out[at:at] = out[at : at + span * 8] * int(rng.integers(2, 6))
    else:
        head = min(len(out), 64)
        out[:head] = bytes(rng.permutation(np.frombuffer(bytes(out[:head]), np.uint8)))
    return bytes(out)


def truncations(data: bytes, pieces: int = 30) -> list[bytes]:
    """Prefixes of ``data`` every few hundred bytes (at least every 300, at most ``pieces`` of them)."""
    step = max(300, len(data) // pieces)
    return [data[:end] for end in range(step, len(data), step)]


def extreme_sizes() -> list[FuzzInput]:
    strips = [(1, 5000), (5000, 1), (2, 5000), (5000, 2), (1, 1), (2, 2), (3, 30000), (30000, 3)]
    inputs = [FuzzInput(f"strip_{w}x{h}.png", png_claiming(w, h, color=0, rows=h)) for w, h in strips]
    inputs += [FuzzInput(f"bomb_{w}x{h}.png", png_claiming(w, h)) for w, h in
               [(20000, 20000), (10000, 10000), (8000, 8000), (65535, 65535), (1, 60_000_000)]]
    inputs.append(FuzzInput("zero_width.png", png_claiming(0, 100)))
    inputs.append(FuzzInput("large_flat.jpg", encoded(Image.new("RGB", (4000, 3000), (90, 120, 150)), "JPEG")))
    return inputs


def modes_and_depths(picture: Image.Image) -> list[FuzzInput]:
    """1, 2 and 4 channels, palettes, bilevel, 16-bit and 32-bit gray, CMYK JPEG, alpha in WebP."""
    gray16 = Image.fromarray(np.asarray(picture.convert("L"), np.uint16) * 257)
    inputs = [FuzzInput(f"mode_{mode}.png", encoded(picture.convert(mode), "PNG"))
              for mode in ("L", "LA", "RGBA", "P", "1")]
    transparent = picture.convert("P")
    transparent.info["transparency"] = 0
    inputs += [FuzzInput("mode_P_transparent.png", encoded(transparent, "PNG", transparency=0)),
               FuzzInput("mode_I16.png", encoded(gray16, "PNG")),
               FuzzInput("mode_RGB16.png", png_claiming(64, 64, depth=16, color=2, rows=64)),
               FuzzInput("mode_I.tif.png", encoded(picture.convert("I"), "TIFF")),  # TIFF under a PNG name
               FuzzInput("mode_F.tif.png", encoded(picture.convert("F"), "TIFF")),
               FuzzInput("cmyk.jpg", encoded(picture.convert("CMYK"), "JPEG")),
               FuzzInput("gray.jpg", encoded(picture.convert("L"), "JPEG")),
               FuzzInput("rgba.webp", encoded(picture.convert("RGBA"), "WEBP", lossless=True)),
               FuzzInput("gray.bmp", encoded(picture.convert("L"), "BMP"))]
    return inputs


def exif_orientations(picture: Image.Image) -> list[FuzzInput]:
    inputs = []
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        inputs.append(FuzzInput(f"exif_{orientation}.jpg", encoded(picture, "JPEG", exif=exif)))
    broken = Image.Exif()
    broken[0x0112] = 99  # no such orientation
    inputs.append(FuzzInput("exif_99.jpg", encoded(picture, "JPEG", exif=broken)))
    return inputs


def animations(picture: Image.Image) -> list[FuzzInput]:
    frames = [picture, picture.rotate(90), Image.new("RGB", picture.size, (0, 255, 0))]
    return [FuzzInput("animated.gif", encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0)),
            FuzzInput("animated.webp", encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:])),
            FuzzInput("animated.png", encoded(frames[0], "PNG", save_all=True, append_images=frames[1:]))]


def non_images(rng: np.random.Generator) -> list[FuzzInput]:
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><circle r="40"/></svg>'
    return [FuzzInput("empty.jpg", b""), FuzzInput("document.pdf.jpg", pdf), FuzzInput("drawing.svg.png", svg),
            FuzzInput("notes.txt.webp", b"hello, I am text\n" * 20), FuzzInput("page.html.gif", b"<html></html>"),
            FuzzInput("archive.zip.png", b"PK\x03\x04" + rng.bytes(200)), FuzzInput("noise.jpg", rng.bytes(5000)),
            FuzzInput("magic_only.png", b"\x89PNG\r\n\x1a\n"), FuzzInput("magic_only.jpg", b"\xff\xd8\xff"),
            FuzzInput("magic_only.gif", b"GIF89a"), FuzzInput("magic_only.webp", b"RIFF\0\0\0\0WEBP")]


def build_corpus(seed: int, picture: Image.Image, mutations_per_format: int = 70) -> list[FuzzInput]:
    """The hostile inputs of one seed; the same seed always gives the same bytes."""
    rng = np.random.default_rng(seed)
    bases = base_encodings(picture)
    corpus = [FuzzInput(f"clean.{ext}", data) for ext, data in bases.items()]
    for ext in bases:
        corpus += [FuzzInput(f"mutated_{i}.{ext}", mutated(rng, bases[ext])) for i in range(mutations_per_format)]
        corpus += [FuzzInput(f"truncated_{len(d)}.{ext}", d) for d in truncations(bases[ext])]
    corpus += extreme_sizes() + modes_and_depths(picture) + exif_orientations(picture) + animations(picture)
    corpus += non_images(rng)
    return [FuzzInput(f"{i:04d}_{item.name}", item.data) for i, item in enumerate(corpus)]


@pytest.fixture(scope="module")
def corpus() -> list[FuzzInput]:
    from conftest import ASTRONAUT

    return build_corpus(SEED, base_picture(ASTRONAUT))


@pytest.fixture(scope="module")
def corpus_folder(corpus, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    for item in corpus:
        (folder / item.name).write_bytes(item.data)
    return folder


# --------------------------------------------------------------------------- the runs


def record_summary(section: str, figures: dict, capsys: pytest.CaptureFixture) -> None:
    """Print the figures whatever pytest's capture is, and keep them in artifacts/fuzz_summary.json."""
    summary = {}
    if SUMMARY.is_file():
        summary = json.loads(SUMMARY.read_text())
        if summary.get("seed") != SEED:
            summary = {}
    summary.update({"seed": SEED, section: figures})
    SUMMARY.parent.mkdir(exist_ok=True)
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n")
    line = f"fuzz {section} (seed {SEED}): " + ", ".join(f"{k} {v}" for k, v in figures.items() if k != "examples")
    with capsys.disabled():  # on the terminal whether or not pytest runs with -s
        print(f"\n{line}")


def analyse_like_the_upload_page(item: FuzzInput, recognizer) -> str:
    """``"analysed"`` or ``"refused"``; raises whatever the pipeline lets escape.

    As the Upload page does: decode and find faces; without a face, classify the whole picture;
    then draw everything the page can draw (emoji, bars, the preview and the PNG download).
    """
    try:
        analysis = analyze_upload(item.data, item.name, recognizer, tta=False)
    except ImageError as exc:
        message = str(exc)
        assert message.startswith(f"{item.name}: ") and len(message) > len(item.name) + 10, message
        return "refused"
    if not analysis.results:
        analysis = analyze_upload(item.data, item.name, recognizer, tta=False, whole_image=True)
    assert analysis.results and all(abs(sum(r.probabilities.values()) - 1) < 1e-4 for r in analysis.results)
    analysis.preview(emoji=True, bars=True)
    analysis.annotated_png(emoji=True, bars=True)
    analysis.face_crops()
    return "analysed"


def test_corpus_is_large_varied_and_replayable(corpus):
    assert len(corpus) >= MIN_INPUTS
    assert len({item.name for item in corpus}) == len(corpus)
    picture = base_picture(Path("/nonexistent"))  # the synthetic fallback builds the same corpus twice
    assert build_corpus(SEED, picture) == build_corpus(SEED, picture)
    assert build_corpus(SEED + 1, picture) != build_corpus(SEED, picture)


def test_every_hostile_input_is_analysed_or_refused_by_name(corpus, tiny_recognizer, capsys):
    outcomes: dict[str, int] = {"analysed": 0, "refused": 0}
    crashed: list[str] = []
    start = time.perf_counter()
    for item in corpus:
        try:
            outcomes[analyse_like_the_upload_page(item, tiny_recognizer)] += 1
        except Exception:  # noqa: BLE001 - a crash is what this test counts
            crashed.append(f"{item.name}: {traceback.format_exc(limit=-3)}")
    record_summary("pipeline", {"tried": len(corpus), **outcomes, "crashed": len(crashed),
                                "seconds": round(time.perf_counter() - start, 1), "examples": crashed[:5]}, capsys)
    assert not crashed, f"seed {SEED}: {len(crashed)} crash(es); first: {crashed[0]}"
    assert outcomes["analysed"] > 0 and outcomes["refused"] > 0


def test_predict_cli_prints_one_record_per_hostile_input(corpus, corpus_folder, tiny_model_path, capsys):
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "fer_core", "predict", str(corpus_folder), "--jsonl",
                          "--model", str(tiny_model_path), "--no-tta"],
                         capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600)
    records = [json.loads(line) for line in run.stdout.splitlines()]
    statuses = [r["status"] for r in records]
    failed = [r for r in records if r["status"] == "error"]
    # A fault of ours caught by the per-input guard is reported, but it is still a crash to fix.
    faults = [f"{r['path']}: {r['error']}" for r in failed if r["error"].startswith("unexpected ")]
    record_summary("cli", {"tried": len(corpus), "analysed": statuses.count("ok"), "refused": len(failed) - len(faults),
                           "crashed": len(faults) + ("Traceback" in run.stderr),
                           "seconds": round(time.perf_counter() - start, 1), "exit_code": run.returncode}, capsys)
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert not faults, f"seed {SEED}: {faults[:5]}"
    assert sorted(Path(r["path"]).name for r in records) == sorted(item.name for item in corpus)
    assert set(statuses) <= {"ok", "error"}
    assert all(r["error"] and r["faces"] == [] for r in failed)
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {r['path']}: {r['error']}" for r in failed]
    assert run.returncode == (1 if failed else 0)
