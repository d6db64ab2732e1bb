"""Home page of the facial-expression dashboard: what it does, which model it uses, where to go.

Kept free of TensorFlow so it opens at once; the pages that classify faces load the model themselves.
"""

from __future__ import annotations

import streamlit as st

from fer_core.app.ui import existing_pages, model_summary
from fer_core.model_card import card_path, default_model_path, fast_model_path, model_label


def show_model() -> None:
    st.subheader("Models")
    model_path = default_model_path()
    if not model_path.is_file():
        st.warning(f"No model at `{model_path}` yet: the pages that classify faces need one. Train one:")
        st.code("python -m fer_core train --help", language="bash")
        st.caption("Or point the app at another model with the FER_MODEL environment variable.")
        return
    st.success(f"Photos, videos and explanations: **{model_label(model_path)}** (`{model_path.name}`).")
    fast_path = fast_model_path()
    if fast_path.is_file() and fast_path != model_path:
        st.info(f"The live camera: **{model_label(fast_path)}** (`{fast_path.name}`).")
    st.markdown("Emotions they predict: " + ", ".join(model_summary(model_path)["labels"]))
    st.caption("Figures: accuracy on FER2013's 3,589 PublicTest faces, from each model's card. "
               "Every page's sidebar can switch models.")
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
