"""The Live camera page with Streamlit's AppTest, the camera component replaced by a stand-in.

streamlit-webrtc needs a running Streamlit server (AppTest has none), so ``webrtc_streamer`` is
swapped for a function returning a stopped or playing context. The real component, with frames
flowing, is tested in a browser by tests/test_browser.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import streamlit_webrtc
from streamlit.testing.v1 import AppTest

from fer_core.app.ice import ICE_ENV
from fer_core.inference.live import FrameRecord, LiveSession
from fer_core.inference.pipeline import FaceResult
from fer_core.model_card import PROJECT_ROOT

LIVE = str(PROJECT_ROOT / "app_pages" / "4_Live_camera.py")


class StoppedCamera:
    """Stands in for ``webrtc_streamer``: records its arguments, reports a stream that is not playing."""

    def __init__(self):
        self.calls = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return SimpleNamespace(state=SimpleNamespace(playing=False, signalling=False))


@pytest.fixture
def camera(monkeypatch, tiny_model_path) -> StoppedCamera:
    monkeypatch.setenv("FER_MODEL", str(tiny_model_path))
    monkeypatch.delenv(ICE_ENV, raising=False)
    fake = StoppedCamera()
    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", fake)
    return fake


def run_page(at: AppTest | None = None) -> AppTest:
    at = (AppTest.from_file(LIVE, default_timeout=120) if at is None else at).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_live_page_before_start(camera):
    at = run_page()
    assert len(at.title) == 1 and len(at.info) == 1  # a prompt to start, no session summary yet
    assert not at.subheader
    assert [s.label for s in at.sidebar.slider] == ["Label smoothing (seconds)", "Detect faces every Nth frame"]
    assert [t.label for t in at.sidebar.toggle] == ["Emoji over the faces", "Probability bars on the image",
                                                   "Test-time augmentation",
                                                   "Smile view (happy or not)"]
    (call,) = camera.calls
    assert call["rtc_configuration"] == {"iceServers": []}  # nothing external contacted by default
    assert callable(call["video_frame_callback"])


def test_live_page_controls_reach_the_processor(camera):
    at = run_page()
    at.sidebar.slider[0].set_value(1.5)
    at.sidebar.slider[1].set_value(4)
    at.sidebar.toggle[0].set_value(True)
    run_page(at)
    settings = at.session_state["live_processor"].settings
    assert (settings.smoothing_s, settings.detect_every, settings.emoji, settings.bars, settings.tta) == \
        (1.5, 4, True, False, False)


def test_live_page_uses_the_configured_ice_servers(camera, monkeypatch):
    monkeypatch.setenv(ICE_ENV, '[{"urls": "stun:stun.example.org:3478"}]')
    run_page()
    assert camera.calls[0]["rtc_configuration"] == {"iceServers": [{"urls": ["stun:stun.example.org:3478"]}]}


def test_live_page_takes_ice_servers_from_the_secrets_first(camera, monkeypatch):
    monkeypatch.setenv(ICE_ENV, '[{"urls": "stun:stun.example.org:3478"}]')
    at = AppTest.from_file(LIVE, default_timeout=120)
    at.secrets["webrtc"] = {"ice_servers": [{"urls": "turn:turn.example.org", "username": "u", "credential": "p"}]}
    run_page(at)
    assert camera.calls[0]["rtc_configuration"] == {
        "iceServers": [{"urls": ["turn:turn.example.org"], "username": "u", "credential": "p"}]}


def test_live_page_explains_bad_ice_servers(camera, monkeypatch):
    monkeypatch.setenv(ICE_ENV, "[{not json")
    at = run_page()
    assert "ICE server settings are wrong" in at.error[0].value
    assert camera.calls == []


def test_live_page_summarises_a_finished_session(camera):
    at = run_page()
    session = LiveSession(at.session_state["live_processor"].recognizer.labels)
    probabilities = dict.fromkeys(session.labels, 0.05) | {"happy": 0.7}
    session.records.extend(FrameRecord(i, i * 0.1, 10.0, 12.0, (FaceResult(0, (10, 10, 80, 80), probabilities),))
                           for i in range(20))
    at.session_state["live_session"] = session
    run_page(at)
    assert len(at.subheader) == 1  # the summary of the session just stopped
    assert at.markdown[0].value.startswith("20 frames over 2.0 s (10.0 fps)")
    assert len(at.get("plotly_chart")) == 1
    (download,) = at.get("download_button")
    assert download.proto.label == "Per-frame results (CSV)"


def test_live_page_summary_shows_the_frame_errors(camera):
    at = run_page()
    session = LiveSession(at.session_state["live_processor"].recognizer.labels)
    session.records.extend([FrameRecord(0, 0.0, 10.0, 12.0),
                            FrameRecord(1, 0.1, 10.0, 3.0, error="RuntimeError: bad frame"),
                            FrameRecord(2, 0.2, 10.0, 12.0)])
    at.session_state["live_session"] = session
    run_page(at)
    assert at.markdown[0].value.startswith("3 frames over")
    assert "1 frame(s) could not be processed" in at.error[0].value
    assert "RuntimeError: bad frame" in at.error[0].value
