"""Video page: emotions over time in a short clip, with an annotated copy to download."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import plotly.express as px
import streamlit as st

from fer_core.app.charts import person_shares_chart, person_timeline_chart
from fer_core.app.limits import ANALYSIS_SLOTS, SERVER_BUDGETS, ServerBusy
from fer_core.app.ui import detector_picker, model_picker, plain, recognizer_or_error, tta_toggle
from fer_core.app.video import VideoRun, VideoSettings, VideoUploadAnalysis, analyze_video_upload
from fer_core.inference.people import emotion_shares, emotions_over_time, people, person_summary
from fer_core.inference.video import VideoAnalysis, VideoError
from fer_core.settings import AnalysisSettings

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
    analysis = AnalysisSettings(model=str(model_path), tta=tta, detector=detector_picker("video"),
                                budgets=SERVER_BUDGETS)
    return VideoSettings(analysis, every, float(max_seconds), annotate_video, emoji)


ALL_PEOPLE = "Everyone (one chart each)"


def all_faces_chart(table: pd.DataFrame, labels: tuple[str, ...]):
    faces = table.assign(person=table["person"].map(lambda p: f"person {p}"))
    chart = px.scatter(faces, x="time_s", y="label", color="person", size="confidence", size_max=12,
                       category_orders={"label": list(labels), "person": [f"person {p}" for p in people(table)]},
                       labels={"time_s": "time (s)", "label": "top emotion"},
                       title="Every person: top emotion per analysed frame")
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
            analysis = settings.analysis
            result = analyze_video_upload(upload.getvalue(), upload.name, recognizer, every=settings.every,
                                          tta=analysis.tta, max_seconds=settings.max_seconds,
                                          annotate_video=settings.annotate_video, emoji=settings.emoji,
                                          progress=progress, detector=analysis.detector, budgets=analysis.budgets)
    except (VideoError, ServerBusy) as exc:
        bar.empty()
        st.error(f"Cannot analyse this file. {plain(exc)}")
        return None
    bar.empty()
    return result


def show_people(analysis: VideoAnalysis, table: pd.DataFrame, summary: pd.DataFrame) -> None:
    """Each person's clearest face and time seen, their share of time per emotion, and their
    emotions over time (one person, or everyone as small multiples)."""
    st.subheader(f"{len(summary)} {'person' if len(summary) == 1 else 'people'}")
    st.caption("Each face is followed from frame to frame by its position: a person who leaves the picture for "
               "a few seconds, or two people who pass each other while both are hidden, may get another number.")
    for start in range(0, len(summary), 6):
        columns = st.columns(6)
        for column, (_, row) in zip(columns, summary.iloc[start:start + 6].iterrows()):
            person = int(row["person"])
            if person in analysis.portraits:
                column.image(analysis.portraits[person], channels="BGR", width=96)
            column.markdown(f"**Person {person}**  \n{row['main_emotion']}, seen {row['seconds']:.1f} s")
    st.plotly_chart(person_shares_chart(emotion_shares(summary, analysis.labels), analysis.labels), width="stretch")
    choices = [ALL_PEOPLE, *[f"Person {p}" for p in summary["person"]]]
    chosen = st.selectbox("Emotions over time of", choices, index=1 if len(choices) == 2 else 0)
    persons = None if chosen == ALL_PEOPLE else [int(chosen.split()[-1])]
    st.plotly_chart(person_timeline_chart(emotions_over_time(table, analysis.labels, persons), analysis.labels),
                    width="stretch")


def show_result(result: VideoUploadAnalysis, stem: str, every: int) -> None:
    analysis = result.analysis
    table = analysis.to_frame()
    summary = person_summary(table, analysis.labels, every / analysis.fps if analysis.fps else 0.0)
    st.success(f"{analysis.frames_read} frames read at {analysis.fps:.1f} fps, {analysis.frames_analyzed} analysed, "
               f"{len(table)} face detections.")
    if analysis.cut_short:
        st.warning(f"The analysis {plain(analysis.cut_short)}, a budget of this server. The results below cover "
                   "the frames before it.")
    if analysis.error:
        st.warning(f"The analysis {plain(analysis.error)}. The results below cover the frames before it.")
    if table.empty:
        st.warning("No face was found in the analysed frames.")
    else:
        show_people(analysis, table, summary)
        st.plotly_chart(all_faces_chart(table, analysis.labels), width="stretch")
        st.dataframe(table, hide_index=True, width="stretch")
    downloads = st.columns(3)
    downloads[0].download_button("Results (CSV)", table.to_csv(index=False).encode(), file_name=f"{stem}_faces.csv",
                                 mime="text/csv", on_click="ignore")
    downloads[1].download_button("People (CSV)", summary.to_csv(index=False).encode(), file_name=f"{stem}_people.csv",
                                 mime="text/csv", on_click="ignore")
    if result.annotated_mp4:
        downloads[2].download_button("Annotated video (MP4)", result.annotated_mp4, file_name=f"{stem}_annotated.mp4",
                                     mime="video/mp4", on_click="ignore")
        st.video(result.annotated_mp4)


def video_page() -> None:
    """Emotions over time in an uploaded clip, with an annotated copy to download."""
    st.title("Video")
    st.caption("Every Nth frame goes through the same detector and classifier as the Upload page. Each face is "
               "followed through the clip and keeps its person number, drawn in the annotated video.")
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
        st.session_state["video_run"] = VideoRun(upload.file_id, settings, run_analysis(upload, recognizer, settings))
    stored: VideoRun | None = st.session_state.get("video_run")
    if stored and (stored.file_id, stored.settings) == (upload.file_id, settings):
        if stored.result is not None:
            show_result(stored.result, upload.name.rsplit(".", 1)[0], settings.every)
    elif stored:
        st.info("Settings or file changed: press Analyse again.")


video_page()
