"""Video analysis and the ``predict`` / ``video`` command lines, on files the tests build themselves."""

from __future__ import annotations

import csv
import json

import av
import cv2
import numpy as np
import pytest

from fer_core.__main__ import main
from fer_core.labels import FER_LABELS
from fer_core.upload import analyze_video_upload
from fer_core.video import AnnotatedWriter, VideoError, analyze_video, upright

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
    assert (table["face"] == 1).all()
    assert list(table.columns[-7:]) == list(FER_LABELS)
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


def test_video_upload_returns_the_annotated_mp4_bytes(tiny_recognizer, astronaut_clip):
    result = analyze_video_upload(astronaut_clip.read_bytes(), "astronaut.mp4", tiny_recognizer, every=5)
    assert result.analysis.frames_analyzed == 2 and result.analysis.annotated_path is None
    assert result.annotated_mp4[4:8] == b"ftyp"  # an MP4 file


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
    table, annotated = tmp_path / "faces.csv", tmp_path / "out.mp4"
    code = main(["video", str(astronaut_clip), "--csv", str(table), "--annotate", str(annotated), "--every", "2",
                 "--model", str(tiny_model_path)])
    assert code == 0
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == [0, 2, 4, 6, 8]
    assert count_frames(annotated) == FRAMES
    captured = capsys.readouterr()
    assert "10 frames" in captured.out and "5 analysed" in captured.out
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
    assert [r["path"] for r in records] == [str(astronaut_path), str(blank)]
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
    assert lines[0] == "path,face,x,y,w,h,label,confidence," + ",".join(FER_LABELS)
    assert lines[1].startswith(f"{astronaut_path},1,0,0,512,512,") and len(lines) == 3
