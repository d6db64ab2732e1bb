"""Video page: emotions over time in a short clip, with an annotated copy to download."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import plotly.express as px
import streamlit as st

from fer_core.app.charts import emotion_colors
from fer_core.app.limits import ANALYSIS_SLOTS, SERVER_BUDGETS, ServerBusy
from fer_core.app.ui import detector_picker, model_picker, plain, recognizer_or_error, tta_toggle
from fer_core.app.upload import VideoRun, VideoSettings, VideoUploadAnalysis, analyze_video_upload
from fer_core.inference.video import VideoError

if TYPE_CHECKING:
    from pathlib import Path

    from streamlit.runtime.uploaded_file_manager import UploadedFile

    from fer_core.inference.recognizer import EmotionRecognizer

VIDEO_TYPES = ["mp4", "mov", "m4v", "webm", "mkv", "avi"]


def sidebar_settings(model_path: Path | None) -> VideoSettings:
    every = st.sidebar.slider("Analyse every Nth frame", 1, 30, 5, help="1 analyses every frame (slowest).")
    max_seconds = st.sidebar.number_input("Analyse at most (seconds of the clip)", 1, 600, 60)
    tta = tta_toggle(model_path, value=True)
    annotate_video = st.sidebar.toggle("Write an annotated video", value=True)
    emoji = st.sidebar.toggle("Emoji over the faces", value=False, disabled=not annotate_video)
    return VideoSettings(every, float(max_seconds), tta, annotate_video, emoji, detector_picker("video"))


def main_face_chart(table: pd.DataFrame, labels: tuple[str, ...]):
    main = table[table["face"] == 1].melt(id_vars="time_s", value_vars=list(labels),
                                           var_name="emotion", value_name="probability")
    chart = px.line(main, x="time_s", y="probability", color="emotion", range_y=[0, 1],
                    color_discrete_map=emotion_colors(labels),
                    labels={"time_s": "time (s)"}, title="Main face (largest): probability of each emotion")
    chart.update_layout(height=380, margin=dict(t=50, b=0))
    return chart


def all_faces_chart(table: pd.DataFrame, labels: tuple[str, ...]):
    faces = table.assign(face=table["face"].astype(str))
    chart = px.scatter(faces, x="time_s", y="label", color="face", size="confidence", size_max=12,
                       category_orders={"label": list(labels)}, labels={"time_s": "time (s)", "label": "top emotion"},
                       title="Every face: top emotion per analysed frame")
    chart.update_layout(height=380, margin=dict(t=50, b=0))
    return chart


def run_analysis(upload: UploadedFile, recognizer: EmotionRecognizer,
                 settings: VideoSettings) -> VideoUploadAnalysis | None:
    bar = st.progress(0.0, text="Reading the clip…")

    def progress(done: int, total: int) -> None:
        fraction = min(1.0, done / total) if total else 0.0
        bar.progress(fraction, text=f"Analysed up to frame {done}" + (f" of {total}" if total else ""))

    try:
        with ANALYSIS_SLOTS.slot():
            result = analyze_video_upload(upload.getvalue(), upload.name, recognizer, every=settings.every,
                                          tta=settings.tta, max_seconds=settings.max_seconds,
                                          annotate_video=settings.annotate_video, emoji=settings.emoji,
                                          progress=progress, detector=settings.detector, budgets=SERVER_BUDGETS)
    except (VideoError, ServerBusy) as exc:
        bar.empty()
        st.error(f"Cannot analyse this file. {plain(exc)}")
        return None
    bar.empty()
    return result


def show_result(result: VideoUploadAnalysis, stem: str) -> None:
    analysis = result.analysis
    table = analysis.to_frame()
    st.success(f"{analysis.frames_read} frames read at {analysis.fps:.1f} fps, {analysis.frames_analyzed} analysed, "
               f"{len(table)} face detections.")
    if analysis.cut_short:
        st.warning(f"The analysis {plain(analysis.cut_short)}: a budget of this server. The results below cover "
                   "the frames before it.")
    if analysis.error:
        st.warning(f"The analysis {plain(analysis.error)}. The results below cover the frames before it.")
    if table.empty:
        st.warning("No face was found in the analysed frames.")
    else:
        st.plotly_chart(main_face_chart(table, analysis.labels), width="stretch")
        st.plotly_chart(all_faces_chart(table, analysis.labels), width="stretch")
        st.dataframe(table, hide_index=True, width="stretch")
    downloads = st.columns(2)
    downloads[0].download_button("Results (CSV)", table.to_csv(index=False).encode(), file_name=f"{stem}_faces.csv",
                                 mime="text/csv", on_click="ignore")
    if result.annotated_mp4:
        downloads[1].download_button("Annotated video (MP4)", result.annotated_mp4, file_name=f"{stem}_annotated.mp4",
                                     mime="video/mp4", on_click="ignore")
        st.video(result.annotated_mp4)


def video_page() -> None:
    """Emotions over time in an uploaded clip, with an annotated copy to download."""
    st.title("Video")
    st.caption("Every Nth frame goes through the same detector and classifier as the Upload page. In each analysed "
               "frame the faces are numbered by size: face 1 is the largest (the main face).")
    model_path = model_picker()
    settings = sidebar_settings(model_path)
    upload = st.file_uploader("Video clip", type=VIDEO_TYPES, help="A short clip: long ones take a while on a CPU.")
    recognizer = recognizer_or_error(model_path)
    if upload is None:
        st.info("Upload a short video clip with a face in it.")
        st.stop()
    if recognizer is None:
        st.stop()

    if st.button("Analyse", type="primary"):
        st.session_state["video_run"] = VideoRun(upload.file_id, str(model_path), settings,
                                                 run_analysis(upload, recognizer, settings))
    stored: VideoRun | None = st.session_state.get("video_run")
    if stored and (stored.file_id, stored.model, stored.settings) == (upload.file_id, str(model_path), settings):
        if stored.result is not None:
            show_result(stored.result, upload.name.rsplit(".", 1)[0])
    elif stored:
        st.info("Settings or file changed: press Analyse again.")


video_page()
