"""Streamlit glue shared by the pages: cached loaders and the sidebar model picker.

This is the only module of ``fer_core`` that imports Streamlit; nothing else in the package imports it.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from .card import PROJECT_ROOT, default_model_path, list_models, read_card
from .data import DataError, LoadResult, load_dataset

SAMPLE_DATA = PROJECT_ROOT / "data" / "sample"
DATA_ENV = "FER_DATA"


def default_data_path() -> str:
    """The full dataset path from ``$FER_DATA`` (empty when unset)."""
    return os.environ.get(DATA_ENV, "")


@st.cache_data(show_spinner="Loading faces…", max_entries=4)
def cached_dataset(path: str, skip_bad_rows: bool = True) -> LoadResult:
    """Faces of a CSV or folder tree, cached per path (the loader itself caches on disk too)."""
    return load_dataset(path, skip_bad_rows=skip_bad_rows)


def load_dataset_or_error(path: str) -> LoadResult | None:
    """Load through the cache; show a clear error on the page and return ``None`` on bad input."""
    try:
        return cached_dataset(path)
    except (DataError, OSError) as exc:
        st.error(f"Cannot read the data: {exc}")
        return None


@st.cache_resource(show_spinner="Loading the model…")
def cached_recognizer(model_path: str):
    """One :class:`~fer_core.recognizer.EmotionRecognizer` per model file, shared by all sessions."""
    from .recognizer import EmotionRecognizer

    return EmotionRecognizer(model_path)


def model_picker(key: str = "model") -> Path | None:
    """Sidebar selector over ``models/*.keras`` (default first); ``None`` with a message if there is none."""
    models = list_models()
    default = default_model_path()
    if default.is_file() and default not in models:
        models.insert(0, default)
    if not models:
        st.sidebar.warning("No model in models/. Train one: python -m fer_core train --help")
        return None
    choice = st.sidebar.selectbox("Model", models, format_func=lambda p: Path(p).stem, key=key)
    return Path(choice)


def recognizer_or_error(model_path: Path | None):
    """The cached recognizer, or ``None`` after showing why it could not be loaded."""
    if model_path is None:
        return None
    try:
        return cached_recognizer(str(model_path))
    except (OSError, ValueError) as exc:
        st.error(f"Cannot load the model {model_path}: {exc}")
        return None


def model_summary(model_path: Path) -> dict:
    """The parts of a model card the pages show in a caption."""
    card = read_card(model_path)
    metrics = card.get("metrics", {}).get("validation", {})
    return {"name": card.get("name", model_path.stem), "labels": card["scheme"]["labels"],
            "accuracy": metrics.get("accuracy")}


def webrtc_secrets() -> dict:
    """The ``[webrtc]`` table of Streamlit's secrets (ICE servers for the live camera); empty when
    there is no secrets file or no such table."""
    try:
        return dict(st.secrets.get("webrtc") or {})
    except FileNotFoundError:  # Streamlit raises StreamlitSecretNotFoundError, a FileNotFoundError
        return {}
