"""Home page of the facial-expression dashboard: what it does, which model it uses, where to go.

Kept free of TensorFlow so it opens at once; the pages that classify faces load the model themselves.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from fer_core.card import card_path, default_model_path
from fer_core.ui import model_summary

PAGES_DIR = Path(__file__).resolve().parent / "pages"
# (file in pages/, link label, icon, what the page is for); pages not written yet are not linked.
PAGES = (
    ("1_Dataset.py", "Dataset", ":material/dataset:", "counts, class balance, sample and mean faces of FER2013"),
    ("2_Training.py", "Training", ":material/monitoring:", "learning curves and metrics of the training runs"),
    ("3_Upload.py", "Upload", ":material/add_photo_alternate:", "detect and classify the faces in your photos"),
    ("4_Live_camera.py", "Live camera", ":material/videocam:", "classify faces from your webcam as you move"),
    ("5_Video.py", "Video", ":material/movie:", "emotions over time in a video file"),
    ("6_Explain.py", "Explain", ":material/psychology:", "Grad-CAM and feature maps: why the model decided"),
)

st.set_page_config(page_title="Facial expressions", page_icon="🙂", layout="wide")
st.title("Facial expression recognition")
st.markdown(
    "This dashboard recognises seven facial expressions (angry, disgust, fear, happy, sad, surprise, "
    "neutral) with a convolutional network trained on the 28,709 Training faces of FER2013 (grayscale, "
    "48×48). Explore the data, follow the training and classify faces in photos, videos or your camera's "
    "stream."
)


def show_model() -> None:
    st.subheader("Model")
    model_path = default_model_path()
    if not model_path.is_file():
        st.warning(f"No model at `{model_path}` yet: the pages that classify faces need one. Train one:")
        st.code("python -m fer_core train --help", language="bash")
        st.caption("Or point the app at another model with the FER_MODEL environment variable.")
        return
    summary = model_summary(model_path)
    accuracy = summary["accuracy"]
    measured = f", {accuracy:.1%} validation accuracy" if accuracy is not None else ""
    st.success(f"Loaded model **{summary['name']}** (`{model_path.name}`){measured}.")
    st.markdown("Emotions it predicts: " + ", ".join(summary["labels"]))
    if not card_path(model_path).is_file():
        st.caption(f"No model card `{card_path(model_path).name}` beside it: assuming FER2013's 7 labels.")


def show_page_links() -> None:
    st.subheader("Pages")
    for file, label, icon, purpose in PAGES:
        if (PAGES_DIR / file).is_file():
            st.page_link(f"pages/{file}", label=f"{label}: {purpose}", icon=icon)


show_model()
show_page_links()
