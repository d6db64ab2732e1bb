"""Batch analysis (``python -m fer_core batch``): inputs, rows equal to predict's and video's, failures
in place, resuming after a kill, and the Ray engine (a local Ray with 2 workers, one killed midway)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest

from fer_core.cli import main
from fer_core.inference.batch import (
    MANIFEST_FILE,
    BatchError,
    BatchSettings,
    expand_inputs,
    plan_items,
    run_batch,
)
from fer_core.labels import FER_LABELS
from fer_core.settings import AnalysisSettings, default_detector

ROOT = Path(__file__).resolve().parent.parent
CLIP_FRAMES = 24
EVERY = 2
SEGMENT = 5  # frames per video segment: the clip becomes 5 units, the last one "to the end"
ORDER = ["source", "frame", "face"]


def make_clip(photo_path: Path, path: Path, frames: int = CLIP_FRAMES) -> Path:
    """An MP4 of the photo drifting right by 2 px a frame, a key frame every 6 frames (so that
    segments start between key frames and the reading has to seek and then skip)."""
    photo = cv2.resize(cv2.imread(str(photo_path)), (256, 256))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
        stream.codec_context.gop_size = 6
        for i in range(frames):
            frame = np.full_like(photo, 90)
            frame[:, 2 * i:] = photo[:, : 256 - 2 * i]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def inputs(astronaut_path, tmp_path_factory) -> Path:
    """A folder of good and bad inputs: a photo with a face, a small face image the detector finds
    no face in, a clip, a corrupt image and a corrupt (truncated) video."""
    import shutil

    folder = tmp_path_factory.mktemp("batch_inputs")
    shutil.copy(astronaut_path, folder / "astronaut.png")
    cv2.imwrite(str(folder / "small.jpg"), cv2.resize(cv2.imread(str(astronaut_path)), (48, 48)))
    (folder / "clips").mkdir()
    clip = make_clip(astronaut_path, folder / "clips" / "drift.mp4")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    (folder / "broken.mp4").write_bytes(clip.read_bytes()[:2000])
    return folder


@pytest.fixture(scope="module")
def model_path() -> Path:
    """The shipped fast model. ONNX Runtime classifies with it (its card vouches for its export), so that
    the processes these tests start (the command, each Ray worker, again after each death) load it in
    a fraction of a second instead of importing TensorFlow (~5 s of CPU each), as a Keras model needs."""
    from fer_core.model_card import FAST_MODEL_NAME, MODELS_DIR

    return MODELS_DIR / FAST_MODEL_NAME


def settings_for(model: Path, every: int = EVERY) -> BatchSettings:
    return BatchSettings(AnalysisSettings(model=str(model), detector=default_detector("batch")), every=every,
                         segment_frames=SEGMENT)


def table(out: Path) -> pd.DataFrame:
    """The results folder as one frame, rows in a fixed order (parts finish in any order)."""
    return pd.read_parquet(out).sort_values(ORDER, na_position="first").reset_index(drop=True)


@pytest.fixture(scope="module")
def local_rows(inputs, model_path, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("batch_local") / "results"
    summary = run_batch([inputs], out, settings_for(model_path))
    assert summary.items == 4 + CLIP_FRAMES // SEGMENT + 1  # the clip's 5 segments; broken.mp4 one item
    return table(out)


# --------------------------------------------------------------------------- inputs and plan


def test_inputs_from_folders_lists_and_missing_paths(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.jpg", "a/b/y.MP4", "a/notes.md", "z.png"):
        (tmp_path / name).write_bytes(b"")
    listing = tmp_path / "a" / "list.txt"
    listing.write_text("# inputs\n\nx.jpg\n../z.png\nmissing.webm\nlist.txt\n")
    found = expand_inputs([tmp_path / "a", listing, tmp_path / "nope.jpg"])
    assert [(Path(i.path).relative_to(tmp_path).as_posix() if i.kind != "missing" else Path(i.path).name, i.kind)
            for i in found] == [("a/b/y.MP4", "video"), ("a/x.jpg", "image"), ("z.png", "image"),
                                ("missing.webm", "missing"), ("nope.jpg", "missing")]


def test_a_video_is_planned_as_segments_by_its_frame_count(inputs):
    clip = str(inputs / "clips" / "drift.mp4")
    items = plan_items(expand_inputs([clip, inputs / "broken.mp4"]), segment_frames=SEGMENT)
    assert [(i.start, i.stop) for i in items] == [(0, 5), (5, 10), (10, 15), (15, 20), (20, None), (0, None)]
    assert items[-1].key.endswith("broken.mp4#frames=0-end")


# --------------------------------------------------------------------------- rows


def test_image_rows_equal_predicts(local_rows, inputs, model_path, capsys):
    main(["predict", str(inputs / "astronaut.png"), str(inputs / "small.jpg"), "--jsonl",
          "--model", str(model_path)])
    records = {r["path"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    for path, record in records.items():
        rows = local_rows[local_rows["source"] == path]
        if not record["faces"]:
            assert len(rows) == 1 and rows["face"].isna().all() and (rows["status"] == "ok").all()
            continue
        assert len(rows) == len(record["faces"]) and len(record["faces"]) >= 1
        for face, (_, row) in zip(record["faces"], rows.iterrows()):
            assert [row["face"], row["x"], row["y"], row["w"], row["h"]] == [face["face"], *face["box"]]
            assert row["label"] == face["label"] and row["model"] == model_path.stem
            assert {k: round(row[k], 6) for k in FER_LABELS} == face["probabilities"]


def test_the_detector_chosen_is_the_one_predict_uses(inputs, model_path, tmp_path, capsys):
    out = tmp_path / "results"
    main(["batch", str(inputs / "astronaut.png"), "--out", str(out), "--detector", "blazeface",
          "--model", str(model_path)])
    capsys.readouterr()
    main(["predict", str(inputs / "astronaut.png"), "--jsonl", "--detector", "blazeface",
          "--model", str(model_path)])
    boxes = [face["box"] for face in json.loads(capsys.readouterr().out)["faces"]]
    haar = main(["predict", str(inputs / "astronaut.png"), "--jsonl", "--model", str(model_path)])
    haar_boxes = [face["box"] for face in json.loads(capsys.readouterr().out.splitlines()[-1])["faces"]]
    assert haar == 0 and boxes and boxes != haar_boxes  # the two detectors frame the face differently
    assert table(out)[["x", "y", "w", "h"]].values.tolist() == boxes
    assert json.loads((out / "_batch.json").read_text())["detector"] == "blazeface"


def test_video_rows_equal_the_video_commands(local_rows, inputs, model_path, tmp_path):
    clip = inputs / "clips" / "drift.mp4"
    main(["video", str(clip), "--every", str(EVERY), "--csv", str(tmp_path / "video.csv"),
          "--model", str(model_path)])
    expected = pd.read_csv(tmp_path / "video.csv")
    rows = local_rows[local_rows["source"] == str(clip)].reset_index(drop=True)
    assert list(expected["frame"]) == list(range(0, CLIP_FRAMES, EVERY))  # a face in every analysed frame
    pd.testing.assert_frame_equal(rows[expected.columns].astype(expected.dtypes), expected)


def test_corrupt_image_and_video_get_one_error_row_each(local_rows, inputs):
    failed = local_rows[local_rows["status"] == "error"].set_index("source")["error"]
    assert sorted(failed.index) == [str(inputs / "broken.jpg"), str(inputs / "broken.mp4")]
    assert "damaged or truncated image" in failed[str(inputs / "broken.jpg")]
    assert "not a video" in failed[str(inputs / "broken.mp4")]
    assert (local_rows[local_rows["status"] == "ok"]["source"].nunique()) == 3


# --------------------------------------------------------------------------- person numbers

PEOPLE_FRAMES, PEOPLE_FPS = 40, 10


def squares_clip(path: Path) -> Path:
    """Bright squares that :class:`batch_workers.BlobDetector` finds: one walks right through the clip,
    one stands still for its first 12 frames and leaves, one comes in far away at frame 28 (a third
    person), so that numbers restarted per segment could not give the one-pass numbers."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=PEOPLE_FPS)
        stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
        stream.codec_context.gop_size = 6
        for i in range(PEOPLE_FRAMES):
            frame = np.zeros((256, 256, 3), np.uint8)
            frame[20:60, 10 + 3 * i:50 + 3 * i] = 255
            if i < 12:
                frame[150:190, 180:220] = 255
            if i >= 28:
                frame[200:240, 20:60] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> Path:
    return squares_clip(tmp_path_factory.mktemp("people") / "squares.mp4")


@pytest.fixture(scope="module")
def one_pass_people(squares, model_path) -> list[tuple[int, int, int]]:
    """``(frame, face, person)`` of every face of the squares clip analysed in one pass."""
    from batch_workers import BlobDetector

    from fer_core.inference.recognizer import EmotionRecognizer
    from fer_core.inference.video import analyze_video

    rows = analyze_video(squares, EmotionRecognizer(model_path), every=EVERY, detector=BlobDetector()).rows
    return [(row["frame"], row["face"], row["person"]) for row in rows]


def engine_finishing(settings: BatchSettings, order: list[int] | None = None, stop_after: int | None = None):
    """A local engine with :class:`batch_workers.BlobAnalyzer` that hands the units back in the order
    of ``order`` (indexes; reversed when ``None``), and raises after ``stop_after`` of them as a kill
    would end the run."""
    from batch_workers import BlobAnalyzer

    def engine(units, done):
        analyzer = BlobAnalyzer(settings)
        finished = [(unit, analyzer.analyze(unit)) for unit in units]
        for count, index in enumerate(order if order is not None else reversed(range(len(units)))):
            if count == stop_after:
                raise KeyboardInterrupt
            done(*finished[index])

    return engine


def people_of(out: Path) -> list[tuple[int, int, int]]:
    return [tuple(map(int, row)) for row in table(out)[["frame", "face", "person"]].values.tolist()]


def test_person_numbers_run_through_the_segments_as_in_one_pass(squares, one_pass_people, model_path,
                                                                tmp_path):
    settings, out = settings_for(model_path), tmp_path / "results"
    run_batch([squares], out, settings, engine=engine_finishing(settings))  # the last segment first
    assert sorted({person for _, _, person in one_pass_people}) == [1, 2, 3]
    assert people_of(out) == one_pass_people


def test_person_numbers_after_a_resume_equal_one_pass(squares, one_pass_people, model_path, tmp_path):
    """Killed after four units came back out of order (three written, one held back and lost), then
    resumed with the units finishing last first."""
    settings, out = settings_for(model_path), tmp_path / "results"
    with pytest.raises(KeyboardInterrupt):
        run_batch([squares], out, settings, engine=engine_finishing(settings, [2, 0, 4, 1, 3, 5, 6, 7], stop_after=4))
    assert (out / MANIFEST_FILE).read_text().count("\n") == 3
    summary = run_batch([squares], out, settings, engine=engine_finishing(settings))
    assert (summary.skipped, summary.items) == (3, 5)
    assert people_of(out) == one_pass_people


# --------------------------------------------------------------------------- the results folder


def test_a_folder_of_other_settings_or_other_files_is_refused(inputs, model_path, tmp_path):
    out = tmp_path / "results"
    run_batch([inputs / "small.jpg"], out, settings_for(model_path))
    with pytest.raises(BatchError, match="every 2 → 3"):
        run_batch([inputs / "small.jpg"], out, settings_for(model_path, every=3))
    with pytest.raises(FileNotFoundError, match="no such model file"):
        run_batch([inputs / "small.jpg"], tmp_path / "new", settings_for(tmp_path / "missing.keras"))
    assert not (tmp_path / "new").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(BatchError, match="not empty"):
        run_batch([inputs / "small.jpg"], tmp_path / "other", settings_for(model_path))


def test_a_results_folder_written_before_the_settings_held_an_analysis_resumes(inputs, model_path, tmp_path):
    """``_batch.json`` as earlier versions wrote it (``asdict`` of a flat BatchSettings): the same
    settings given again resume the folder instead of refusing it, and another setting is still named."""
    out = tmp_path / "results"
    first = run_batch([inputs / "small.jpg"], out, settings_for(model_path))
    earlier = {"model": str(model_path), "every": EVERY, "tta": True, "scheme": None, "segment_frames": SEGMENT,
               "detector": default_detector("batch")}
    (out / "_batch.json").write_text(json.dumps(earlier, indent=2))
    again = run_batch([inputs / "small.jpg", inputs / "astronaut.png"], out, settings_for(model_path))
    assert (first.items, again.skipped, again.items) == (1, 1, 1)
    without_tta = settings_for(model_path).analysis.with_changes(tta=False)
    with pytest.raises(BatchError, match="tta True → False"):
        run_batch([inputs / "small.jpg"], out, BatchSettings(without_tta, every=EVERY, segment_frames=SEGMENT))


def test_resume_drops_unrecorded_parts_and_a_torn_manifest_line(local_rows, inputs, model_path, tmp_path):
    """The state a kill can leave: a part renamed into place but not recorded, a manifest line cut
    short, a temporary part; the next run redoes those items, and every row is there once."""
    out = tmp_path / "results"
    settings = settings_for(model_path)
    first = run_batch([inputs / "clips"], out, settings)  # the clip's segments only
    lines = (out / MANIFEST_FILE).read_text().splitlines(keepends=True)
    (out / MANIFEST_FILE).write_text("".join(lines[:-2]) + lines[-2][:25])
    (out / ".part-000099.parquet.tmp").write_bytes(b"half a part")
    summary = run_batch([inputs], out, settings)
    assert (first.items, summary.skipped, summary.items) == (5, 3, 9 - 3)
    assert not (out / ".part-000099.parquet.tmp").exists()
    pd.testing.assert_frame_equal(table(out), local_rows)


def test_killing_the_command_midway_then_running_it_again_gives_every_row_once(local_rows, inputs,
                                                                             model_path, tmp_path):
    out = tmp_path / "results"
    command = [sys.executable, "-m", "fer_core", "batch", str(inputs), "--out", str(out), "--every", str(EVERY),
               "--segment-frames", "1", "--model", str(model_path), "--verbose"]  # 24 one-frame units: time to
    # kill, and rows that must not depend on how the clip was cut. --verbose: the command does not import
    # TensorFlow to mute its start-up lines (~5 s of CPU a run), which ONNX Runtime's model does not need.
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    job = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / MANIFEST_FILE
    deadline = time.monotonic() + 120
    while job.poll() is None and time.monotonic() < deadline:
        if manifest.is_file() and manifest.read_text().count("\n") >= 3:
            job.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert job.wait() == -signal.SIGKILL, "the job ended before it could be killed midway"
    recorded = manifest.read_text().count("\n")
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 1, rerun.stderr  # the two broken inputs
    assert f"{recorded} item(s) finished by an earlier run were skipped" in rerun.stdout
    pd.testing.assert_frame_equal(table(out), local_rows)


# --------------------------------------------------------------------------- Ray


@pytest.mark.slow
def test_ray_with_two_workers_gives_the_local_rows(local_ray, local_rows, inputs, model_path, tmp_path):
    from fer_core.inference.batch_ray import ray_engine

    settings = settings_for(model_path)
    run_batch([inputs], tmp_path / "results", settings, engine=ray_engine(settings, workers=2))
    pd.testing.assert_frame_equal(table(tmp_path / "results"), local_rows)


@pytest.mark.slow
def test_a_ray_worker_dying_midway_still_gives_every_row_once(local_ray, local_rows, inputs, model_path,
                                                             tmp_path):
    from fer_core.inference.batch_ray import ray_engine

    settings = settings_for(model_path)
    from batch_workers import DiesOnceAnalyzer

    engine = ray_engine(settings, workers=2, analyzer_class=DiesOnceAnalyzer)
    run_batch([inputs], tmp_path / "results", settings, engine=engine)
    assert local_ray.marker.exists(), "no worker died: the test did not test a death"
    pd.testing.assert_frame_equal(table(tmp_path / "results"), local_rows)


@pytest.mark.slow
def test_an_input_that_kills_every_worker_gets_error_rows_and_the_rest_goes_on(local_ray, model_path,
                                                                               tmp_path):
    from batch_workers import PoisonedAnalyzer

    from fer_core.inference.batch_ray import ray_engine

    names = ["a.png", "b.png", "poison.mp4", "c.mp4"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    settings = settings_for(model_path)
    engine = ray_engine(settings, workers=2, analyzer_class=PoisonedAnalyzer)
    summary = run_batch([tmp_path / n for n in names], tmp_path / "results", settings, engine=engine)
    assert (summary.units, summary.items, summary.failed) == (3, 4, 1)
    rows = pd.read_parquet(tmp_path / "results")
    assert rows["source"].tolist() == [str(tmp_path / "poison.mp4")]
    assert rows["error"].str.contains("worker died").all()


@pytest.mark.slow
def test_ray_workers_that_cannot_load_the_model_stop_the_batch_before_any_row(local_ray, inputs, tmp_path):
    from fer_core.inference.batch_ray import ray_engine

    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    settings = settings_for(broken)
    with pytest.raises(BatchError, match="workers could not start"):
        run_batch([inputs], tmp_path / "results", settings, engine=ray_engine(settings, workers=2))
    assert not (tmp_path / "results" / MANIFEST_FILE).exists()


def test_importing_the_package_and_the_command_line_does_not_import_ray():
    code = ("import sys, fer_core.cli, fer_core.inference.batch; fer_core.cli.build_parser(); "
            "print('ray' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert result.stdout.strip() == "False", result.stderr
