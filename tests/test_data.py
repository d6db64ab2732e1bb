"""Data layer: Kaggle CSV and image-folder loaders, label schemes, cache, summary CLI."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import copy_real_faces

from fer_core.data import (
    DataError,
    FaceData,
    load_csv,
    load_dataset,
    load_folder,
    write_csv,
)
from fer_core.data import kaggle_csv as fd
from fer_core.data.kaggle_csv import parse_pixel_strings
from fer_core.labels import FER_LABELS, canonical_label, get_scheme

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def real_tree(fer_dir, tmp_path) -> Path:
    return copy_real_faces(fer_dir, tmp_path / "tree", {"train": 4, "validation": 4})


def _order(d: FaceData) -> np.ndarray:
    return np.lexsort((d.labels, d.images.reshape(len(d), -1).sum(1), d.splits))


def test_folder_tree_reads_splits_and_labels(real_tree):
    result = load_folder(real_tree)
    assert len(result.data) == 2 * 7 * 4
    assert result.skipped == []
    assert result.data.images.shape[1:] == (48, 48) and result.data.images.dtype == np.uint8
    counts = result.counts()
    assert set(counts) == {"Training", "PublicTest"}
    assert all(n == 4 for split in counts.values() for n in split.values())


def test_csv_and_folder_give_identical_arrays(real_tree, tmp_path):
    folder = load_folder(real_tree).data
    csv_path = tmp_path / "fer2013.csv"
    write_csv(folder, csv_path)
    from_csv = load_csv(csv_path).data
    a, b = _order(folder), _order(from_csv)
    np.testing.assert_array_equal(folder.images[a], from_csv.images[b])
    np.testing.assert_array_equal(folder.labels[a], from_csv.labels[b])
    np.testing.assert_array_equal(folder.splits[a], from_csv.splits[b])
    assert from_csv.sources[0] == "row 2"


def test_gzipped_csv_reads_the_same(real_tree, tmp_path):
    folder = load_folder(real_tree).data
    write_csv(folder, tmp_path / "f.csv")
    with open(tmp_path / "f.csv", "rb") as src, gzip.open(tmp_path / "f.csv.gz", "wb") as dst:
        dst.write(src.read())
    plain, gz = load_csv(tmp_path / "f.csv").data, load_csv(tmp_path / "f.csv.gz").data
    np.testing.assert_array_equal(plain.images, gz.images)
    np.testing.assert_array_equal(plain.labels, gz.labels)


def _face_row(value: int = 7) -> str:
    return " ".join([str(value)] * 2304)


def _write_rows(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("emotion,pixels,Usage\n" + "".join(f"{e},{p},{u}\n" for e, p, u in rows))
    return path


def test_malformed_rows_are_named_by_row(tmp_path):
    path = _write_rows(tmp_path / "bad.csv", [
        ("3", _face_row(), "Training"),
        ("4", " ".join(["1"] * 2000), "Training"),  # row 3: too few pixels
        ("2", _face_row().replace("7", "x", 1), "PublicTest"),  # row 4: non-numeric
        ("9", _face_row(), "Training"),  # row 5: unknown label
        ("0", _face_row(300), "Training"),  # row 6: out of range
        ("6", _face_row(200), "PrivateTest"),
    ])
    with pytest.raises(DataError) as err:
        load_csv(path)
    message = str(err.value)
    for row in ("row 3", "row 4", "row 5", "row 6"):
        assert row in message
    result = load_csv(path, skip_bad_rows=True)
    assert len(result.data) == 2
    assert result.data.labels.tolist() == [3, 6]
    assert result.data.images[1].min() == result.data.images[1].max() == 200
    reasons = {s.source: s.reason for s in result.skipped}
    assert reasons == {
        "bad.csv row 3": "pixels: 2000 values, expected 2304",
        "bad.csv row 4": "pixels: non-numeric value",
        "bad.csv row 5": "emotion: unknown label (expected 0-6)",
        "bad.csv row 6": "pixels: value outside 0-255",
    }


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_rows_with_the_wrong_number_of_fields_are_named_and_skipped(tmp_path, suffix):
    # Arrow refuses the whole file over one such row; it used to end the load with "not a readable CSV".
    text = ("emotion,pixels,Usage\n"
            f"3,{_face_row()},Training\n"
            f"4,{_face_row()},Training,extra\n"  # row 3
            f"5,{_face_row(9)}\n"  # row 4
            "\n"
            f"6,{_face_row(200)},PublicTest\n")
    path = tmp_path / f"ragged{suffix}"
    path.write_bytes(gzip.compress(text.encode()) if suffix.endswith(".gz") else text.encode())
    with pytest.raises(DataError, match="row 3: 4 fields, expected 3"):
        load_csv(path)
    result = load_csv(path, skip_bad_rows=True)
    assert result.data.labels.tolist() == [3, 6] and result.data.sources.tolist() == ["row 2", "row 5"]
    assert result.data.splits.tolist() == ["Training", "PublicTest"]
    assert {s.source: s.reason for s in result.skipped} == {f"{path.name} row 3": "4 fields, expected 3",
                                                           f"{path.name} row 4": "2 fields, expected 3"}


def test_empty_csv_is_a_clear_error(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataError, match="empty.csv: not a readable CSV"):
        load_csv(tmp_path / "empty.csv", skip_bad_rows=True)


def test_empty_and_fake_jpegs_among_real_faces_are_named_and_skipped(real_tree):
    happy = real_tree / "train" / "happy"
    (happy / "zero_bytes.jpg").write_bytes(b"")
    (happy / "really_text.jpg").write_text("I am not a JPEG")
    (happy / "truncated.jpg").write_bytes(next(happy.glob("*.jpg")).read_bytes()[:40])
    result = load_folder(real_tree)
    assert len(result.data) == 2 * 7 * 4  # every real face is still there
    reasons = {Path(s.source).name: s.reason for s in result.skipped}
    assert reasons == {"zero_bytes.jpg": "unreadable or not an image", "really_text.jpg": "unreadable or not an image",
                       "truncated.jpg": "unreadable or not an image"}
    assert all(str(happy) in s.source for s in result.skipped)


def test_csv_with_wrong_columns_is_a_clear_error(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("api_key,db_password\nsk-123,hunter2\n")
    with pytest.raises(DataError, match="x.csv: not a FER2013 CSV: missing column") as error:
        load_csv(path)
    assert "api_key" not in str(error.value) and "hunter2" not in str(error.value), "the header is not echoed"


def test_parse_pixel_strings_is_exact_across_chunks():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (2100, 2304), dtype=np.uint8)  # more rows than one parse chunk
    rows = [" ".join(map(str, r)) for r in faces.tolist()]
    rows[5] = "  " + rows[5] + " "  # stray whitespace is tolerated
    parsed, bad = parse_pixel_strings(rows)
    assert bad == {}
    np.testing.assert_array_equal(parsed, faces)


def test_fast_pixel_decoder_agrees_with_the_row_parser():
    """Every row, odd or not, gets what NumPy's text parser makes of it on its own."""
    rng = np.random.default_rng(1)
    faces = rng.integers(0, 256, (400, 2304), dtype=np.uint8)
    faces[:, 0], faces[:, -1] = 4, 9  # one-digit numbers where rows meet in the Arrow buffer
    rows = [" ".join(map(str, r)) for r in faces.tolist()]
    odd = {
        3: rows[3].replace(" ", "  ", 1),  # double space
        130: rows[130] + " 1",  # one value too many
        131: "0255 " + rows[131].split(" ", 1)[1],  # a 4-digit number (255 with a leading zero)
        260: "256 " + rows[260].split(" ", 1)[1],  # out of range
        261: "1é " + rows[261].split(" ", 1)[1],  # not ASCII
        262: "",  # empty
        399: "007 " + rows[399].split(" ", 1)[1],  # 3 digits with leading zeros
    }
    rows = [odd.get(i, row) for i, row in enumerate(rows)]
    parsed, bad = parse_pixel_strings(rows)
    for i, row in enumerate(rows):
        values, reason = fd._parse_one_row(row, 2304)
        assert bad.get(i) == reason, i
        if reason is None:
            np.testing.assert_array_equal(parsed[i], values, err_msg=f"row {i}")
    assert sorted(bad) == [130, 260, 261, 262]
    assert parsed[131, 0] == 255 and parsed[399, 0] == 7
    np.testing.assert_array_equal(parsed[0], faces[0])


def _write_gray(path: Path, size: int = 48, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((size, size), value, np.uint8))


def test_folder_aliases_unknown_classes_and_bad_files(tmp_path):
    root = tmp_path / "other_dataset"
    _write_gray(root / "Anger" / "a.png")
    _write_gray(root / "SADNESS" / "b.jpg")
    _write_gray(root / "happiness" / "c.bmp", size=96)  # converted to 48×48
    color = np.zeros((60, 60, 3), np.uint8)
    color[..., 2] = 255
    (root / "surprised").mkdir()
    cv2.imwrite(str(root / "surprised" / "d.webp"), color)
    _write_gray(root / "contempt" / "e.png")
    (root / "fearful").mkdir()
    (root / "fearful" / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "fearful" / "notes.txt").write_text("hello")
    result = load_folder(root)
    labels = sorted(FER_LABELS[i] for i in result.data.labels)
    assert labels == ["angry", "happy", "sad", "surprise"]
    assert result.data.images.shape == (4, 48, 48)
    assert set(result.data.splits) == {"unsplit"}
    reasons = {Path(s.source).name: s.reason for s in result.skipped}
    assert reasons["contempt"] == "unknown class folder 'contempt'"
    assert reasons["broken.jpg"] == "unreadable or not an image"
    assert reasons["notes.txt"] == "not an image file (by extension)"


def test_empty_folders_give_no_faces(tmp_path):
    (tmp_path / "empty" / "train" / "happy").mkdir(parents=True)
    result = load_folder(tmp_path / "empty")
    assert len(result.data) == 0
    assert result.counts() == {}


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such"):
        load_dataset(tmp_path / "nowhere")


def test_second_load_comes_from_the_cache(real_tree, monkeypatch):
    first = load_dataset(real_tree)
    monkeypatch.setattr("fer_core.data.cache.load_folder", lambda *_: pytest.fail("cache was not used"))
    second = load_dataset(real_tree)
    np.testing.assert_array_equal(first.data.images, second.data.images)
    np.testing.assert_array_equal(first.data.sources, second.data.sources)


def test_cache_notices_changed_files(real_tree):
    before = len(load_dataset(real_tree).data)
    _write_gray(real_tree / "train" / "happy" / "Training_extra.png")
    assert len(load_dataset(real_tree).data) == before + 1


def test_many_users_loading_the_same_data_at_once_all_get_it(real_tree, tmp_path, monkeypatch):
    """Sixteen threads load one dataset through a cold cache together: each writes the cache
    through its own temp file, so no load fails and the cache left behind is whole."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    expected = load_dataset(real_tree, use_cache=False).data
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: load_dataset(real_tree), range(16)))
    for result in results:
        np.testing.assert_array_equal(result.data.images, expected.images)
    leftovers = [p.name for p in (tmp_path / "cache").iterdir()
                 if not p.name.endswith(".npz") or p.name.startswith(".")]
    assert leftovers == []
    monkeypatch.setattr("fer_core.data.cache.load_folder", lambda *_: pytest.fail("cache was not used"))
    np.testing.assert_array_equal(load_dataset(real_tree).data.labels, expected.labels)


def test_a_cache_that_cannot_be_written_only_costs_speed(real_tree, tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("FER_CACHE_DIR", str(blocker / "cache"))
    with pytest.warns(UserWarning, match="not written"):
        result = load_dataset(real_tree)
    assert len(result.data) == len(load_dataset(real_tree, use_cache=False).data)


def test_label_schemes():
    assert get_scheme("fer6").map_fer(np.arange(7)).tolist() == [0, 0, 1, 2, 3, 4, 5]
    subset = get_scheme("subset:Happiness,sad,neutral")
    assert subset.labels == ("happy", "sad", "neutral")
    assert subset.map_fer(np.arange(7)).tolist() == [-1, -1, -1, 0, 1, -1, 2]
    assert get_scheme("smile").map_fer(np.arange(7)).tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert canonical_label("Surprised") == "surprise" and canonical_label("4") == "sad"
    with pytest.raises(ValueError, match="unknown label scheme"):
        get_scheme("fer9")
    with pytest.raises(ValueError, match="unknown emotion"):
        get_scheme("subset:happy,bored")


def test_summary_cli_json(real_tree, tmp_path):
    (real_tree / "train" / "contempt").mkdir()
    out = subprocess.run([sys.executable, "-m", "fer_core", "summary", str(real_tree), "--json"],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    payload = json.loads(out.stdout)
    assert payload["counts"]["Training"]["disgust"] == 4
    assert payload["counts"]["PublicTest"]["neutral"] == 4
    assert payload["total"] == 56
    assert payload["skipped"][0]["reason"] == "unknown class folder 'contempt'"


def test_summary_cli_reports_bad_path():
    out = subprocess.run([sys.executable, "-m", "fer_core", "summary", "/no/such/place"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2
    assert "no such file or folder" in out.stderr
