"""Upload page: find every face in one or more photos, classify its expression, download the results."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from fer_core.app.charts import emotion_bars
from fer_core.app.limits import (
    ANALYSIS_SLOTS,
    PHOTO_CACHE,
    SERVER_BUDGETS,
    ServerBusy,
    analysis_bytes,
    photo_key,
    within_file_budget,
)
from fer_core.app.ui import (
    cached_recognizer,
    detector_picker,
    model_picker,
    plain,
    recognizer_or_error,
    smile_view_toggle,
    tta_toggle,
)
from fer_core.app.upload import ImageAnalysis, UploadSettings, analyze_upload
from fer_core.inference.explain import grad_cam, overlay_heatmap
from fer_core.inference.images import IMAGE_TYPES, ImageError, failure_reason
from fer_core.inference.pipeline import recognizer_for
from fer_core.settings import AnalysisSettings

if TYPE_CHECKING:
    from fer_core.inference.recognizer import EmotionRecognizer

FACES_PER_ROW = 3
LOGGER = logging.getLogger("fer_core.pages.upload")


def sidebar_settings(model_path: Path | None) -> UploadSettings:
    emoji = st.sidebar.toggle("Emoji over the faces", value=False)
    bars = st.sidebar.toggle("Probability bars on the image", value=False)
    cam = st.sidebar.toggle("Grad-CAM per face", value=False,
                            help="Overlay on each face where the model looked for its top emotion.")
    analysis = AnalysisSettings(model=str(model_path), tta=tta_toggle(model_path, value=True),
                                scheme=smile_view_toggle(), detector=detector_picker("photo"), budgets=SERVER_BUDGETS)
    return UploadSettings(analysis, emoji, bars, cam)


def cached_analysis(data: bytes, name: str, settings: AnalysisSettings, whole_image: bool) -> ImageAnalysis:
    """The analysis of one upload per model and settings, kept in the server's photo cache (bounded in
    bytes, dropped when unused) so that toggling the drawing is instant; computed in one of the server's
    analysis slots (fer_core.app.limits)."""
    key = photo_key(data, name, settings, whole_image)
    cached = PHOTO_CACHE.get(key)
    if cached is not None:
        return cached
    with st.spinner("Finding and classifying faces…"), ANALYSIS_SLOTS.slot():
        analysis = analyze_upload(data, name, recognizer_for(settings, load=cached_recognizer), tta=settings.tta,
                                  whole_image=whole_image, detector=settings.detector, budgets=settings.budgets)
    PHOTO_CACHE.put(key, analysis, analysis_bytes(analysis))
    return analysis


def show_faces(analysis: ImageAnalysis, recognizer: EmotionRecognizer, settings: UploadSettings, key: str) -> None:
    crops = analysis.face_crops() if settings.cam else None
    for start in range(0, len(analysis.results), FACES_PER_ROW):
        columns = st.columns(FACES_PER_ROW)
        for column, result in zip(columns, analysis.results[start : start + FACES_PER_ROW]):
            with column:
                st.markdown(f"**Face {result.index + 1}: {result.label}** ({result.confidence:.0%})")
                if crops is not None:
                    heatmap, _ = grad_cam(recognizer.model, crops[result.index], recognizer.labels.index(result.label))
                    st.image(overlay_heatmap(crops[result.index], heatmap, scale=3),
                             caption=f"Grad-CAM for {result.label}", width=144)
                st.plotly_chart(emotion_bars(result.probabilities), width="stretch", key=f"face_{key}_{result.index}")


def show_downloads(analysis: ImageAnalysis, settings: UploadSettings, key: str) -> None:
    png, csv, js = st.columns(3)
    # The full-size PNG is encoded only when asked for: that takes a while for a large photo.
    png.download_button("Annotated image (PNG)", lambda: analysis.annotated_png(settings.emoji, settings.bars),
                        file_name=analysis.download_name("annotated.png"), mime="image/png", on_click="ignore",
                        key=f"png_{key}")
    csv.download_button("Results (CSV)", analysis.csv(), file_name=analysis.download_name("faces.csv"), mime="text/csv",
                        on_click="ignore", key=f"csv_{key}")
    js.download_button("Results (JSON)", analysis.json(), file_name=analysis.download_name("faces.json"),
                       mime="application/json", on_click="ignore", key=f"json_{key}")


def offer_whole_image(analysis: ImageAnalysis, state_key: str) -> None:
    st.warning(f"No face found in {plain(analysis.name)}. Another face detector in the sidebar may find it.")
    st.image(analysis.preview(), caption=plain(analysis.name), width="content")  # the preview, never the full image
    st.button("Classify the whole image as one face", help="For pictures that are already a cropped face.",
              on_click=lambda: st.session_state.update({state_key: True}), key=f"button_{state_key}")


def analyse(upload, settings: UploadSettings) -> ImageAnalysis | str:
    """The analysis of one uploaded file, or one line saying why it cannot be used: a bad file
    among several must not cost the others their results."""
    try:
        return cached_analysis(upload.getvalue(), upload.name, settings.analysis,
                               st.session_state.get(f"whole_image_{upload.file_id}", False))
    except ImageError as exc:
        return f"Cannot use {plain(upload.name)}: {plain(failure_reason(upload.name, exc))}"
    except ServerBusy as exc:
        return f"Cannot analyse {plain(upload.name)} now: {plain(exc)}"
    except Exception as exc:  # noqa: BLE001 - a fault of ours on one file: logged, reported, the rest goes on
        LOGGER.exception("analysis of the upload %r failed", upload.name)
        return f"Cannot use {plain(upload.name)}: unexpected {type(exc).__name__} (logged on the server)"


def show_analysis(analysis: ImageAnalysis, recognizer: EmotionRecognizer, settings: UploadSettings, key: str) -> None:
    """One file's results; should drawing them fail, the message stands in for this file alone."""
    try:
        show_results(analysis, recognizer, settings, key)
    except Exception as exc:  # noqa: BLE001 - the other files' results stay on the page
        LOGGER.exception("showing the results of %r failed", analysis.name)
        st.error(f"Cannot show the results of {plain(analysis.name)}: unexpected {type(exc).__name__} "
                 "(logged on the server)")


def show_results(analysis: ImageAnalysis, recognizer: EmotionRecognizer, settings: UploadSettings, key: str) -> None:
    if not analysis.results:
        offer_whole_image(analysis, f"whole_image_{key}")
        return
    if analysis.whole_image:
        st.info("No face was detected, so the whole image was classified as one face.")
    count = len(analysis.results)
    st.image(analysis.preview(settings.emoji, settings.bars), width="content",
             caption=f"{plain(analysis.name)}: {count} face{'s' if count != 1 else ''}")
    show_faces(analysis, recognizer, settings, key)
    st.subheader("Results")
    st.dataframe(analysis.table(), hide_index=True, width="stretch")
    show_downloads(analysis, settings, key)


def upload_page() -> None:
    """Find, classify and report every face in one or more uploaded photos."""
    st.title("Upload a photo")
    st.caption("Every frontal face is found, cropped like the 48×48 training faces and classified. "
               "Nothing is stored: the photo stays in this session.")
    model_path = model_picker()
    settings = sidebar_settings(model_path)
    uploads = st.file_uploader("Photos", type=list(IMAGE_TYPES), accept_multiple_files=True,
                               help="JPEG, PNG, WebP, BMP or GIF (first frame); several at once are analysed "
                                    "one by one.")
    recognizer = recognizer_or_error(model_path, settings.analysis.scheme)
    if not uploads:
        st.info("Upload a photo with one or more faces.")
        st.stop()
    if recognizer is None:
        st.stop()

    uploads, extra = within_file_budget(uploads, SERVER_BUDGETS)
    if extra:
        st.warning(f"An upload holds at most {len(uploads)} files (FER_MAX_FILES_PER_UPLOAD); these {len(extra)} "
                   f"were not analysed: {plain(', '.join(upload.name for upload in extra))}")
    outcomes = [(upload, analyse(upload, settings)) for upload in uploads]
    failed = sum(isinstance(outcome, str) for _, outcome in outcomes)
    if len(outcomes) > 1:
        st.caption(f"{len(outcomes)} files: {len(outcomes) - failed} analysed, {failed} could not be used.")
    for upload, outcome in outcomes:
        if len(outcomes) > 1:
            st.subheader(plain(upload.name), divider="gray")
        if isinstance(outcome, str):
            st.error(outcome)
        else:
            show_analysis(outcome, recognizer, settings, upload.file_id)


upload_page()
