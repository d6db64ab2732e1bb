"""Live camera page: the faces of the webcam stream, classified as they move (streamlit-webrtc).

The frame callback runs on streamlit-webrtc's worker thread and only hands the frame to fer_core's
LiveProcessor. While the stream plays, this script polls the processor's queue in a loop to show the
frame rate and a live chart; after STOP it summarises the session and offers the per-frame CSV.
"""

from __future__ import annotations

import time

import av
import plotly.express as px
import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from fer_core.app.charts import emotion_bars, emotion_colors
from fer_core.app.ice import IceConfigError, configured_ice_servers, rtc_configuration
from fer_core.app.ui import (
    detector_picker,
    model_picker,
    recognizer_or_error,
    smile_view_toggle,
    tta_toggle,
    webrtc_secrets,
)
from fer_core.inference.live import NO_FACE, LiveProcessor, LiveSession, LiveSettings
from fer_core.model_card import fast_model_path
from fer_core.settings import AnalysisSettings

CHART_SECONDS = 20
REFRESH_S = 0.5
NO_FACE_COLOR = "#dee2e6"


def ice_servers_or_stop() -> list[dict]:
    try:
        return configured_ice_servers(webrtc_secrets())
    except IceConfigError as exc:
        st.error(f"The ICE server settings are wrong: {exc}")
        st.stop()


def session_processor(recognizer) -> LiveProcessor:
    """One processor per browser session and model: it holds the face tracks between frames.

    A new model (other labels, maybe) starts a new session, even in the middle of a stream."""
    processor = st.session_state.get("live_processor")
    if processor is None or processor.recognizer is not recognizer:
        processor = st.session_state["live_processor"] = LiveProcessor(recognizer)
        st.session_state.pop("live_session", None)
        st.session_state["live_playing"] = False
    return processor


def frame_callback(processor: LiveProcessor):
    def callback(frame: av.VideoFrame) -> av.VideoFrame:
        # streamlit-webrtc's worker thread: no Streamlit call here (process() never raises).
        return av.VideoFrame.from_ndarray(processor.process(frame.to_ndarray(format="bgr24")), format="bgr24")

    return callback


def live_chart(session: LiveSession):
    table = session.main_face_probabilities(last_s=CHART_SECONDS)
    chart = px.line(table, x="time_s", y="probability", color="emotion", range_y=[0, 1],
                    color_discrete_map=emotion_colors(session.labels, {NO_FACE: NO_FACE_COLOR}),
                    category_orders={"emotion": list(session.labels)}, labels={"time_s": "time (s)"},
                    title=f"Main face (largest), last {CHART_SECONDS} s")
    chart.update_layout(height=340, margin=dict(t=50, b=0))
    return chart


def show_metrics(processor: LiveProcessor, session: LiveSession) -> None:
    latest, latency_ms = session.latest, session.recent_latency_ms()
    fps, latency, faces = st.columns(3)
    frames, errors, _ = st.columns(3)
    fps.metric("Processing fps", f"{processor.fps:.1f}")
    latency.metric("ms per frame", f"{latency_ms:.0f}" if latency_ms is not None else "–",
                   help="Median over the last 30 frames")
    faces.metric("Faces", len(latest.faces) if latest else 0)
    frames.metric("Frames processed", processor.frames)
    errors.metric("Errors", processor.errors)
    if processor.errors:
        show_frame_errors(processor.errors, processor.last_error)


def show_frame_errors(count: int, last_error: str | None) -> None:
    st.error(f"{count} frame(s) could not be processed and were shown as they came. Last error: {last_error} "
             "(the server's log has the traceback).")


def follow_stream(ctx, processor: LiveProcessor, session: LiveSession, area) -> None:
    """Poll the processor's queue until STOP (which reruns the script and so ends this loop)."""
    box = area.container()
    metrics, chart = box.empty(), box.empty()
    tick = 0
    while ctx.state.playing:
        session.drain(processor.records)
        with metrics.container():
            show_metrics(processor, session)
        # A new key each time: the same figure twice in one run would be a duplicate element.
        chart.plotly_chart(live_chart(session), width="stretch", key=f"live_chart_{tick}")
        tick += 1
        time.sleep(REFRESH_S)


def show_summary(session: LiveSession) -> None:
    records = list(session.records)
    if not records:
        st.info("The last session ended before a frame arrived. Press START again.")
        return
    duration = session.durations().sum()
    st.subheader("Last session")
    errors = [r.error for r in records if r.error is not None]
    if errors:
        show_frame_errors(len(errors), errors[-1])
    st.markdown(f"{len(records)} frames over {duration:.1f} s"
                + (f" ({len(records) / duration:.1f} fps)" if duration > 0 else "")
                + ". Share of the time per top emotion of the main face (the largest):")
    shares = session.emotion_shares()
    st.plotly_chart(emotion_bars(dict(zip(shares["emotion"], shares["share"])), "share", height=300,
                                 colors={NO_FACE: NO_FACE_COLOR}), width="stretch")
    st.download_button("Per-frame results (CSV)", session.to_csv(), file_name="live_session.csv", mime="text/csv",
                       on_click="ignore", help="One row per face per frame, with the smoothed probabilities drawn.")


def live_camera_page() -> None:
    """Classify the faces of the webcam stream live, then summarise the session."""
    st.title("Live camera")
    st.caption("Press START and allow the camera. Every face gets a number it keeps while it moves, and its label "
               "is averaged over time so that it does not flicker. Nothing is recorded or stored. Off localhost the "
               "browser only opens the camera over HTTPS.")

    model_path = model_picker("live_model", default=fast_model_path())
    smoothing = st.sidebar.slider(
        "Label smoothing (seconds)", 0.0, 2.0, 0.5, 0.1,
        help="Time constant of the moving average of each face's probabilities: larger is steadier but slower to "
             "follow a change of expression. 0 shows each frame's own result.")
    detect_every = st.sidebar.slider(
        "Detect faces every Nth frame", 1, 10, 2,
        help="In between, the last boxes are reused and only re-classified. Detection is the slowest step, so a "
             "larger N keeps the frame rate up on a small CPU; boxes then lag fast moves a little.")
    emoji = st.sidebar.toggle("Emoji over the faces", value=False)
    bars = st.sidebar.toggle("Probability bars on the image", value=False)
    analysis = AnalysisSettings(model=str(model_path), tta=tta_toggle(model_path, value=False),
                                scheme=smile_view_toggle(), detector=detector_picker("live"))

    recognizer = recognizer_or_error(model_path, analysis.scheme)
    if recognizer is None:
        st.stop()
    processor = session_processor(recognizer)
    processor.settings = LiveSettings(analysis, smoothing_s=smoothing, detect_every=detect_every, emoji=emoji,
                                      bars=bars)

    camera, live = st.columns([3, 2])
    with camera:
        ctx = webrtc_streamer(
            key="live-camera",
            mode=WebRtcMode.SENDRECV,
            rtc_configuration=rtc_configuration(ice_servers_or_stop()),
            media_stream_constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False},
            video_frame_callback=frame_callback(processor),
            async_processing=True,
        )

    # Two slots, and each run leaves the one it does not use empty: Streamlit keeps a run's stale
    # elements until the run ends, and a streaming run ends only at STOP, so a summary shown in the
    # streaming view's place would stay beside it (its CSV button too) for the whole stream.
    stream_area, summary_area = live.empty(), live.empty()
    if ctx.state.playing:
        if not st.session_state.get("live_playing"):  # a new session starts
            processor.reset()
            st.session_state["live_session"] = LiveSession(recognizer.labels)
            st.session_state["live_playing"] = True
        follow_stream(ctx, processor, st.session_state["live_session"], stream_area)
    else:
        st.session_state["live_playing"] = False
        session = st.session_state.get("live_session")
        if session is None:
            summary_area.info("Press START to classify the faces in your camera's stream.")
        else:
            session.drain(processor.records)
            with summary_area.container():
                show_summary(session)


live_camera_page()
