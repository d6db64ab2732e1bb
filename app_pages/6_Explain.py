"""Explain page: Grad-CAM and convolutional feature maps for one face (from the data or a photo)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from fer_core.app.charts import emotion_bars
from fer_core.app.limits import ANALYSIS_SLOTS, SERVER_BUDGETS, ServerBusy
from fer_core.app.ui import (
    SAMPLE_DATASET,
    cached_recognizer,
    load_dataset_or_error,
    model_picker,
    plain,
    recognizer_or_error,
)
from fer_core.app.upload import analyze_upload
from fer_core.data.explore import enlarge, filter_faces
from fer_core.inference.explain import (
    conv_layer_names,
    feature_map_grid,
    feature_maps,
    grad_cam,
    overlay_heatmap,
)
from fer_core.inference.images import IMAGE_TYPES, ImageError
from fer_core.labels import FER_LABELS


@st.cache_data(show_spinner="Finding the faces…", max_entries=4)
def detected_faces(data: bytes, name: str, model: str) -> np.ndarray:
    """The face crops of a photo, cached per photo and model: the widgets below rerun the page
    without detecting again."""
    with ANALYSIS_SLOTS.slot():
        return analyze_upload(data, name, cached_recognizer(model), budgets=SERVER_BUDGETS).face_crops()


def face_from_dataset() -> tuple[np.ndarray, str] | None:
    result = load_dataset_or_error(SAMPLE_DATASET)
    if result is None or len(result.data) == 0:
        return None
    left, right = st.columns(2)
    label = left.selectbox("Emotion of the face", FER_LABELS)
    faces = filter_faces(result.data, labels=[FER_LABELS.index(label)])
    if len(faces) == 0:
        st.info(f"The sample has no {label} face.")
        return None
    i = right.number_input(f"Face number (1–{len(faces)})", 1, len(faces), 1) - 1
    source = plain(SAMPLE_DATASET.shown(str(faces.sources[i])))
    return faces.images[i], f"sample face, true label **{label}** ({source})"


def face_from_upload(model: str) -> tuple[np.ndarray, str] | None:
    upload = st.file_uploader("A photo with a face", type=IMAGE_TYPES)
    if upload is None:
        return None
    try:
        crops = detected_faces(upload.getvalue(), upload.name, model)
    except (ImageError, ServerBusy) as exc:
        st.error(f"Cannot use this file. {plain(exc)}")
        return None
    count = len(crops)
    if not count:
        st.warning(f"No face found in {plain(upload.name)}.")
        return None
    n = st.number_input(f"Face number (1–{count}, left to right)", 1, count, 1) if count > 1 else 1
    return crops[n - 1], f"face {n} of {plain(upload.name)}"


def explain_page() -> None:
    """Grad-CAM and feature maps of the model for one chosen face."""
    st.title("Why did the model decide?")
    st.caption("Grad-CAM shows which parts of the face pushed the model towards an emotion; feature maps show "
               "what each convolutional layer responds to.")

    model_path = model_picker()
    recognizer = recognizer_or_error(model_path)
    if recognizer is None:
        st.stop()

    source = st.radio("Face", ["From the bundled sample", "From a photo"], horizontal=True)
    picked = face_from_dataset() if source == "From the bundled sample" else face_from_upload(str(model_path))
    if picked is None:
        st.stop()
    face, description = picked
    prediction = recognizer.predict(face[None], tta=False)[0]
    st.markdown(f"{description} → predicted **{prediction.label}** ({prediction.confidence:.0%})")

    left, middle, right = st.columns([1, 1, 2])
    left.image(enlarge(face, 4), caption="the 48×48 face the model sees", width="stretch")
    target = middle.selectbox("Explain the emotion", recognizer.labels, index=recognizer.labels.index(prediction.label))
    heatmap, _ = grad_cam(recognizer.model, face, recognizer.labels.index(target))
    middle.image(overlay_heatmap(face, heatmap), caption=f"Grad-CAM for {target}", width="stretch")
    right.plotly_chart(emotion_bars(prediction.probabilities), width="stretch")

    st.subheader("Feature maps")
    layers = conv_layer_names(recognizer.model)
    left, right = st.columns([3, 1])
    layer = left.selectbox("Layer", layers, index=len(layers) - 1 if layers else 0,
                           help="Convolutions, their activations and the pooling layers, from input to output.")
    limit = right.slider("Channels shown", 8, 128, 32, step=8)
    maps = feature_maps(recognizer.model, face, layer)
    st.image(feature_map_grid(maps, columns=16, max_maps=limit), clamp=True,
             caption=f"{layer}: {maps.shape[0]}×{maps.shape[1]} × {maps.shape[2]} channels"
                     f" (first {min(limit, maps.shape[2])})")


explain_page()
