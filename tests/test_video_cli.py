"""Video analysis and the ``predict`` / ``video`` command lines, on files the tests build themselves."""

from __future__ import annotations

import csv
import json

import av
import cv2
import numpy as np
import pandas as pd
import pytest
from helpers import copy_real_faces, fail_analysis_of_frame, two_people_clip

from fer_core.app.video import analyze_video_upload
from fer_core.cli import main
from fer_core.inference.video import AnnotatedWriter, VideoError, analyze_video, upright
from fer_core.labels import FER_LABELS

FRAMES = 10  # the astronaut_clip fixture's length


def count_frames(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_analyze_video_every_third_frame(tiny_recognizer, astronaut_clip, tmp_path):
    calls = []
    out = tmp_path / "annotated.mp4"
    result = analyze_video(astronaut_clip, tiny_recognizer, every=3, annotate_path=out,
                           progress=lambda done, total: calls.append((done, total)))
    table = result.to_frame()
    assert result.frames_read == FRAMES and result.frames_analyzed == 4
    assert table["frame"].tolist() == [0, 3, 6, 9]  # one face in each analysed frame
    assert table["time_s"].tolist() == pytest.approx([0.0, 0.3, 0.6, 0.9])
    assert (table["face"] == 1).all() and (table["person"] == 1).all()  # one person, followed as it drifts
    assert list(table.columns[-7:]) == list(FER_LABELS)
    assert list(result.portraits) == [1] and result.portraits[1].shape[2] == 3
    np.testing.assert_allclose(table[list(FER_LABELS)].sum(axis=1), 1.0, atol=1e-5)
    assert (table["x"].diff().dropna() > 0).all()  # the box follows the drifting face
    assert [d for d, _ in calls] == [1, 4, 7, 10, 10] and calls[-1][1] == FRAMES
    assert count_frames(out) == FRAMES


def test_max_seconds_stops_early(tiny_recognizer, astronaut_clip):
    result = analyze_video(astronaut_clip, tiny_recognizer, every=1, max_seconds=0.45)
    assert result.frames_read == 5


def test_not_a_video_is_a_video_error(tiny_recognizer, tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoError, match="clip.mp4"):
        analyze_video(bad, tiny_recognizer)
    with pytest.raises(VideoError):
        analyze_video_upload(b"not a video", "holiday.mov", tiny_recognizer)


class StreamBreakingAfter:
    """A PyAV input container whose stream breaks (FFmpeg reports invalid data) after ``frames`` frames."""

    def __init__(self, container, frames: int):
        self.container, self.frames = container, frames
        self.streams = container.streams

    def decode(self, stream):
        for i, frame in enumerate(self.container.decode(stream)):
            if i == self.frames:
                raise av.InvalidDataError(1094995529, "Invalid data found when processing input")
            yield frame

    def close(self):
        self.container.close()


def test_a_stream_broken_midway_keeps_the_frames_before_it(tiny_recognizer, astronaut_clip, monkeypatch, tmp_path):
    import fer_core.inference.video

    real_open = fer_core.inference.video._open_input
    monkeypatch.setattr(fer_core.inference.video, "_open_input", lambda path: StreamBreakingAfter(real_open(path), 7))
    out = tmp_path / "annotated.mp4"
    result = analyze_video(astronaut_clip, tiny_recognizer, every=3, annotate_path=out)
    assert result.frames_read == 7 and result.to_frame()["frame"].tolist() == [0, 3, 6]
    assert result.error == "stopped at frame 7 (t = 0.70 s): decoding failed ([Errno 1094995529] Invalid data " \
                           "found when processing input)"
    assert count_frames(out) == 7  # the annotated copy is closed properly, up to the break


@pytest.fixture
def bad_fourth_frame(monkeypatch):
    """The analysis of the 4th analysed frame raises, as a bug on an odd frame would."""
    fail_analysis_of_frame(monkeypatch, 4)


def test_a_bad_frame_keeps_what_was_analysed(tiny_recognizer, astronaut_clip, bad_fourth_frame):
    result = analyze_video(astronaut_clip, tiny_recognizer, every=2)
    assert result.to_frame()["frame"].tolist() == [0, 2, 4]
    assert result.error == "stopped at frame 6 (t = 0.60 s): unexpected ValueError: odd frame"


def test_video_cli_reports_where_it_stopped_and_still_writes_the_csv(tiny_model_path, astronaut_clip, tmp_path,
                                                                     capsys, bad_fourth_frame):
    table = tmp_path / "faces.csv"
    code = main(["video", str(astronaut_clip), "--csv", str(table), "--every", "1", "--model", str(tiny_model_path)])
    captured = capsys.readouterr()
    assert code == 1
    assert f"error: {astronaut_clip}: stopped at frame 3 (t = 0.30 s): unexpected ValueError: odd frame" in captured.err
    with open(table) as f:
        assert [int(r["frame"]) for r in csv.DictReader(f)] == [0, 1, 2]
    assert "3 frames" in captured.out and "stopped early" in captured.out


def test_a_truncated_clip_gives_the_frames_it_holds(tiny_recognizer, tmp_path):
    clip = tmp_path / "clip.mkv"  # Matroska: readable up to where it was cut (MP4 keeps its index at the end)
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(30):
            frame = np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode(None))
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    result = analyze_video(clip, tiny_recognizer, every=1)
    assert 0 < result.frames_read < 30


def test_video_upload_returns_the_annotated_mp4_bytes(tiny_recognizer, astronaut_clip):
    result = analyze_video_upload(astronaut_clip.read_bytes(), "astronaut.mp4", tiny_recognizer, every=5)
    assert result.analysis.frames_analyzed == 2 and result.analysis.annotated_path is None
    assert result.annotated_mp4[4:8] == b"ftyp"  # an MP4 file


def test_annotated_writer_takes_one_pixel_frames(tmp_path):
    writer = AnnotatedWriter(tmp_path / "out.mp4", fps=5)
    writer.write(np.zeros((1, 1, 3), np.uint8))  # yuv420p needs 2×2 at least: 0×0 used to fail
    writer.close()
    assert count_frames(tmp_path / "out.mp4") == 1


def test_annotated_writer_keeps_the_first_frame_size(tmp_path):
    writer = AnnotatedWriter(tmp_path / "out.mp4", fps=5)
    writer.write(np.zeros((61, 81, 3), np.uint8))  # odd sizes: cut to even for yuv420p
    writer.write(np.zeros((120, 160, 3), np.uint8))  # a change of resolution mid-clip
    writer.close()
    with av.open(str(tmp_path / "out.mp4")) as container:
        frames = [f.to_ndarray(format="bgr24").shape for f in container.decode(video=0)]
    assert frames == [(60, 80, 3), (60, 80, 3)]


def test_upright_turns_counter_clockwise():
    frame = np.arange(6).reshape(2, 3)
    assert upright(frame, 0) is frame
    assert upright(frame, 90).tolist() == [[2, 5], [1, 4], [0, 3]]
    assert upright(frame, -90).tolist() == [[3, 0], [4, 1], [5, 2]]


def test_video_cli_writes_csv_and_annotated_clip(tiny_model_path, astronaut_clip, tmp_path, capsys):
    table, annotated, people = tmp_path / "faces.csv", tmp_path / "out.mp4", tmp_path / "people.csv"
    code = main(["video", str(astronaut_clip), "--csv", str(table), "--annotate", str(annotated), "--every", "2",
                 "--people-csv", str(people), "--model", str(tiny_model_path)])
    assert code == 0
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == [0, 2, 4, 6, 8] and {r["person"] for r in rows} == {"1"}
    with open(people) as f:
        [person] = list(csv.DictReader(f))
    assert (person["person"], person["frames"], float(person["seconds"])) == ("1", "5", 1.0)  # 5 × 2 frames at 10 fps
    assert float(person[person["main_emotion"]]) == max(float(person[label]) for label in FER_LABELS)
    assert count_frames(annotated) == FRAMES
    captured = capsys.readouterr()
    assert "10 frames" in captured.out and "5 analysed" in captured.out
    assert "person 1: 0.0–0.8 s, seen 1.0 s; " in captured.out
    assert "analysing: frame 10/10 (100%)" in captured.err


def test_predict_cli_json(tiny_model_path, astronaut_path, tmp_path, capsys):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((100, 100, 3), 128, np.uint8))
    outdir = tmp_path / "annotated"
    code = main(["predict", str(astronaut_path), str(tmp_path), "--json", "--annotate", str(outdir),
                 "--model", str(tiny_model_path), "--no-tta"])
    captured = capsys.readouterr()
    assert code == 1  # one file could not be read
    assert "broken.jpg" in captured.err
    records = json.loads(captured.out)
    assert [r["path"] for r in records] == [str(astronaut_path), str(blank), str(tmp_path / "broken.jpg")]
    assert [r["status"] for r in records] == ["ok", "ok", "error"]
    assert records[2]["error"].startswith("damaged or truncated image") and records[2]["faces"] == []
    face = records[0]["faces"][0]
    assert len(records[0]["faces"]) == 1 and records[1]["faces"] == []
    assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
    assert set(face["probabilities"]) == set(FER_LABELS)
    assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert sorted(p.name for p in outdir.iterdir()) == ["astronaut_annotated.png", "blank_annotated.png"]
    assert "1 image(s) without a detected face" in captured.err


def test_predict_cli_csv_and_whole_image(tiny_model_path, astronaut_path, tmp_path, capsys):
    outdir = tmp_path / "annotated"
    assert main(["predict", str(astronaut_path), str(astronaut_path), "--csv", "--whole-image",
                 "--annotate", str(outdir), "--model", str(tiny_model_path)]) == 0
    assert sorted(p.name for p in outdir.iterdir()) == ["astronaut_annotated.png", "astronaut_annotated_2.png"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "path,status,error,face,x,y,w,h,label,confidence," + ",".join(FER_LABELS)
    assert lines[1].startswith(f"{astronaut_path},ok,,1,0,0,512,512,") and len(lines) == 3


def write_png(path, shape, value=128):
    cv2.imwrite(str(path), np.full((*shape, 3), value, np.uint8))
    return path


def test_predict_cli_survives_a_one_pixel_strip(tiny_model_path, astronaut_path, tmp_path, capsys):
    # The reproduction: a 1×5000 PNG among good photos ended the whole run in a traceback.
    strip = write_png(tmp_path / "strip.png", (1, 5000))
    code = main(["predict", str(strip), str(astronaut_path), "--json", "--model", str(tiny_model_path), "--no-tta"])
    records = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(r["status"], len(r["faces"])) for r in records] == [("ok", 0), ("ok", 1)]


@pytest.fixture
def failing_pipeline(monkeypatch):
    """``analyze_image`` raises an unexpected error for 33×33 images, as a bug would."""
    import fer_core.inference.pipeline

    real = fer_core.inference.pipeline.analyze_image

    def analyze_image(image, *args, **kwargs):
        if image.shape[:2] == (33, 33):
            raise RuntimeError("boom\nsecond line")
        return real(image, *args, **kwargs)

    monkeypatch.setattr(fer_core.inference.pipeline, "analyze_image", analyze_image)


def test_predict_cli_jsonl_reports_any_failure_and_keeps_the_rest(tiny_model_path, tmp_path, capsys,
                                                                  failing_pipeline):
    folder = tmp_path / "in"
    folder.mkdir()
    write_png(folder / "a.png", (64, 64))
    write_png(folder / "b_bug.png", (33, 33))
    (folder / "c_empty.jpg").write_bytes(b"")
    write_png(folder / "d.png", (40, 50))
    missing = tmp_path / "gone.png"
    code = main(["predict", str(folder), str(missing), "--jsonl", "--model", str(tiny_model_path), "--no-tta"])
    captured = capsys.readouterr()
    assert code == 1
    records = [json.loads(line) for line in captured.out.splitlines()]
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in records}
    assert len(records) == 5 and set(by_name) == {"gone.png", "a.png", "b_bug.png", "c_empty.jpg", "d.png"}
    assert [by_name[n]["status"] for n in ("a.png", "d.png")] == ["ok", "ok"]
    assert by_name["b_bug.png"] == {"path": str(folder / "b_bug.png"), "status": "error",
                                    "error": "unexpected RuntimeError: boom", "faces": []}
    assert by_name["c_empty.jpg"]["error"] == "the file is empty (0 bytes)"
    assert by_name["gone.png"]["error"] == "no such file or folder"
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {missing}: no such file or folder",
                      f"error: {folder / 'b_bug.png'}: unexpected RuntimeError: boom",
                      f"error: {folder / 'c_empty.jpg'}: the file is empty (0 bytes)"]
    assert "3 of 5 input(s) could not be used" in captured.err


def test_predict_cli_csv_has_a_row_per_input_with_its_status(tiny_model_path, astronaut_path, tmp_path, capsys):
    blank = write_png(tmp_path / "blank.png", (64, 64))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    code = main(["predict", str(astronaut_path), str(blank), str(tmp_path / "bad.png"), "--csv",
                 "--model", str(tiny_model_path), "--no-tta"])
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert code == 1
    assert [(r["path"], r["status"], r["face"]) for r in rows] == [
        (str(astronaut_path), "ok", "1"), (str(blank), "ok", ""), (str(tmp_path / "bad.png"), "error", "")]
    assert rows[2]["error"].startswith("not an image file") and rows[2]["label"] == ""


@pytest.mark.parametrize("fmt", ["--jsonl", "--json", "--csv"])
def test_predict_cli_keeps_what_it_did_when_interrupted(tiny_model_path, tmp_path, capsys, monkeypatch, fmt):
    import fer_core.inference.pipeline

    for name in "abc":
        write_png(tmp_path / f"{name}.png", (64, 64))
    real, calls = fer_core.inference.pipeline.analyze_image, []

    def interrupted_on_the_third(image, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(image, *args, **kwargs)

    monkeypatch.setattr(fer_core.inference.pipeline, "analyze_image", interrupted_on_the_third)
    assert main(["predict", str(tmp_path), fmt, "--model", str(tiny_model_path), "--no-tta"]) == 130
    captured = capsys.readouterr()
    assert "interrupted after 2 of 3 file(s)" in captured.err
    out = captured.out
    if fmt == "--jsonl":
        paths = [json.loads(line)["path"] for line in out.splitlines()]
    elif fmt == "--json":
        paths = [r["path"] for r in json.loads(out)]
    else:
        paths = [r["path"] for r in csv.DictReader(out.splitlines())]
    assert paths == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]


class FlushCounter:
    def __init__(self):
        self.text, self.flushed = "", []

    def write(self, text):
        self.text += text

    def flush(self):
        self.flushed.append(self.text)


def test_jsonl_and_csv_writers_flush_every_record():
    from fer_core.inference.results import CsvWriter, JsonLinesWriter, error_record

    for make in (JsonLinesWriter, lambda stream: CsvWriter(stream, FER_LABELS)):
        stream = FlushCounter()
        writer = make(stream)
        writer.write(error_record("a.png", "broken"))
        assert stream.flushed and "a.png" in stream.flushed[-1]  # on its way before the next input


TENSORFLOW_NOISE = ("absl::InitializeLog", "cuda drivers", "oneDNN", "cpu_feature_guard")


def run_cli(*args, cwd=None):
    import os
    import subprocess
    import sys

    from fer_core.model_card import PROJECT_ROOT

    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    return subprocess.run([sys.executable, "-m", "fer_core", *args], capture_output=True, text=True, env=env,
                          cwd=cwd or PROJECT_ROOT, timeout=300)


def test_cli_terminal_is_free_of_tensorflow_start_up_noise(tiny_model_path, astronaut_path):
    quiet = run_cli("predict", str(astronaut_path), "--model", str(tiny_model_path), "--no-tta")
    assert quiet.returncode == 0, quiet.stderr
    assert "1 face" in quiet.stdout
    assert not [line for line in quiet.stderr.splitlines() if any(n in line for n in TENSORFLOW_NOISE)], quiet.stderr
    loud = run_cli("--verbose", "predict", str(astronaut_path), "--model", str(tiny_model_path), "--no-tta")
    assert loud.returncode == 0 and "1 face" in loud.stdout
    assert any(n in loud.stderr for n in TENSORFLOW_NOISE)  # the check above can see the noise when it is there


def test_analysis_commands_on_the_shipped_model_never_import_tensorflow(astronaut_path, fer_dir, tmp_path):
    """Its ONNX export classifies: predict, video, batch and evaluate start without TensorFlow (several
    seconds each), and do not need it to finish."""
    import subprocess
    import sys

    from fer_core.model_card import PROJECT_ROOT, ModelCard, default_model_path

    if ModelCard.load(default_model_path()).exported_model_path is None:
        pytest.skip("the shipped model has no ONNX export here")
    clip = two_people_clip(astronaut_path, tmp_path / "two.mp4")
    faces = copy_real_faces(fer_dir, tmp_path / "faces", {"validation": 1})
    commands = [["predict", str(astronaut_path)], ["video", str(clip)],
                ["batch", str(astronaut_path), str(clip), "--out", str(tmp_path / "batch")],
                ["evaluate", "--data", str(faces)]]
    code = ("import sys; from fer_core.cli import main\n"
            f"codes = [main(c) for c in {commands!r}]\n"
            "print(codes, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "[0, 0, 0, 0] False False", done.stdout[-3000:]


def test_verbose_flag_before_or_after_the_command_and_train_progress():
    from fer_core.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["--verbose", "predict", "a.png"]).verbose
    assert parser.parse_args(["predict", "a.png", "--verbose"]).verbose
    assert not parser.parse_args(["predict", "a.png"]).verbose
    train = ["train", "--data", "d", "--out", "o"]
    assert parser.parse_args(train).progress == 2
    old_spelling = parser.parse_args([*train, "--verbose", "1"])
    assert old_spelling.progress == 1 and not old_spelling.verbose
    assert parser.parse_args(["--verbose", *train, "--progress", "0"]).progress == 0


def test_predict_cli_interrupted_by_ctrl_c_keeps_every_finished_record(tiny_model_path, astronaut_path, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from fer_core.model_card import PROJECT_ROOT

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(300):
        (folder / f"{i:03d}.png").write_bytes(astronaut_path.read_bytes())
    out = tmp_path / "out.jsonl"
    with open(out, "w") as stdout:  # a file, not a terminal: Python would buffer it without the flushes
        # Ctrl-C's default action, as a shell gives a foreground command: a child inherits an ignored
        # SIGINT (which a test before this one in the same worker may have left), and Python then installs
        # no KeyboardInterrupt handler, so the run would finish and exit 0.
        process = subprocess.Popen([sys.executable, "-m", "fer_core", "predict", str(folder), "--jsonl",
                                    "--model", str(tiny_model_path), "--no-tta"], stdout=stdout,
                                   stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT, env=os.environ,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 120
        while out.read_text().count("\n") < 3 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    lines = out.read_text().splitlines()
    assert process.returncode == 130, stderr
    assert 3 <= len(lines) < 300 and all(json.loads(line)["status"] == "ok" for line in lines)
    # The count may be one short: Ctrl-C can land between a record's write and the count.
    assert any(f"interrupted after {n} of 300 file(s)" in stderr for n in (len(lines) - 1, len(lines))), stderr


def test_person_summary_shares_time_per_emotion_and_person():
    from fer_core.inference.people import emotions_over_time, person_summary

    labels = ("happy", "sad")
    table = pd.DataFrame({"frame": [0, 0, 5, 5, 10], "time_s": [0.0, 0.0, 0.2, 0.2, 0.4], "person": [1, 2, 1, 2, 1],
                          "label": ["happy", "sad", "happy", "sad", "sad"],
                          "happy": [0.9, 0.2, 0.8, 0.1, 0.4], "sad": [0.1, 0.8, 0.2, 0.9, 0.6]})
    summary = person_summary(table, labels, frame_step_s=0.2).set_index("person")
    assert summary.loc[1, ["frames", "seconds", "main_emotion", "first_s", "last_s"]].tolist() == [3, 0.6, "happy",
                                                                                                   0.0, 0.4]
    assert summary.loc[1, ["happy", "sad"]].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert summary.loc[2, ["happy", "sad", "main_emotion"]].tolist() == [0.0, 1.0, "sad"]
    assert summary.loc[1, "mean_happy"] == pytest.approx(0.7)
    long = emotions_over_time(table, labels, persons=[2])
    assert set(long["person"]) == {2} and len(long) == 4
