"""Training page: how the selected model was trained and how it does on the validation split."""

from __future__ import annotations

import json
from pathlib import Path

import plotly.express as px
import streamlit as st

from fer_core.app.reports import (
    card_overview,
    comparison_frame,
    confusion_frame,
    curves_frame,
    filter_misclassified,
    load_evaluation,
    load_history,
    load_misclassified_faces,
    members_frame,
    misclassified_frame,
    per_class_frame,
    recall_long_frame,
    reliability_frame,
)
from fer_core.app.ui import model_picker, recognizer_or_error
from fer_core.data.explore import enlarge
from fer_core.inference.explain import grad_cam, overlay_heatmap
from fer_core.model_card import ModelCard, list_models

REGENERATE_HINT = "Regenerate with `python -m fer_core publish --run RUN_DIR --data PATH --name NAME`."


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def show_overview(model_path: Path) -> None:
    o = card_overview(model_path)
    cols = st.columns(5)
    cols[0].metric("Validation accuracy (TTA)", percent(o["accuracy"]))
    cols[1].metric("Without TTA", percent(o["accuracy_no_tta"]))
    cols[2].metric("Macro F1", percent(o["macro_f1"]))
    cols[3].metric("ECE (calibrated)", percent(o["ece"]),
                   help=f"Expected calibration error, 15 bins; before temperature scaling: {percent(o['ece_before'])}")
    seconds = o["seconds_per_epoch"]
    per_epoch = None if seconds is None else f"{seconds:.0f} s per epoch (median)"
    cols[4].metric("Epochs per member" if o["members"] else "Epochs", o["epochs"] or "—", help=per_epoch)


def show_curves(model_path: Path) -> None:
    history = load_history(model_path)
    st.subheader("Training history")
    if history is None:
        st.info(f"No training history beside this model. {regenerate_hint(model_path)}")
        return
    if "member" in history:
        show_member_curves(history)
        show_members(model_path)
        return
    left, middle, right = st.columns(3)
    for column, metric in ((left, "loss"), (middle, "accuracy")):
        chart = px.line(curves_frame(history, metric), x="epoch", y=metric, color="set", markers=True)
        chart.update_layout(height=320, margin={"t": 30, "b": 10}, title=metric)
        column.plotly_chart(chart, width="stretch")
    if "learning_rate" in history:
        chart = px.line(history, x="epoch", y="learning_rate", markers=True)
        chart.update_layout(height=320, margin={"t": 30, "b": 10}, title="learning rate")
        right.plotly_chart(chart, width="stretch")


def show_member_curves(history) -> None:
    """An ensemble's members, one small panel each, for loss and for accuracy (train vs. validation)."""
    members = history["member"].nunique()
    st.caption(f"An ensemble is not trained itself: it averages {members} trained members. Their curves:")
    rows = -(-members // 3)
    for metric in ("loss", "accuracy"):
        chart = px.line(curves_frame(history, metric), x="epoch", y=metric, color="set", facet_col="member",
                        facet_col_wrap=3, facet_row_spacing=0.12)
        chart.for_each_annotation(lambda a: a.update(text=a.text.removeprefix("member=")))
        chart.update_layout(height=220 * rows + 60, margin={"t": 50, "b": 10}, title=metric)
        st.plotly_chart(chart, width="stretch")


def show_members(model_path: Path) -> None:
    """The members' epochs, figures and the commands that regenerate each, from the ensemble's card."""
    table = members_frame(model_path)
    st.subheader("Members")
    st.dataframe(table.style.format({"accuracy": "{:.1%}", "accuracy_no_tta": "{:.1%}", "macro_f1": "{:.1%}"},
                                    na_rep="—"), width="stretch")
    with st.expander("Commands that train and publish each member again"):
        for name, row in table.iterrows():
            commands = [c for c in (row["training command"], row["publish command"]) if c]
            st.markdown(f"**{name}**")
            st.code("\n".join(commands) or "not recorded", language="bash")


def regenerate_hint(model_path: Path) -> str:
    """The command that regenerates this model (from its card), else the general ``publish`` line."""
    command = ModelCard.load(model_path).data.get("regenerate")
    return f"Regenerate with `{command}`." if command else REGENERATE_HINT


def show_confusion(figures: dict) -> None:
    st.subheader("Confusion matrix (validation)")
    normalise = st.toggle("Row-normalised (share of each true class)", value=True)
    frame = confusion_frame(figures, normalise)
    chart = px.imshow(frame, text_auto=".0%" if normalise else "d", color_continuous_scale="Blues", aspect="auto",
                      labels={"x": "predicted", "y": "true", "color": "share" if normalise else "faces"})
    chart.update_layout(height=480, margin={"t": 10, "b": 10})
    st.plotly_chart(chart, width="stretch")


def show_per_class(figures: dict) -> None:
    st.subheader("Per-class figures")
    st.dataframe(per_class_frame(figures).style.format({"precision": "{:.1%}", "recall": "{:.1%}", "f1": "{:.1%}"}),
                 width="stretch")


def show_calibration(evaluation: dict) -> None:
    frame = reliability_frame(evaluation)
    calibration = evaluation.get("calibration")
    if frame.empty or not calibration:
        return
    st.subheader("Calibration")
    st.caption(f"Temperature T = {calibration['temperature']:.3f} fitted on the validation split. "
               f"ECE {calibration['ece_before']:.1%} before, {calibration['ece_after']:.1%} after scaling.")
    chart = px.line(frame, x="confidence", y="accuracy", color="calibration", markers=True,
                    hover_data=["count"], range_x=[0, 1], range_y=[0, 1])
    chart.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot", "color": "gray"})
    chart.update_layout(height=380, margin={"t": 10, "b": 10}, xaxis_title="mean confidence in bin",
                        yaxis_title="accuracy in bin")
    st.plotly_chart(chart, width="stretch")


def show_misclassified(model_path: Path, evaluation: dict) -> None:
    st.subheader("Misclassified validation faces")
    frame = misclassified_frame(evaluation)
    faces = load_misclassified_faces(model_path)
    if frame.empty:
        st.write("No misclassified faces.")
        return
    labels = evaluation["tta"]["labels"]
    left, right, count = st.columns([2, 2, 1])
    true_pick = left.multiselect("True class", labels, key="mis_true")
    pred_pick = right.multiselect("Predicted class", labels, key="mis_pred")
    shown = filter_misclassified(frame, true_pick, pred_pick)
    limit = count.number_input("Show", 6, 120, 24, step=6)
    cam = st.toggle("Grad-CAM of the predicted emotion over each face", key="mis_cam",
                    help="Where the model looked when it made the mistake (loads the model).")
    recognizer = recognizer_or_error(model_path) if cam else None
    st.caption(f"{len(shown)} of {len(frame)} misclassified faces match; most confident mistakes first.")
    columns = st.columns(6)
    for i, row in enumerate(shown.head(int(limit)).itertuples()):
        with columns[i % 6]:
            face = faces.get(row.source)
            if face is not None and recognizer is not None:
                heatmap, _ = grad_cam(recognizer.model, face, recognizer.labels.index(row.predicted))
                st.image(overlay_heatmap(face, heatmap, scale=3), width="stretch")
            elif face is not None:
                st.image(enlarge(face, 3), width="stretch")
            st.caption(f"**{row.true}** → {row.predicted} ({row.confidence:.0%})  \n`{row.source}`")


@st.cache_data(show_spinner="Timing each model on this machine…")
def measured_speed(model_file: str, modified: float) -> float:
    """Faces/s of one model (batches of 256, no TTA); cached per file version."""
    from fer_core.inference.speed import faces_per_second

    recognizer = recognizer_or_error(Path(model_file))
    return faces_per_second(recognizer) if recognizer is not None else float("nan")


def show_comparison(models: list[Path]) -> None:
    """All shipped models side by side, from their cards; speed measured here on request."""
    st.subheader("Compare models")
    table = comparison_frame(models)
    if st.toggle("Measure faces/s on this machine", key="compare_speed",
                 help="Loads every model and classifies batches of 256 faces (no TTA)."):
        from fer_core.machine import machine_info

        table["faces_per_s"] = [measured_speed(str(p), p.stat().st_mtime) for p in models]
        st.caption(f"Measured on {machine_info().describe()}.")
    percent_columns = [c for c in table.columns if c.startswith(("accuracy", "recall", "macro", "ece"))]
    st.dataframe(table.style.format("{:.1%}", subset=percent_columns, na_rep="—"), width="stretch")
    left, right = st.columns(2)
    headline = table[["accuracy", "accuracy_no_tta", "macro_f1"]].reset_index().melt(
        id_vars="model", var_name="figure", value_name="value")
    chart = px.bar(headline, x="figure", y="value", color="model", barmode="group", text_auto=".1%")
    chart.update_layout(height=340, margin={"t": 30, "b": 10}, title="validation (PublicTest)", yaxis_tickformat=".0%")
    left.plotly_chart(chart, width="stretch")
    chart = px.bar(recall_long_frame(table), x="class", y="recall", color="model", barmode="group")
    chart.update_layout(height=340, margin={"t": 30, "b": 10}, title="recall per class", yaxis_tickformat=".0%")
    right.plotly_chart(chart, width="stretch")


def training_page() -> None:
    """How the chosen model was trained and how it does on the validation split."""
    st.title("Training")
    model_path = model_picker()
    if model_path is None:
        st.stop()
    card = ModelCard.load(model_path)
    st.caption(f"Model `{model_path.name}` · labels: {', '.join(card.labels)}")
    show_overview(model_path)
    show_curves(model_path)
    evaluation = load_evaluation(model_path)
    if evaluation is None:
        st.info(f"No validation evaluation beside this model. {regenerate_hint(model_path)}")
    else:
        left, right = st.columns([3, 2])
        with left:
            show_confusion(evaluation["tta"])
        with right:
            show_per_class(evaluation["tta"])
        show_calibration(evaluation)
        show_misclassified(model_path, evaluation)
    with st.expander("Model card"):
        st.json(card.data)
        st.download_button("Download model card", json.dumps(card.data, indent=2), file_name=f"{model_path.stem}.json",
                           mime="application/json")
    shipped = list_models()
    if len(shipped) > 1:
        show_comparison(shipped)


training_page()
