"""The face tracker shared by the live camera and the video analysis (fer_core.inference.tracking):
velocity prediction through an occlusion, jumps, the clock, and a synthetic two-person crossing
analysed end to end."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from fer_core.inference.tracking import (
    LIVE_TRACKER,
    VIDEO_TRACKER,
    FaceTracker,
    TrackerSettings,
    jump,
    match_boxes,
)

ROOT = Path(__file__).resolve().parent.parent
SIDE = 100


def crossing(steps: int = 13, speed: int = 40, hidden: range = range(5, 8)) -> list[list[tuple]]:
    """Two faces walking towards each other at one height, person 0 (from the left) in front; person
    1 is hidden by it in the frames of ``hidden``. Boxes in each frame: person 0 first."""
    frames = []
    for t in range(steps):
        left = (40 + speed * t, 100, SIDE, SIDE)
        right = (520 - speed * t, 110, SIDE, SIDE)
        frames.append([left] if t in hidden else [left, right])
    return frames


def ids_of(frames: list[list[tuple]], settings: TrackerSettings, dt: float | None = 0.2) -> list[list[int]]:
    tracker = FaceTracker(settings)
    return [[t.id for t in tracker.update(boxes, at=None if dt is None else i * dt)] for i, boxes in enumerate(frames)]


def test_prediction_keeps_both_ids_through_a_crossing_where_overlap_alone_swaps_or_loses_them():
    frames = crossing()
    video = ids_of(frames, VIDEO_TRACKER)
    assert all(ids[0] == 1 for ids in video) and all(ids[1] == 2 for ids in video if len(ids) == 2)
    live = ids_of(frames, LIVE_TRACKER, dt=None)
    assert {ids[1] for ids in live if len(ids) == 2} != {2}  # the hidden face came back under another number


def test_a_jump_continues_a_face_the_detector_missed_while_it_moved_on():
    frames = [[(100, 100, SIDE, SIDE)], [], [(260, 100, SIDE, SIDE)]]  # 1.6 widths in two steps, no overlap
    assert ids_of(frames, TrackerSettings(max_gap=1.0)) == [[1], [], [2]]
    assert ids_of(frames, TrackerSettings(max_gap=1.0, max_jump=2.0)) == [[1], [], [1]]
    assert jump((0, 0, 100, 100), (0, 0, 30, 30)) == float("inf")  # another size: not the same face


def test_overlaps_are_matched_before_jumps():
    tracked = [(0, 0, 100, 100), (300, 0, 100, 100)]
    detected = [(150, 0, 100, 100), (20, 0, 100, 100)]  # the first is a jump for both tracks
    assert sorted(match_boxes(tracked, detected, max_jump=2.0)) == [(0, 1), (1, 0)]


def test_the_prediction_stops_after_predict_for():
    tracker = FaceTracker(TrackerSettings(max_gap=10.0, predict=True, predict_for=1.0))
    tracker.update([(0, 0, SIDE, SIDE)], at=0.0)
    tracker.update([(50, 0, SIDE, SIDE)], at=1.0)  # 50 px a second to the right
    assert tracker.tracks[0].predicted(3.0, 1.0) == (100, 0, SIDE, SIDE)
    assert tracker.tracks[0].predicted(3.0) == (150, 0, SIDE, SIDE)


def test_a_face_unseen_for_max_gap_seconds_is_dropped():
    tracker = FaceTracker(TrackerSettings(max_gap=2.0))
    tracker.update([(0, 0, SIDE, SIDE)], at=0.0)
    tracker.update([], at=1.8)
    assert [t.id for t in tracker.tracks] == [1] and tracker.tracks[0].missed == pytest.approx(1.8)
    assert [t.id for t in tracker.update([(0, 0, SIDE, SIDE)], at=2.0)] == [1]  # 2 s apart: still the same
    tracker.update([], at=4.0)
    assert tracker.tracks == []


@pytest.mark.parametrize("seed", range(5))
def test_leaving_out_the_updates_without_a_face_changes_no_number(seed):
    """What lets batch replay a clip's tracker from its rows, where frames without a face have none."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(60):
        count = rng.choice([0, 0, 1, 2, 3])
        frames.append([tuple(int(v) for v in (*rng.integers(0, 400, 2), 80, 80)) for _ in range(count)])
    times = [round(0.2 * i, 3) for i in range(len(frames))]
    every, some = FaceTracker(VIDEO_TRACKER), FaceTracker(VIDEO_TRACKER)
    all_ids = [[t.id for t in every.update(boxes, at=at)] for boxes, at in zip(frames, times)]
    some_ids = [[t.id for t in some.update(boxes, at=at)] if boxes else [] for boxes, at in zip(frames, times)]
    assert all_ids == some_ids


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def track_study(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import track_study

    yield track_study
    sys.modules.pop("track_study", None)


def write_mp4(frames: list[np.ndarray], path: Path, fps: int) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.codec_context.qscale = 2  # little loss: the faces stay as the detector saw them pasted
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode(None))
    return path


def test_two_people_crossing_keep_their_numbers_in_the_video_analysis(track_study, tiny_recognizer, tmp_path):
    """A clip of two FER2013 faces passing each other (the bundled sample, the default detector),
    through analyze_video: each person carries one number, never the other's."""
    from fer_core.inference.detect import detector_for
    from fer_core.inference.video import analyze_video
    from fer_core.settings import default_detector

    rng = np.random.default_rng(3)
    detector = detector_for(default_detector("video"), "photo")
    faces = track_study.detectable_faces(track_study.face_files(ROOT / "data" / "sample"), 112, detector, 2, rng)
    clip = track_study.make_clip("crossing", faces, 0.2, rng)
    path = write_mp4(clip.frames, tmp_path / "crossing.mp4", fps=5)
    analysis = analyze_video(path, tiny_recognizer, every=2, detector=detector, tta=False)
    frames = sorted({row["frame"] for row in analysis.rows})
    boxes = {f: [(r["x"], r["y"], r["w"], r["h"]) for r in analysis.rows if r["frame"] == f] for f in frames}
    people = {f: [r["person"] for r in analysis.rows if r["frame"] == f] for f in frames}
    analysed = range(0, len(clip.frames), 2)
    found = track_study.person_ids([clip.truth[i] for i in analysed], [boxes.get(i, []) for i in analysed],
                                   [people.get(i, []) for i in analysed])
    score = track_study.score([clip.truth[i] for i in analysed], found)
    hidden = sum(truth[0] is None for truth in clip.truth)  # the face pasted first is the one covered
    assert hidden >= 3, "the clip has no crossing where one face hides the other"
    assert (score.switches, score.fragments, score.shared_ids) == (0, 2, 0), score
    assert score.detected >= 0.8 * score.in_view
    assert sorted(analysis.portraits) == sorted({p for ps in people.values() for p in ps})


def test_track_study_counts_switches_fragments_and_shared_ids(track_study):
    box = (0, 0, 10, 10)
    truth = [[box, box]] * 4  # two people in view in four frames
    found = [[1, 2], [1, 2], [2, 1], [None, 1]]  # they swap numbers at the third frame; one is missed in the last
    score = track_study.score(truth, found)
    assert (score.switches, score.fragments, score.shared_ids) == (2, 4, 2)
    assert (score.in_view, score.detected, score.followed) == (8, 7, 4)  # each on their main id in 2 frames
