"""Home page of the facial-expression dashboard: what it does, which model it uses, where to go.

Kept free of TensorFlow so it opens at once; the pages that classify faces load the model themselves.
"""

from __future__ import annotations

import streamlit as st

from fer_core.app.ui import existing_pages, model_summary
from fer_core.model_card import card_path, default_model_path


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
    for page in existing_pages():
        st.page_link(page.path, label=f"{page.title}: {page.purpose}", icon=page.icon)



def home_page() -> None:
    """What the dashboard does, which model it uses and where to go."""
    st.title("Facial expression recognition")
    st.markdown(
        "This dashboard recognises seven facial expressions (angry, disgust, fear, happy, sad, surprise, "
        "neutral) with a convolutional network trained on the 28,709 Training faces of FER2013 (grayscale, "
        "48×48). Explore the data, follow the training and classify faces in photos, videos or your camera's "
        "stream."
    )
    show_model()
    show_page_links()


home_page()
