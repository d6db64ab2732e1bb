"""The command line against what a careless or hostile user gives it: outputs it cannot write, names
that are not UTF-8, a strict UTF-8 terminal, dangling links and link loops, resumed batches that
failed before. Every case ends with a message and the exit code docs/cli.md documents, never a
traceback, and no computed result is lost: outputs are checked before the work and written whole."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from fer_core.model_card import PROJECT_ROOT
from fer_core.outputs import (
    OutputError,
    check_output_file,
    check_output_folder,
    display_path,
    replacing,
    write_output,
)

FAST_MODEL = PROJECT_ROOT / "models" / "vgg_compact_crop4_e80_fer7.keras"
CLASSIFY = ("--model", str(FAST_MODEL), "--no-tta")
LATIN1_NAME = os.fsdecode(b"caf\xe9.png")  # café.png written in Latin-1: not valid UTF-8


def run_fer(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m fer_core ARGS`` in a child process on this checkout, as a user runs it."""
    environ = os.environ | {"PYTHONPATH": str(PROJECT_ROOT)} | (env or {})
    result = subprocess.run([sys.executable, "-m", "fer_core", *args], capture_output=True, timeout=300,
                            env=environ, cwd=PROJECT_ROOT)
    result.stdout, result.stderr = (os.fsdecode(result.stdout), result.stderr.decode("utf-8", "replace"))
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture(scope="module", autouse=True)
def fast_model():
    if not FAST_MODEL.is_file():
        pytest.skip(f"{FAST_MODEL} is not in this checkout")


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "inputs" / "gray.png"
    path.parent.mkdir()
    cv2.imwrite(str(path), np.full((96, 128, 3), 128, np.uint8))
    return path


@pytest.fixture
def clip(tmp_path) -> Path:
    """Ten frames of noise at 10 fps (no face: only the plumbing is under test)."""
    import av

    path = tmp_path / "clip.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(10):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), np.uint8), format="bgr24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _can_create_in(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


@pytest.fixture
def read_only_folder(tmp_path) -> Path:
    """A folder this process cannot create files in: a chmod 555 one, or for root (whom modes do not
    stop) sysfs, which refuses new files to everyone."""
    folder = tmp_path.parent / f"{tmp_path.name}_read_only"
    folder.mkdir()
    folder.chmod(0o555)
    if not _can_create_in(folder):
        yield folder
    elif Path("/sys/kernel").is_dir() and not _can_create_in(Path("/sys/kernel")):
        yield Path("/sys/kernel")
    else:
        pytest.skip("no folder here refuses new files to this user")
    folder.chmod(0o755)


# --------------------------------------------------------------------------- fer_core.outputs


def test_display_path_escapes_only_the_bytes_that_are_not_utf8():
    assert display_path("photos/été.png") == "photos/été.png"
    assert display_path(LATIN1_NAME) == "caf\\xe9.png"
    assert display_path(os.fsencode(LATIN1_NAME)) == "caf\\xe9.png"
    display_path(LATIN1_NAME).encode("utf-8", "strict")


def test_write_output_replaces_a_file_whole_and_follows_a_link(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    write_output(link, "new,rows\n")
    assert target.read_text() == "new,rows\n" and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "table.csv"]


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"the earlier copy")
    with pytest.raises(RuntimeError), replacing(target, suffix=".mp4") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and tmp != target
        tmp.write_bytes(b"half a clip")
        raise RuntimeError("the analysis broke")
    assert target.read_bytes() == b"the earlier copy"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_a_device_is_written_in_place_never_renamed_over():
    write_output("/dev/null", "{}")
    assert Path("/dev/null").is_char_device()
    with replacing("/dev/null") as tmp:
        assert tmp == Path("/dev/null")


def test_dev_stdout_into_a_pipe_is_an_output_like_any_other():
    code = ("from fer_core.outputs import check_output_file, write_output; "
            "check_output_file('/dev/stdout'); write_output('/dev/stdout', 'through the pipe')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env=os.environ | {"PYTHONPATH": str(PROJECT_ROOT)})
    assert result.returncode == 0 and result.stdout == "through the pipe", result.stderr


def test_output_paths_are_checked_without_writing(tmp_path, read_only_folder):
    with pytest.raises(OutputError, match="is a folder"):
        check_output_file(tmp_path)
    with pytest.raises(OutputError, match="does not exist"):
        check_output_file(tmp_path / "no" / "such.csv")
    with pytest.raises(OutputError, match="cannot write"):
        check_output_file(read_only_folder / "out.csv")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_output_folder(tmp_path / "file")
    assert check_output_folder(tmp_path / "new" / "folder").is_dir()
    assert check_output_file(tmp_path / "out.csv") == tmp_path / "out.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "new"]


# --------------------------------------------------------------------------- refused before any work
# These end before the model loads, so they run as a user runs them: a child process.


@pytest.mark.parametrize("option", ["--csv", "--annotate"])
def test_video_output_into_a_folder_or_a_read_only_place_is_refused_before_the_analysis(option, clip, tmp_path,
                                                                                        read_only_folder):
    (tmp_path / "taken.mp4").mkdir()
    for output, message in ((tmp_path / "taken.mp4", "is a folder; give a file name"),
                            (read_only_folder / "out.mp4", "cannot write in")):
        result = run_fer("video", str(clip), option, str(output), *CLASSIFY)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "frames at" not in result.stdout  # nothing was analysed, so nothing was lost


def test_video_annotate_without_a_video_extension_is_a_usage_error(clip, tmp_path):
    result = run_fer("video", str(clip), "--annotate", str(tmp_path / "annotated"), *CLASSIFY)
    assert result.returncode == 2 and "end its name in .mp4" in result.stderr
    assert not (tmp_path / "annotated").exists()


@pytest.mark.parametrize("every", ["0", "-2"])
def test_video_every_below_one_is_a_usage_error(every, clip):
    result = run_fer("video", str(clip), "--every", every, *CLASSIFY)
    assert result.returncode == 2 and "--every" in result.stderr and "positive" in result.stderr


def test_predict_annotate_into_a_read_only_folder_is_refused_before_any_image(photo, read_only_folder):
    result = run_fer("predict", str(photo), "--annotate", str(read_only_folder / "annotated"), *CLASSIFY)
    assert result.returncode == 2 and "cannot" in result.stderr and result.stdout == ""


def test_predict_annotate_naming_a_file_is_refused(photo):
    result = run_fer("predict", str(photo), "--annotate", str(photo), *CLASSIFY)
    assert result.returncode == 2 and "is a file; give a folder" in result.stderr
    assert cv2.imread(str(photo)) is not None  # the input is still the picture it was


def test_evaluate_json_naming_a_folder_is_refused_before_the_evaluation(tmp_path):
    result = run_fer("evaluate", "--data", str(tmp_path / "no_data_needed"), "--json", str(tmp_path), *CLASSIFY)
    assert result.returncode == 2 and "is a folder; give a file name" in result.stderr


def test_batch_out_naming_a_file_is_refused(photo):
    result = run_fer("batch", str(photo), "--out", str(photo), *CLASSIFY)
    assert result.returncode == 2 and "is a file; give a folder" in result.stderr


# --------------------------------------------------------------------------- the work itself
# These analyse, so they call the command line in this process: the model loads once for them all
# (a child process each would load TensorFlow and the model again).


def strict_stdout(monkeypatch) -> io.BytesIO:
    """``sys.stdout`` as ``PYTHONIOENCODING=utf-8:strict`` makes it; the bytes written come back. Called in
    the test itself: pytest sets its own ``sys.stdout`` between a fixture and the test."""
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True))
    return raw


def test_video_writes_its_csv_and_annotated_copy_whole(clip, tmp_path, capsys):
    from fer_core.cli import main

    (tmp_path / "faces.csv").write_text("an older table")
    code = main(["video", str(clip), "--csv", str(tmp_path / "faces.csv"), "--annotate",
                 str(tmp_path / "annotated.mp4"), "--every", "3", *CLASSIFY])
    assert code == 0, capsys.readouterr().err
    assert list(pd.read_csv(tmp_path / "faces.csv").columns[:3]) == ["frame", "time_s", "face"]
    assert (tmp_path / "annotated.mp4").stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_a_video_over_the_frame_budget_is_refused_with_exit_code_1(clip, tmp_path, monkeypatch, capsys):
    from fer_core.cli import main

    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("FER_MAX_FRAME_PIXELS", "1000")  # the clip's frames are 64 × 48
    code = main(["video", str(clip), "--csv", str(out / "faces.csv"), "--annotate", str(out / "annotated.mp4"),
                 *CLASSIFY])
    assert code == 1 and "too large" in capsys.readouterr().err
    assert list(out.iterdir()) == []  # no CSV, no copy, no temporary file


def test_an_annotated_copy_that_cannot_be_written_keeps_the_image_result(photo, tmp_path, monkeypatch, capsys):
    import fer_core.cli.analysis
    from fer_core.cli import main

    def full_disk(path, data):
        raise OutputError(f"{path}: not written (No space left on device)")

    monkeypatch.setattr(fer_core.cli.analysis, "write_output", full_disk)
    code = main(["predict", str(photo), "--annotate", str(tmp_path / "out"), "--jsonl", *CLASSIFY])
    out, err = capsys.readouterr()
    assert code == 1 and "No space left on device" in err and "1 annotated image(s) could not be written" in err
    assert json.loads(out)["status"] == "ok"  # the faces of the image are reported all the same


@pytest.mark.parametrize("output", [[], ["--csv"]])
def test_predict_on_a_strict_utf8_terminal_reports_every_file_whatever_its_name(output, photo, monkeypatch):
    from fer_core.cli import main

    (photo.parent / LATIN1_NAME).write_bytes(photo.read_bytes())
    stdout = strict_stdout(monkeypatch)
    assert main(["predict", str(photo.parent), *output, *CLASSIFY]) == 0
    printed = stdout.getvalue().decode()
    assert f"{photo.parent}/caf\\xe9.png" in printed and f"{photo.parent}/gray.png" in printed


def test_batch_stores_names_that_are_not_utf8_and_a_resumed_batch_reports_earlier_failures(photo, tmp_path,
                                                                                          capsys):
    from fer_core.cli import main

    (photo.parent / LATIN1_NAME).write_bytes(photo.read_bytes())
    (photo.parent / "broken.png").write_bytes(b"not a picture")
    out = tmp_path / "results"
    assert main(["batch", str(photo.parent), "--out", str(out), *CLASSIFY]) == 1
    assert "3 item(s) analysed" in capsys.readouterr().out
    table = pd.read_parquet(out).sort_values("source")
    assert [Path(s).name for s in table["source"]] == ["broken.png", "caf\\xe9.png", "gray.png"]
    assert table["status"].tolist() == ["error", "ok", "ok"]
    assert main(["batch", str(photo.parent), "--out", str(out), *CLASSIFY]) == 1  # it was 0: nothing new failed
    resumed = capsys.readouterr()
    assert "3 item(s) finished by an earlier run were skipped" in resumed.out
    assert "broken.png: not an image file" in resumed.err and "1 input(s) failed in an earlier run" in resumed.err


# --------------------------------------------------------------------------- datasets
def test_summary_skips_dangling_links_and_link_loops_with_a_reason(tmp_path):
    data = tmp_path / "data"
    for label in ("happy", "sad"):
        (data / "train" / label).mkdir(parents=True)
        cv2.imwrite(str(data / "train" / label / "0.png"), np.full((48, 48), 90, np.uint8))
    (data / "train" / "happy" / "gone.png").symlink_to(data / "nowhere.png")
    (data / "train" / "sad" / "a.png").symlink_to("b.png")
    (data / "train" / "sad" / "b.png").symlink_to("a.png")
    (data / "train" / "angry").symlink_to(data / "no_folder")
    result = run_fer("summary", str(data), "--json", env={"FER_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["total"] == 2
    reasons = {Path(s["source"]).name: s["reason"] for s in summary["skipped"]}
    assert reasons == {"gone.png": "dangling symbolic link (its target does not exist)",
                       "a.png": "symbolic link loop", "b.png": "symbolic link loop",
                       "angry": "dangling symbolic link (its target does not exist)"}


def test_summary_on_a_strict_utf8_terminal_lists_a_name_that_is_not_utf8(tmp_path):
    faces = tmp_path / "data" / "happy"
    faces.mkdir(parents=True)
    cv2.imwrite(str(faces / "0.png"), np.full((48, 48), 90, np.uint8))
    (faces / LATIN1_NAME.replace(".png", ".txt")).write_text("not a face")
    result = run_fer("summary", str(tmp_path / "data"), env={"PYTHONIOENCODING": "utf-8:strict",
                                                             "FER_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    assert "caf\\xe9.txt: not an image file" in result.stdout
