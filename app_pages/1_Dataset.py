"""Dataset page: what is in the bundled sample or the full FER2013 data (counts, balance, faces)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from fer_core.app.ui import load_dataset_or_error, offered_datasets, plain
from fer_core.data import FaceData, LoadResult
from fer_core.data.explore import (
    class_counts,
    counts_table,
    describe_source,
    enlarge,
    face_mosaic,
    filter_faces,
    mean_faces,
    sample_per_class,
)
from fer_core.data.roots import ROOTS_ENV, SAMPLE_DATA, Dataset
from fer_core.labels import FER_LABELS

EMOTION_ORDER = {"emotion": list(FER_LABELS)}


def chosen_dataset() -> Dataset | None:
    """The dataset the user picked among those under the server's data roots; ``None`` (with a hint)
    when there is none. There is no free path field: a visitor reads only what the server offers."""
    datasets = offered_datasets()
    if not datasets:
        st.warning(f"This server offers no dataset. Its operator adds folders with {ROOTS_ENV} when starting it.")
        return None
    by_label = {dataset.label: dataset for dataset in datasets}
    label = st.selectbox("Dataset", list(by_label), key="dataset",
                         help=f"The datasets under this server's data roots (the shipped sample, $FER_DATA, or "
                              f"the folders in {ROOTS_ENV}): FER2013 CSV files and image folders.")
    dataset = by_label[label]
    if dataset.path == SAMPLE_DATA:
        st.caption("210 PublicTest faces (30 per class) shipped with the app: see data/sample/README.md.")
    return dataset


def show_skipped(result: LoadResult, dataset: Dataset) -> None:
    label = f"Skipped inputs ({len(result.skipped)})"
    with st.expander(label, expanded=len(result.data) == 0):
        if result.skipped:
            skipped = pd.DataFrame([{"file or row": dataset.shown(s.source), "reason": dataset.shown(s.reason)}
                                    for s in result.skipped])
            st.dataframe(skipped, hide_index=True, width="stretch")
        else:
            st.write("Nothing was skipped: every file or row was read.")


def chosen_filters(data: FaceData, data_path: str) -> tuple[list[str], list[int]]:
    """Splits and FER label indices selected in the sidebar (all by default).

    The widget keys name the data source, so another source starts with all of its splits and
    emotions selected instead of the previous source's choice.
    """
    splits = data.split_names()
    present = sorted(set(data.labels.tolist()))
    st.sidebar.header("Filters")
    chosen_splits = st.sidebar.multiselect("Splits", splits, default=splits, key=f"splits:{data_path}")
    chosen_labels = st.sidebar.multiselect(
        "Emotions", present, default=present, format_func=lambda i: FER_LABELS[i], key=f"emotions:{data_path}"
    )
    return chosen_splits, chosen_labels


def show_counts(data: FaceData) -> None:
    counts = class_counts(data)
    st.subheader("Faces per split and class")
    chart = px.bar(counts, x="emotion", y="count", color="split", barmode="group", category_orders=EMOTION_ORDER)
    chart.update_layout(height=360, margin={"t": 10, "b": 10}, legend_title_text="split")
    st.plotly_chart(chart, width="stretch")
    table = counts_table(counts)
    thousands = {column: st.column_config.NumberColumn(format="localized") for column in table.columns}
    st.dataframe(table, width="stretch", column_config=thousands)

    st.subheader("Class balance")
    st.caption("Share of each emotion within its split: compare the splits whatever their size.")
    balance = px.bar(
        counts, x="emotion", y="share", color="split", barmode="group", category_orders=EMOTION_ORDER,
        hover_data={"count": True, "share": ":.1%"},
    )
    balance.update_layout(height=320, margin={"t": 10, "b": 10}, yaxis_tickformat=".0%")
    st.plotly_chart(balance, width="stretch")


def reshuffle() -> None:
    st.session_state["sample_seed"] += 1


def chosen_sample(data: FaceData) -> dict[int, np.ndarray]:
    """Random faces per class: how many from the slider, which from the seed that 'Reshuffle' bumps."""
    st.session_state.setdefault("sample_seed", 0)
    how_many, shuffle = st.columns([4, 1], vertical_alignment="bottom")
    per_class = how_many.slider("Faces per class", min_value=4, max_value=16, value=10, key="per_class")
    shuffle.button("Reshuffle", on_click=reshuffle, key="reshuffle", help="Draw other random faces.", width="stretch")
    return sample_per_class(data, per_class, st.session_state["sample_seed"])


def show_sample_grid(data: FaceData, samples: dict[int, np.ndarray]) -> None:
    for label, indices in samples.items():
        total = int((data.labels == label).sum())
        st.markdown(f"**{FER_LABELS[label]}** · {len(indices)} of {total} faces")
        st.image(face_mosaic(data.images[indices], columns=len(indices), scale=2))


def show_one_face(data: FaceData, samples: dict[int, np.ndarray], dataset: Dataset) -> None:
    st.subheader("One face, enlarged")
    pick_class, pick_face = st.columns(2)
    label = pick_class.selectbox("Emotion", list(samples), format_func=lambda i: FER_LABELS[i], key="face_class")
    position = pick_face.number_input(
        "Face in that row (1 = leftmost)", min_value=1, max_value=len(samples[label]), value=1, key="face_position"
    )
    index = samples[label][position - 1]
    picture, facts = st.columns([1, 2])
    picture.image(enlarge(data.images[index], scale=5))
    facts.markdown(f"**Label:** {FER_LABELS[data.labels[index]]}  \n**Split:** {data.splits[index]}")
    facts.markdown(f"**Source:** {plain(describe_source(dataset.shown(str(data.sources[index])), dataset.label))}")


def show_mean_faces(data: FaceData) -> None:
    st.subheader("Mean face per class")
    st.caption("Pixel-wise average of every face of the class in the current selection.")
    means = mean_faces(data)
    for column, (label, face) in zip(st.columns(len(means)), means.items()):
        column.image(enlarge(face, scale=3), caption=FER_LABELS[label])


def dataset_page() -> None:
    """What is in the chosen data: counts, class balance, sample and mean faces."""
    st.title("Dataset")
    dataset = chosen_dataset()
    if dataset is None:
        st.stop()
    result = load_dataset_or_error(dataset)
    if result is None:
        st.stop()
    if len(result.data) == 0:
        st.error(
            "No faces found in this dataset. Expected a fer2013.csv, or class folders (angry/, happy/, …) "
            "directly or inside split folders (train/, validation/)."
        )
        show_skipped(result, dataset)
        st.stop()

    splits, labels = chosen_filters(result.data, str(dataset.path))
    data = filter_faces(result.data, splits, labels)
    total, shown, skipped = st.columns(3)
    total.metric("Faces loaded", f"{len(result.data):,}")
    shown.metric("Faces selected", f"{len(data):,}")
    skipped.metric("Skipped inputs", len(result.skipped))
    if len(data) == 0:
        st.warning("The filters leave no faces: choose at least one split and one emotion in the sidebar.")
        show_skipped(result, dataset)
        st.stop()

    show_counts(data)

    st.subheader("Sample faces")
    samples = chosen_sample(data)
    show_sample_grid(data, samples)
    show_one_face(data, samples, dataset)
    show_mean_faces(data)
    show_skipped(result, dataset)


dataset_page()
