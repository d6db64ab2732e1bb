"""Publishing a training run as a shipped model: ``models/NAME.keras`` plus the files the app reads.

One command regenerates everything the app states about a model::

    python -m fer_core publish --run runs/vgg_compact_fer7 --data PATH --name vgg_compact_fer7

It writes, beside the model: ``NAME.json`` (model card), ``NAME.history.csv`` (training curves),
``NAME.eval.json`` (validation figures with and without TTA, confusion matrix, per-class figures,
misclassified faces, calibration before/after temperature scaling) and ``NAME.onnx`` (the model
exported for ONNX Runtime, shipped only when it matches the ``.keras`` model on the validation faces).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_core.data import FaceData, load_dataset
from fer_core.inference.recognizer import EmotionRecognizer, apply_temperature
from fer_core.labels import SMILE, LabelScheme, project_probabilities
from fer_core.model_card import (
    ENSEMBLE_TTA,
    FACE_INPUT,
    MODELS_DIR,
    TTA_MODES,
    ModelCard,
    PublishedCard,
    ValidationMetrics,
    eval_path,
    history_path,
    misclassified_faces_path,
)
from fer_core.training.architectures import build_ensemble, with_input_blur
from fer_core.training.calibration import fit_temperature
from fer_core.training.export import export_published
from fer_core.training.metrics import (
    choose_threshold,
    expected_calibration_error,
    misclassified_faces,
    reliability_bins,
    summarise_predictions,
)
from fer_core.training.train import BEST_MODEL, HISTORY, TRAINING_JSON, read_history

# Input-blur sigmas tried by ``publish`` (0 = none); see :func:`fer_core.training.architectures.with_input_blur`.
BLUR_CANDIDATES = (0.0, 0.4, 0.5, 0.6, 0.7, 0.8)
# The temperature minimises the validation ECE (see :func:`fer_core.training.calibration.fit_temperature`).
CALIBRATION_OBJECTIVE = "ece"


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """What only the caller of :func:`measure_and_write_card` knows of a model: where it came from
    and how it is used; the rest of its card is measured."""

    architecture: str
    training: dict
    regenerate: str
    tta: dict  # see tta_settings
    members: list[dict] | None = None  # an ensemble's (see member_summary)
    weights: str | None = None  # an ensemble's stored weight dtype
    input_blur: dict | None = None  # already inside the model: kept as recorded, not chosen again


def export_model(run_model: Path, dest: Path) -> None:
    """Save the weights and architecture without optimizer state (smaller), atomically."""
    import keras

    save_model(keras.models.load_model(run_model, compile=False, safe_mode=True), dest)


def save_model(model, dest: Path) -> None:
    """Write a model atomically: a reader never sees half a file."""
    tmp = dest.with_name(f".{dest.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, dest)


def tta_settings(crop: int) -> dict:
    """The card's test-time augmentation for a model that centre-crops ``crop`` pixels per side:
    ten crops of a model trained on crops, the mirror image otherwise."""
    return {"tta": "ten_crop", "tta_crop": crop} if crop else {"tta": "hflip"}


def ensemble_tta(members: list[EmotionRecognizer], tta: str = "auto") -> dict:
    """With ``auto``, ten crops only when every member was trained on crops of the same size: a member
    that sees whole faces would be shown shifted ones, which it never learned on. Otherwise, or with
    ``hflip`` (ten crops cost five times the mirror image's time per face), the mirror image; with
    ``none`` one view per member, half the mirror image's time."""
    if tta not in ENSEMBLE_TTA:
        raise ValueError(f"ensemble tta must be one of {', '.join(ENSEMBLE_TTA)}, got {tta!r}")
    if tta == "none":
        return {"tta": "none"}
    crops = {member.card.tta_crop for member in members}
    return tta_settings(crops.pop() if tta == "auto" and len(crops) == 1 else 0)


def choose_input_blur(dest: Path, faces: np.ndarray, y: np.ndarray,
                      candidates: tuple[float, ...] = BLUR_CANDIDATES) -> tuple[float, dict[str, float]]:
    """Validation accuracy (with TTA) of the model at ``dest`` for each input-blur sigma; the best
    sigma (the smallest among ties) and all the accuracies.
    See :func:`fer_core.training.architectures.with_input_blur`."""
    plain = EmotionRecognizer(dest).model
    accuracy, models = {}, {}
    for sigma in candidates:
        models[sigma] = plain if sigma == 0 else with_input_blur(plain, sigma)
        probs = EmotionRecognizer(dest, model=models[sigma]).raw_probabilities(faces, tta=True)
        accuracy[f"{sigma:g}"] = float(np.mean(probs.argmax(axis=1) == y))
    best = max(candidates, key=lambda sigma: (accuracy[f"{sigma:g}"], -sigma))
    if best:
        save_model(models[best], dest)
    return best, accuracy


def save_misclassified_faces(model_path: Path, validation: FaceData, misclassified: list[dict],
                             data_root: str | os.PathLike) -> None:
    """Store the pixels of the misclassified faces beside the model, so the Training page's gallery
    works without the dataset. Sources are made relative to the data root (portable across machines)."""
    index = {source: i for i, source in enumerate(validation.sources.tolist())}
    rows = [index[m["source"]] for m in misclassified]
    for m in misclassified:
        m["source"] = relative_source(m["source"], data_root)
    np.savez_compressed(
        misclassified_faces_path(model_path),
        images=validation.images[rows] if rows else np.zeros((0, 48, 48), np.uint8),
        sources=np.array([m["source"] for m in misclassified], dtype=str),
    )


def relative_source(source: str, data_root: str | os.PathLike) -> str:
    """A face's file path relative to the dataset root (CSV rows such as ``row 5`` stay as they are)."""
    try:
        return Path(source).resolve().relative_to(Path(data_root).resolve()).as_posix()
    except ValueError:
        return source


def training_summary(run_dir: Path) -> dict:
    """Command, epochs, timing and best epoch of a run, from its ``training.json`` and history."""
    info = json.loads((run_dir / TRAINING_JSON).read_text())
    history = read_history(run_dir)
    seconds = [row["epoch_seconds"] for row in history if "epoch_seconds" in row]
    best = max(history, key=lambda r: r.get("val_accuracy", 0.0)) if history else {}
    return {
        "command": info.get("command"),
        "architecture": info["config"]["arch"],
        "precision": info.get("precision", info["config"]["precision"]),
        "epochs_run": len(history),
        "best_epoch": int(best.get("epoch", -1)) + 1,
        "seconds_per_epoch_median": float(np.median(seconds)) if seconds else None,
        "training_seconds_total": float(np.sum(seconds)) if seconds else None,
        "n_train": info.get("n_train"),
        "parameters": info.get("parameters"),
        "device": info.get("device"),
        "config": info["config"],
    }


def publish(run_dir: str | os.PathLike, data: str | os.PathLike, name: str,
            models_dir: str | os.PathLike = MODELS_DIR, face_crop: dict | None = None,
            blur_candidates: tuple[float, ...] = BLUR_CANDIDATES) -> Path:
    """Export a run's best model to ``models_dir/NAME.keras`` and write its card, history and evaluation.

    The input blur (among ``blur_candidates``) is chosen and the temperature fitted on the validation
    (PublicTest) split; the figures are measured there.
    """
    run_dir, models_dir = Path(run_dir), Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    dest = models_dir / f"{name}.keras"
    export_model(run_dir / BEST_MODEL, dest)
    shutil.copyfile(run_dir / HISTORY, history_path(dest))
    training = training_summary(run_dir)
    scheme = LabelScheme.from_dict(json.loads((run_dir / TRAINING_JSON).read_text())["scheme"])
    provenance = Provenance(architecture=training["architecture"], training=training,
                            tta=tta_settings(int(training["config"].get("crop", 0))),
                            regenerate=publish_command(run_dir, data, name, blur_candidates))
    return measure_and_write_card(dest, data, scheme, provenance, face_crop, blur_candidates)


def publish_command(run_dir: Path, data: str | os.PathLike, name: str, blur_candidates: tuple[float, ...]) -> str:
    """The ``publish`` command line that regenerates a model, with ``--input-blur`` where the sigmas
    tried were not the default ones (so the regenerated model keeps the same choice)."""
    command = f"python -m fer_core publish --run {run_dir} --data {data} --name {name}"
    if tuple(blur_candidates) != tuple(BLUR_CANDIDATES):
        command += " --input-blur " + " ".join(f"{sigma:g}" for sigma in blur_candidates)
    return command


def publish_ensemble(member_paths: list[str | os.PathLike], data: str | os.PathLike, name: str,
                     models_dir: str | os.PathLike = MODELS_DIR, face_crop: dict | None = None,
                     tta: str = "auto", weights: str = "float32") -> Path:
    """Average published models (each with its own input blur) into one ``models_dir/NAME.keras``
    (weights stored as ``weights``: see :func:`build_ensemble`), then calibrate and measure it on the
    validation split like any published model, with the test-time augmentation :func:`ensemble_tta`
    gives it."""
    models_dir = Path(models_dir)
    members = [EmotionRecognizer(path) for path in member_paths]
    tta_card = ensemble_tta(members, tta)
    schemes = {m.model_scheme for m in members}
    if len(schemes) != 1:
        raise ValueError(f"ensemble members predict different label schemes: {sorted(s.name for s in schemes)}")
    dest = models_dir / f"{name}.keras"
    save_model(build_ensemble([m.model for m in members], name=name, weights=weights), dest)
    provenance = Provenance(
        architecture="ensemble",
        training=ENSEMBLE_TRAINING,
        tta=tta_card,
        weights=weights,
        regenerate=f"python -m fer_core ensemble {' '.join(str(p) for p in member_paths)} --data {data} "
                   f"--name {name}" + ("" if tta == "auto" else f" --tta {tta}")
                   + ("" if weights == "float32" else f" --weights {weights}"),
    )
    measure_and_write_card(dest, data, schemes.pop(), provenance, face_crop, blur_candidates=(0.0,))
    record_members(dest, [m.model_path for m in members])
    return dest


# An ensemble is not trained: its members are, and its card and history keep their records.
ENSEMBLE_TRAINING = {"command": None, "members": "the card's members give each member's epochs and its training "
                                                 "and publish commands; NAME.history.csv their curves",
                     "parameters": None}


def record_members(ensemble_path: str | os.PathLike, member_paths: list[str | os.PathLike]) -> None:
    """Keep with an ensemble what it needs of its members once their files are gone: their records in
    its card (:func:`member_summary`) and their curves in its history (:func:`write_member_histories`)."""
    card = ModelCard.load(ensemble_path)
    card.data["members"] = [member_summary(Path(path)) for path in member_paths]
    card.data["training"] = dict(ENSEMBLE_TRAINING)
    card.save()
    write_member_histories(Path(ensemble_path), [Path(path) for path in member_paths])


def write_member_histories(ensemble_path: Path, member_paths: list[Path]) -> Path | None:
    """The ensemble's ``NAME.history.csv``: every member's per-epoch rows under a first ``member``
    column (the member's card name), for the Training page to draw each member's curves. Members
    without a history add no rows; with none at all the file is removed (``None``)."""
    rows, columns = [], ["member"]
    for path in member_paths:
        history = history_path(path)
        if not history.is_file():
            continue
        with history.open(newline="") as f:
            reader = csv.DictReader(f)
            columns += [c for c in reader.fieldnames or () if c not in columns]
            rows += [{"member": ModelCard.load(path).name, **row} for row in reader]
    dest = history_path(ensemble_path)
    if not rows:
        dest.unlink(missing_ok=True)
        return None
    with dest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return dest


def remeasure(model_path: str | os.PathLike, data: str | os.PathLike, face_crop: dict | None = None) -> Path:
    """Measure a shipped model again (temperature, figures, views, evaluation files), keeping what
    its card says of its training, members and input blur: for cards written before a figure existed."""
    model_path = Path(model_path)
    card = ModelCard.load(model_path)
    if not card.is_published:
        raise ValueError(f"{model_path}: not a published model (its card has no metrics); use publish")
    kept = ("architecture", "training", "regenerate", "members", "weights", "input_blur")
    recorded = {key: card.data[key] for key in kept if key in card.data}
    provenance = Provenance(tta=tta_settings(card.tta_crop), **recorded)
    return measure_and_write_card(model_path, data, card.scheme, provenance,
                                  face_crop if face_crop is not None else card.face_crop, blur_candidates=(0.0,))


def member_summary(model_path: Path) -> dict:
    """What an ensemble's card keeps of a member, so that it stands without the member's files: its
    figures, how long it trained, and the commands that train and publish it again."""
    card = ModelCard.load(model_path)
    validation, training = card.validation, card.training
    return {"name": card.name, "file": model_path.name, "architecture": card.architecture,
            "parameters": card.parameters, "tta": card.tta,
            "validation_accuracy": validation.get("accuracy"),
            "validation_accuracy_no_tta": validation.get("accuracy_no_tta"),
            "macro_f1": validation.get("macro_f1"),
            "epochs_run": training.get("epochs_run"), "best_epoch": training.get("best_epoch"),
            "seconds_per_epoch_median": training.get("seconds_per_epoch_median"),
            "training_command": training.get("command"), "publish_command": card.data.get("regenerate")}


def view_figures(calibrated: np.ndarray, fer_labels: np.ndarray, scheme: LabelScheme) -> dict:
    """Per alternative view of the model (the smile view where the scheme allows): the decision
    threshold chosen on these faces and the accuracy it gives."""
    views = {}
    try:
        positive = project_probabilities(calibrated, scheme, SMILE)[:, 1]
    except ValueError:
        return views
    y = SMILE.map_fer(fer_labels)
    views[SMILE.name] = {**choose_threshold(positive, y), "selected_on": "PublicTest",
                         "how": "probability of happy summed from the model's classes; happy at or above "
                                "the threshold"}
    return views


@dataclass(frozen=True)
class Measurement:
    """The model's raw (uncalibrated) probabilities on the validation faces, with its card's TTA and
    without any, and the mirror image's accuracy where the card's TTA is another."""

    raw_tta: np.ndarray
    raw_plain: np.ndarray
    accuracy_hflip: float | None
    parameters: int


def validation_faces(data: str | os.PathLike, scheme: LabelScheme) -> tuple[np.ndarray, np.ndarray, FaceData]:
    """The PublicTest faces the scheme classifies: pixels, scheme class indices and the faces themselves."""
    validation = load_dataset(data, skip_bad_rows=True).data.split("PublicTest")
    y = scheme.map_fer(validation.labels)
    keep = y >= 0
    return validation.images[keep], y[keep], validation.subset(keep)


def blur_record(dest: Path, faces: np.ndarray, y: np.ndarray, provenance: Provenance,
                blur_candidates: tuple[float, ...]) -> dict:
    """The card's ``input_blur``: the one recorded when the blur is already inside the model, else
    the sigma :func:`choose_input_blur` puts in it (``dest`` is rewritten) and how it was chosen."""
    if provenance.input_blur is not None:
        return provenance.input_blur
    sigma, accuracy_by_blur = choose_input_blur(dest, faces, y, blur_candidates)
    return {
        "sigma": sigma,
        "why": "augmentation that resamples every face softens it; a light blur makes sharp faces look "
               "like what the net learned on (members of an ensemble carry their own)",
        "selected_on": "PublicTest",
        "validation_accuracy_by_sigma": accuracy_by_blur,
    }


def measure(dest: Path, faces: np.ndarray, y: np.ndarray, tta: dict) -> Measurement:
    """Classify the faces through the recognizer, as the app does (the card at ``dest`` gives the TTA)."""
    recognizer = EmotionRecognizer(dest)
    accuracy_hflip = None
    if tta["tta"] != "hflip":  # what the usual mirror-image TTA gives, for comparison
        mirrored = recognizer.raw_probabilities(faces, tta="hflip")
        accuracy_hflip = float(np.mean(mirrored.argmax(axis=1) == y))
    return Measurement(recognizer.raw_probabilities(faces, tta=True), recognizer.raw_probabilities(faces, tta=False),
                       accuracy_hflip, int(recognizer.model.count_params()))


def calibrate(raw_probabilities: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the validation :data:`CALIBRATION_OBJECTIVE`."""
    return fit_temperature(raw_probabilities, y, objective=CALIBRATION_OBJECTIVE)


def write_evaluation(dest: Path, data: str | os.PathLike, measurement: Measurement, temperature: float,
                     y: np.ndarray, validation: FaceData, scheme: LabelScheme) -> dict:
    """Write ``NAME.eval.json`` (figures with and without TTA, calibration, misclassified faces) and
    the misclassified faces' pixels beside the model; returns the evaluation."""
    calibrated = apply_temperature(measurement.raw_tta, temperature)
    figures = summarise_predictions(calibrated, y, scheme.labels)
    evaluation = {
        "split": "PublicTest",
        "data": str(data),
        "tta": figures,
        "no_tta": summarise_predictions(apply_temperature(measurement.raw_plain, temperature), y, scheme.labels),
        "calibration": {
            "temperature": temperature,
            "objective": CALIBRATION_OBJECTIVE,
            "ece_before": expected_calibration_error(measurement.raw_tta, y),
            "ece_after": figures["ece"],
            "reliability_before": reliability_bins(measurement.raw_tta, y),
            "reliability_after": reliability_bins(calibrated, y),
        },
        "misclassified": misclassified_faces(calibrated, y, validation, scheme.labels),
    }
    save_misclassified_faces(dest, validation, evaluation["misclassified"], data)
    eval_path(dest).write_text(json.dumps(evaluation, indent=1) + "\n")
    return evaluation


def validation_metrics(evaluation: dict, accuracy_hflip: float | None) -> ValidationMetrics:
    """The card's summary of the evaluation."""
    figures = evaluation["tta"]
    return ValidationMetrics(
        n=figures["n"],
        accuracy=figures["accuracy"],
        accuracy_no_tta=evaluation["no_tta"]["accuracy"],
        accuracy_hflip=accuracy_hflip,
        macro_f1=figures["macro_f1"],
        recall={k: v["recall"] for k, v in figures["per_class"].items()},
        ece_before_calibration=evaluation["calibration"]["ece_before"],
        ece=figures["ece"],
    )


def preprocessing_text(blur_sigma: float, crop: int) -> str:
    """What the model does to a face before its first convolution, in words."""
    return ("48×48 grayscale face crop, raw 0–255 values; inside the model: "
            + (f"a 3×3 Gaussian blur (sigma {blur_sigma:g}), then " if blur_sigma else "")
            + (f"the central {48 - 2 * crop}×{48 - 2 * crop} pixels, then " if crop else "")
            + "rescaling to 0–1")


def measure_and_write_card(dest: Path, data: str | os.PathLike, scheme: LabelScheme, provenance: Provenance,
                           face_crop: dict | None, blur_candidates: tuple[float, ...]) -> Path:
    """Choose the input blur, fit the temperature, measure the model at ``dest`` on the validation
    (PublicTest) faces and write its card, evaluation and misclassified faces; then export it to
    ONNX, which ships only if it matches on the same faces
    (:class:`fer_core.training.export.ExportRejected` otherwise)."""
    tta = provenance.tta
    # A first card, so that the recognizer measures with the model's scheme and TTA.
    ModelCard(dest, {"name": dest.stem, "scheme": scheme.to_dict(), "temperature": 1.0, **tta}).save()
    faces, y, validation = validation_faces(data, scheme)
    input_blur = blur_record(dest, faces, y, provenance, blur_candidates)
    measurement = measure(dest, faces, y, tta)
    temperature = calibrate(measurement.raw_tta, y)
    evaluation = write_evaluation(dest, data, measurement, temperature, y, validation, scheme)
    crop = tta.get("tta_crop", 0)
    PublishedCard(
        name=dest.stem,
        scheme=scheme.to_dict(),
        temperature=temperature,
        tta=tta["tta"],
        tta_crop=tta.get("tta_crop"),
        model_file=dest.name,
        architecture=provenance.architecture,
        parameters=measurement.parameters,
        size_mb=round(dest.stat().st_size / 2**20, 2),
        labels=list(scheme.labels),
        input=dict(FACE_INPUT),
        preprocessing=preprocessing_text(input_blur["sigma"], 0 if provenance.architecture == "ensemble" else crop),
        input_blur=input_blur,
        tta_description=TTA_MODES[tta["tta"]] + (f" ({48 - 2 * crop} pixels)" if crop else ""),
        face_crop=face_crop,
        members=provenance.members,
        weights=provenance.weights,
        training=provenance.training,
        metrics=validation_metrics(evaluation, measurement.accuracy_hflip),
        views=view_figures(apply_temperature(measurement.raw_tta, temperature), validation.labels, scheme),
        regenerate=provenance.regenerate,
    ).save(dest)
    export_published(dest, data)
    return dest
