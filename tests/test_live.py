"""The live camera's frame processing (fer_core.live): tracking, smoothing, detect-every-N, errors, queue.

Most tests script the detector and the classifier so that boxes and probabilities are known exactly;
one runs the real detector and the untrained tiny model on the astronaut photo moving across frames.
"""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_core.inference.live import (
    NO_FACE,
    FrameRecord,
    LiveProcessor,
    LiveSession,
    LiveSettings,
)
from fer_core.inference.pipeline import FaceResult
from fer_core.inference.tracking import (
    MAX_MISSED,
    FaceTracker,
    ema_weight,
    iou,
    match_boxes,
)
from fer_core.model_card import ModelCard

FRAME = np.full((480, 640, 3), 90, np.uint8)
DT = 0.1  # seconds between frames: a 10-fps camera


class ScriptedDetector:
    """Returns the boxes of frame ``i`` of a script on its ``i``-th call (the last ones after the end)."""

    name = "haar"  # whose crop margin the card gives

    def __init__(self, script):
        self.script = list(script)
        self.calls = 0

    def detect(self, image):
        boxes = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return list(boxes)


class ScriptedRecognizer:
    """Two labels; each face asked about gets the next row of ``rows`` (cycled); ``fail_on`` call numbers raise."""

    labels = ("happy", "sad")
    card = ModelCard(Path("scripted.keras"), {})

    def __init__(self, rows=((0.8, 0.2),), fail_on=()):
        self.rows = itertools.cycle(rows)
        self.fail_on = set(fail_on)
        self.calls = 0

    def predict_proba(self, faces, tta=True):
        self.calls += 1
        if self.calls in self.fail_on:
            raise RuntimeError("scripted failure")
        return np.array([next(self.rows) for _ in faces], np.float32)


def run_frames(processor: LiveProcessor, count: int) -> list[np.ndarray]:
    return [processor.process(FRAME, now=i * DT) for i in range(count)]


def drained(processor: LiveProcessor) -> list[FrameRecord]:
    session = LiveSession(processor.recognizer.labels)
    session.drain(processor.records)
    return list(session.records)


def moving_boxes(count: int, step: int = 15, start=(100, 100), side: int = 120):
    return [(start[0] + step * i, start[1], side, side) for i in range(count)]


# --------------------------------------------------------------------------- building blocks


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_match_boxes_pairs_best_overlaps_once_each():
    tracked = [(0, 0, 100, 100), (300, 0, 100, 100)]
    detected = [(310, 5, 100, 100), (600, 0, 50, 50), (10, 0, 100, 100)]
    assert sorted(match_boxes(tracked, detected)) == [(0, 2), (1, 0)]


def test_ema_weight_follows_the_time_constant():
    assert ema_weight(0.1, 0.0) == 1.0  # no smoothing: the new value replaces the old
    assert ema_weight(0.5, 0.5) == pytest.approx(1 - 1 / math.e)
    assert ema_weight(0.1, 1.0) < ema_weight(0.1, 0.2)


def test_tracker_keeps_ids_while_faces_move_and_numbers_a_newcomer():
    tracker = FaceTracker()
    first = moving_boxes(10)
    ids = []
    for i, box in enumerate(first):
        boxes = [box] + ([(400, 300, 80, 80)] if i >= 5 else [])
        ids.append([t.id for t in tracker.update(boxes)])
    assert ids == [[1]] * 5 + [[1, 2]] * 5
    assert tracker.tracks[0].box == first[-1]


def test_tracker_holds_a_missed_face_for_a_while_then_drops_it():
    tracker = FaceTracker()
    tracker.update([(100, 100, 100, 100)])
    for _ in range(MAX_MISSED):
        tracker.update([])
        assert [t.id for t in tracker.tracks] == [1] and tracker.seen() == []
    tracker.update([])
    assert tracker.tracks == []
    assert [t.id for t in tracker.update([(100, 100, 100, 100)])] == [2]  # a new face, a new number


# --------------------------------------------------------------------------- the processor


def test_processor_keeps_a_moving_faces_number_and_box():
    boxes = moving_boxes(8)
    processor = LiveProcessor(ScriptedRecognizer(), ScriptedDetector([[b] for b in boxes]),
                              LiveSettings(detect_every=1))
    run_frames(processor, len(boxes))
    records = drained(processor)
    assert [[f.index + 1 for f in r.faces] for r in records] == [[1]] * len(boxes)
    assert [r.faces[0].box for r in records] == boxes


def test_smoothing_keeps_a_flickering_label_steady():
    # Raw results alternate between happy (0.7) and sad (0.6): on average the face is happy.
    rows = ((0.7, 0.3), (0.4, 0.6))
    labels = {}
    for smoothing_s in (0.0, 1.0):
        processor = LiveProcessor(ScriptedRecognizer(rows), ScriptedDetector([[(200, 100, 150, 150)]]),
                                  LiveSettings(smoothing_s=smoothing_s, detect_every=1))
        run_frames(processor, 20)
        labels[smoothing_s] = [r.faces[0].label for r in drained(processor)]
    assert labels[0.0] == ["happy", "sad"] * 10  # unsmoothed: the label flips every frame
    assert labels[1.0] == ["happy"] * 20


def test_smoothing_follows_a_lasting_change():
    processor = LiveProcessor(ScriptedRecognizer([(0.9, 0.1)] * 10 + [(0.1, 0.9)] * 30),
                              ScriptedDetector([[(200, 100, 150, 150)]]), LiveSettings(smoothing_s=0.5, detect_every=1))
    run_frames(processor, 40)
    labels = [r.faces[0].label for r in drained(processor)]
    assert labels[:11] == ["happy"] * 11  # one sad frame does not flip it
    assert labels[-20:] == ["sad"] * 20  # a lasting change shows within about a time constant


def test_detect_every_n_reuses_the_boxes_in_between():
    boxes = moving_boxes(7)
    detector = ScriptedDetector([[b] for b in boxes])
    recognizer = ScriptedRecognizer()
    processor = LiveProcessor(recognizer, detector, LiveSettings(detect_every=3))
    run_frames(processor, 7)
    records = drained(processor)
    assert detector.calls == 3  # frames 0, 3 and 6
    assert recognizer.calls == 7  # every frame is still classified
    assert [r.faces[0].box for r in records] == [boxes[0]] * 3 + [boxes[1]] * 3 + [boxes[2]]


def test_an_error_returns_the_frame_unprocessed_counts_it_and_the_stream_goes_on():
    processor = LiveProcessor(ScriptedRecognizer(fail_on={2}), ScriptedDetector([[(200, 100, 150, 150)]]),
                              LiveSettings(detect_every=1))
    frames = run_frames(processor, 3)
    assert frames[1] is FRAME
    assert not np.array_equal(frames[0], FRAME) and not np.array_equal(frames[2], FRAME)  # boxes drawn
    assert (processor.errors, processor.frames) == (1, 3)
    assert processor.last_error == "RuntimeError: scripted failure"
    records = drained(processor)
    assert [r.error for r in records] == [None, "RuntimeError: scripted failure", None]
    assert records[1].faces == ()


class NewFailureEachCall(ScriptedRecognizer):
    """Fails on every call with a message of its own (a new error each frame)."""

    def predict_proba(self, faces, tta=True):
        self.calls += 1
        raise RuntimeError(f"failure {self.calls}")


def live_error_logs(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fer_core.inference.live.processor"]


def test_a_repeated_frame_error_is_logged_with_its_traceback_at_most_every_interval(caplog):
    processor = LiveProcessor(ScriptedRecognizer(fail_on=range(1, 1000)), ScriptedDetector([[(200, 100, 150, 150)]]),
                              LiveSettings(detect_every=1))
    with caplog.at_level(logging.ERROR, logger="fer_core.inference.live.processor"):
        run_frames(processor, 250)  # 25 s of a 10-fps camera, every frame failing the same way
    logged = live_error_logs(caplog)
    assert [r.args[0] for r in logged] == [0, 100, 200]  # frame numbers: at 0, 10 and 20 s
    assert [r.args[1] for r in logged] == [1, 100, 100]  # errors since the previous report
    assert all(r.exc_info[0] is RuntimeError for r in logged)
    assert "Traceback" in caplog.text and "scripted failure" in caplog.text
    assert processor.errors == 250


def test_a_new_frame_error_is_logged_at_once(caplog):
    processor = LiveProcessor(NewFailureEachCall(), ScriptedDetector([[(200, 100, 150, 150)]]),
                              LiveSettings(detect_every=1))
    with caplog.at_level(logging.ERROR, logger="fer_core.inference.live.processor"):
        run_frames(processor, 5)
    assert [r.args[-1] for r in live_error_logs(caplog)] == [f"RuntimeError: failure {i}" for i in range(1, 6)]


def test_each_frame_puts_a_record_into_the_queue():
    processor = LiveProcessor(ScriptedRecognizer(), ScriptedDetector([[(200, 100, 150, 150)]]))
    run_frames(processor, 5)
    records = drained(processor)
    assert [r.frame for r in records] == [0, 1, 2, 3, 4]
    assert [r.time_s for r in records] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert records[-1].fps == processor.fps == pytest.approx(10.0)
    assert all(r.latency_ms > 0 and len(r.faces) == 1 for r in records)
    assert records[0].faces[0].probabilities == pytest.approx({"happy": 0.8, "sad": 0.2})


def test_a_full_queue_drops_the_oldest_records():
    processor = LiveProcessor(ScriptedRecognizer(), ScriptedDetector([[]]), queue_size=3)
    run_frames(processor, 5)
    assert [r.frame for r in drained(processor)] == [2, 3, 4]


def test_reset_starts_a_new_session():
    processor = LiveProcessor(ScriptedRecognizer(), ScriptedDetector([[(200, 100, 150, 150)]]))
    run_frames(processor, 3)
    processor.reset()
    assert (processor.frames, processor.errors, processor.fps, processor.records.qsize()) == (0, 0, 0.0, 0)
    processor.process(FRAME, now=100.0)
    record = drained(processor)[0]
    assert (record.frame, record.time_s, record.faces[0].index) == (0, 0.0, 0)


def test_real_detector_and_model_follow_the_astronaut_across_frames(astronaut_path, tiny_recognizer):
    photo = cv2.resize(cv2.imread(str(astronaut_path)), (400, 400))
    processor = LiveProcessor(tiny_recognizer, settings=LiveSettings(detect_every=2, emoji=True, bars=True))
    for i in range(6):
        frame = np.full((480, 640, 3), 90, np.uint8)
        # 20 px a frame: between two detections the default detector's box (YuNet's, ~70 px for this face,
        # tighter than Haar's) must still overlap the track's by the tracker's minimum IoU
        frame[40:440, 20 + 20 * i : 420 + 20 * i] = photo
        assert not np.array_equal(processor.process(frame, now=i * DT), frame)
    records = drained(processor)
    assert [[f.index + 1 for f in r.faces] for r in records] == [[1]] * 6
    xs = [r.faces[0].box[0] for r in records]
    assert xs[4] - xs[0] == pytest.approx(80, abs=8)  # detected on frames 0, 2, 4 as the face moved
    assert sum(records[0].faces[0].probabilities.values()) == pytest.approx(1.0, abs=1e-4)


# --------------------------------------------------------------------------- the page's session


def face(index: int, side: int, happy: float) -> FaceResult:
    return FaceResult(index, (10, 10, side, side), {"happy": happy, "sad": 1 - happy})


def session_of(records) -> LiveSession:
    session = LiveSession(("happy", "sad"))
    session.records.extend(records)
    return session


def test_session_shares_time_by_the_main_faces_label():
    records = [FrameRecord(0, 0.0, 0, 1, (face(0, 100, 0.9), face(1, 50, 0.1))),  # main face: the larger, happy
               FrameRecord(1, 1.0, 0, 1, (face(0, 100, 0.2),)),
               FrameRecord(2, 1.5, 0, 1, ()),
               FrameRecord(3, 5.5, 0, 1, (face(0, 100, 0.9),))]  # after a 4-s stall (counted as 1 s)
    shares = session_of(records).emotion_shares().set_index("emotion")
    # 1 s + the last frame's median interval (1 s) happy, 0.5 s sad, 1 s without a face
    assert shares["seconds"].to_dict() == pytest.approx({"happy": 2.0, "sad": 0.5, NO_FACE: 1.0})
    assert shares["share"].sum() == pytest.approx(1.0)


def test_session_chart_table_keeps_the_last_seconds_of_the_main_face():
    records = [FrameRecord(i, i * 1.0, 0, 1, (face(0, 100, 0.9), face(1, 50, 0.1))) for i in range(30)]
    table = session_of(records).main_face_probabilities(last_s=10)
    assert table["time_s"].min() == 19.0 and len(table) == 11 * 2
    assert set(table.loc[table["emotion"] == "happy", "probability"]) == {0.9}


def test_session_latency_is_the_median_of_the_last_frames():
    assert session_of([]).recent_latency_ms() is None
    records = [FrameRecord(i, i * 0.1, 10.0, latency, ()) for i, latency in enumerate([500, 10, 30, 20])]
    assert session_of(records).recent_latency_ms(frames=3) == 20


def test_session_csv_has_a_row_per_face_per_frame():
    import io

    import pandas as pd

    records = [FrameRecord(0, 0.0, 10.0, 5.0, (face(0, 100, 0.9), face(1, 50, 0.1))),
               FrameRecord(1, 0.1, 10.0, 5.0, (), error="RuntimeError: boom")]
    table = pd.read_csv(io.BytesIO(session_of(records).to_csv()), keep_default_na=False, dtype=str)
    assert list(table.columns) == ["frame", "time_s", "fps", "latency_ms", "error", "face", "x", "y", "w", "h",
                                   "label", "confidence", "happy", "sad"]
    assert table["face"].tolist() == ["1", "2", ""]  # whole numbers, also beside a frame without a face
    assert table["label"].tolist() == ["happy", "sad", ""]
    assert table["error"].tolist() == ["", "", "RuntimeError: boom"]


def test_processor_with_the_smile_view_labels_frames_happy_or_not(tiny_recognizer):
    view = tiny_recognizer.for_scheme("smile")
    processor = LiveProcessor(view, ScriptedDetector([[(200, 100, 150, 150)]]), LiveSettings(detect_every=1))
    run_frames(processor, 3)
    records = drained(processor)
    faces = [face for record in records for face in record.faces]
    assert faces and {face.label for face in faces} <= {"happy", "not_happy"}
    assert all(set(face.probabilities) == {"not_happy", "happy"} for face in faces)
