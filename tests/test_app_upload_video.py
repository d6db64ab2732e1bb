"""The Upload and Video pages, run headless with Streamlit's AppTest (uploads set through the test API)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import fail_analysis_of_frame, two_people_clip
from streamlit.testing.v1 import AppTest

from fer_core.model_card import PROJECT_ROOT

UPLOAD = str(PROJECT_ROOT / "app_pages" / "3_Upload.py")
VIDEO = str(PROJECT_ROOT / "app_pages" / "5_Video.py")


@pytest.fixture
def tiny_model_env(monkeypatch, tiny_model_path):
    monkeypatch.setenv("FER_MODEL", str(tiny_model_path))


def run_page(script: str) -> AppTest:
    at = AppTest.from_file(script, default_timeout=120).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def upload(at: AppTest, name: str, data: bytes, mime: str) -> AppTest:
    at.file_uploader[0].set_value((name, data, mime)).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_upload_page_without_upload(tiny_model_env):
    at = run_page(UPLOAD)
    assert len(at.title) == 1 and len(at.info) == 1  # a prompt, no results yet
    assert not at.get("plotly_chart") and not at.dataframe
    assert [t.label for t in at.sidebar.toggle] == ["Emoji over the faces", "Probability bars on the image",
                                                   "Grad-CAM per face", "Test-time augmentation",
                                                   "Smile view (happy or not)"]
    assert at.file_uploader[0].allowed_type == [".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"]


def test_upload_page_without_model_still_renders(monkeypatch, tmp_path):
    monkeypatch.setenv("FER_MODEL", str(tmp_path / "missing.keras"))
    monkeypatch.setattr("fer_core.app.ui.list_models", lambda: [])
    at = run_page(UPLOAD)
    assert "No model" in at.sidebar.warning[0].value


def test_upload_page_with_a_photo(tiny_model_env, astronaut_path):
    at = upload(run_page(UPLOAD), "astronaut.png", astronaut_path.read_bytes(), "image/png")
    assert len(at.get("plotly_chart")) == 1
    assert at.markdown[0].value.startswith("**Face 1: ")
    assert len(at.dataframe[0].value) == 1
    assert [b.label for b in at.get("download_button")] == ["Annotated image (PNG)", "Results (CSV)", "Results (JSON)"]
    at.sidebar.toggle[0].set_value(True).run()  # emoji on: redraw only, still fine
    assert not at.exception


def test_upload_page_smile_view(tiny_model_env, astronaut_path):
    at = upload(run_page(UPLOAD), "astronaut.png", astronaut_path.read_bytes(), "image/png")
    at.sidebar.toggle(key="smile_view").set_value(True).run()
    assert not at.exception
    label = at.markdown[0].value.split(": ", 1)[1].split("**")[0]
    assert label in ("happy", "not_happy")
    table = at.dataframe[0].value
    assert {"happy", "not_happy"} <= set(table.columns) and "angry" not in table.columns


def test_upload_page_with_a_hostile_file_shows_an_error(tiny_model_env):
    at = upload(run_page(UPLOAD), "evil.png", b"\x89PNG\r\n\x1a\n not really", "image/png")
    assert "evil.png" in at.error[0].value
    assert not at.get("plotly_chart")


def test_upload_page_without_face_offers_whole_image(tiny_model_env):
    blank = cv2.imencode(".png", np.full((64, 64, 3), 200, np.uint8))[1].tobytes()
    at = upload(run_page(UPLOAD), "wall.png", blank, "image/png")
    assert "No face found in wall.png" in at.warning[0].value
    at.button[0].click().run()
    assert not at.exception
    assert "whole image was classified" in at.info[0].value
    assert len(at.get("plotly_chart")) == 1


def test_video_page_without_upload(tiny_model_env):
    at = run_page(VIDEO)
    assert len(at.title) == 1 and len(at.info) == 1  # a prompt, no analysis yet
    assert not at.button and not at.get("plotly_chart")


def test_video_page_analyses_a_clip(tiny_model_env, astronaut_clip):
    at = upload(run_page(VIDEO), "astronaut.mp4", astronaut_clip.read_bytes(), "video/mp4")
    at.button[0].click().run()
    assert not at.exception
    assert at.success[0].value.startswith("10 frames read at 10.0 fps, 2 analysed, 2 face detections")
    assert len(at.get("plotly_chart")) == 3  # share of time, over time, every person's top emotion
    assert at.subheader[0].value == "1 person" and at.selectbox[0].value == "Person 1"
    assert [b.label for b in at.get("download_button")] == ["Results (CSV)", "People (CSV)", "Annotated video (MP4)"]
    at.run()  # a rerun (any widget) keeps showing the stored result
    assert not at.exception and len(at.get("plotly_chart")) == 3 and not at.info
    at.sidebar.slider[0].set_value(3).run()  # another setting: the old result is not shown as this one's
    assert len(at.get("plotly_chart")) == 0 and len(at.info) == 1


def test_video_page_shows_each_person(tiny_model_env, astronaut_path, tmp_path):
    clip = two_people_clip(astronaut_path, tmp_path / "two.mp4")
    at = upload(run_page(VIDEO), "two.mp4", clip.read_bytes(), "video/mp4")
    at.sidebar.slider[0].set_value(2).run()
    at.button[0].click().run()
    assert not at.exception
    assert at.subheader[0].value == "2 people"
    assert [m.value.split("  ")[0] for m in at.markdown if m.value.startswith("**Person")] == ["**Person 1**",
                                                                                              "**Person 2**"]
    assert len(at.get("image")) == 2  # a portrait each
    assert at.selectbox[0].options == ["Everyone (one chart each)", "Person 1", "Person 2"]
    table = at.dataframe[0].value
    assert sorted(table["person"].unique()) == [1, 2] and (table.groupby("frame")["person"].nunique() == 2).all()
    x = table.pivot(index="frame", columns="person", values="x")
    assert (x[1] < x[2]).all() or (x[1] > x[2]).all()  # each keeps their side: one number, one face
    at.selectbox[0].set_value("Person 2").run()
    assert not at.exception and len(at.get("plotly_chart")) == 3


def test_video_page_with_a_broken_clip(tiny_model_env):
    at = upload(run_page(VIDEO), "clip.mp4", b"\x00" * 500, "video/mp4")
    at.button[0].click().run()
    assert not at.exception
    assert "clip.mp4" in at.error[0].value


def test_video_page_shows_what_was_analysed_before_a_bad_frame(tiny_model_env, astronaut_clip, monkeypatch):
    fail_analysis_of_frame(monkeypatch, 3)
    at = upload(run_page(VIDEO), "astronaut.mp4", astronaut_clip.read_bytes(), "video/mp4")
    at.sidebar.slider[0].set_value(2).run()
    at.button[0].click().run()
    assert not at.exception
    assert at.success[0].value.startswith("4 frames read at 10.0 fps, 2 analysed, 2 face detections")
    assert at.warning[0].value.startswith(r"The analysis stopped at frame 4 (t = 0.40 s)\: unexpected ValueError")
    assert len(at.get("plotly_chart")) == 3


def test_upload_page_with_several_files_reports_each_bad_one_and_shows_the_rest(tiny_model_env, astronaut_path,
                                                                             monkeypatch):
    import fer_core.inference.pipeline

    real = fer_core.inference.pipeline.crop_image_faces  # the first step of find_faces, which the page runs

    def fails_on_33_pixels(image, *args, **kwargs):
        if image.shape[:2] == (33, 33):
            raise RuntimeError("boom")
        return real(image, *args, **kwargs)

    monkeypatch.setattr(fer_core.inference.pipeline, "crop_image_faces", fails_on_33_pixels)
    bug = cv2.imencode(".png", np.full((33, 33, 3), 90, np.uint8))[1].tobytes()
    photo = astronaut_path.read_bytes()
    at = run_page(UPLOAD)
    assert at.file_uploader[0].accept_multiple_files
    at.file_uploader[0].set_value([("astronaut.png", photo, "image/png"), ("empty.jpg", b"", "image/jpeg"),
                                   ("bug.png", bug, "image/png"), ("again.png", photo, "image/png")]).run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.caption[-1].value == "4 files: 2 analysed, 2 could not be used."
    assert [s.value for s in at.subheader if s.value != "Results"] == ["astronaut.png", "empty.jpg", "bug.png",
                                                                      "again.png"]
    assert [e.value for e in at.error] == ["Cannot use empty.jpg: the file is empty (0 bytes)",
                                          "Cannot use bug.png: unexpected RuntimeError (logged on the server)"]
    assert len(at.get("plotly_chart")) == 2 and len(at.dataframe) == 2
    assert len(at.get("download_button")) == 6


def test_upload_page_offers_whole_image_per_faceless_file(tiny_model_env):
    walls = [(f"wall{i}.png", cv2.imencode(".png", np.full((64, 64, 3), 100 + i, np.uint8))[1].tobytes(), "image/png")
             for i in (1, 2)]
    at = run_page(UPLOAD)
    at.file_uploader[0].set_value(walls).run()
    assert not at.exception
    assert [w.value.split(".")[0] for w in at.warning] == ["No face found in wall1", "No face found in wall2"]
    at.button[1].click().run()  # only the second file, classified whole
    assert not at.exception
    assert [w.value.split(".")[0] for w in at.warning] == ["No face found in wall1"]
    assert "whole image was classified" in at.info[0].value and len(at.get("plotly_chart")) == 1
