"""EmotionRecognizer: a model plus its card; classifies 48×48 gray faces in batches.

This is the one classification path of the project: the evaluation CLI, the upload page, the live
camera, the video analysis and the predict CLI all call :meth:`EmotionRecognizer.predict`.
"""

from __future__ import annotations

import copy
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_core.data import FACE_SIZE
from fer_core.inference.exported import OnnxClassifier, float32_copy, runtime_version, stores_half_weights
from fer_core.labels import LabelScheme, get_scheme, projection_matrix
from fer_core.model_card import ModelCard, default_model_path
from fer_core.tensorflow_start import import_tensorflow

if TYPE_CHECKING:
    import keras


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale probabilities as ``softmax(log p / T)``; T > 1 softens, T = 1 leaves them as they are."""
    if temperature == 1.0:
        return probs
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def shift_binary_threshold(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Two-class probabilities moved so that ``p[:, 1] >= threshold`` becomes ``p'[:, 1] >= 0.5``
    (the logit shifted by ``logit(threshold)``): the top label then follows the chosen threshold."""
    if threshold == 0.5:
        return probs
    p = np.clip(probs[:, 1], 1e-7, 1 - 1e-7)
    shifted = 1 / (1 + np.exp(-(np.log(p / (1 - p)) - np.log(threshold / (1 - threshold)))))
    return np.stack([1 - shifted, shifted], axis=1).astype(probs.dtype)


def tta_views(faces: np.ndarray, mode: str, crop: int = 0) -> np.ndarray:
    """The views test-time augmentation classifies, ``(V, N, 48, 48, 1)``, for faces ``(N, 48, 48, 1)``.

    ``none``: the faces alone. ``hflip``: each face and its mirror image. ``ten_crop``: the face
    shifted by ``(dy, dx)`` in ``{0, ±crop}²`` corners and centre, each also mirrored. A model
    trained with ``crop`` (its centre crop inside, see :mod:`fer_core.training.architectures`) sees
    in a shifted face exactly a corner crop of the original, so the model file keeps taking whole
    48×48 faces; the border that enters (the edge pixels repeated) lies outside its crop.
    """
    if mode == "none":
        return faces[None]
    if mode == "hflip":
        return np.stack([faces, faces[:, :, ::-1]])
    if mode != "ten_crop" or crop < 1:
        raise ValueError(f"unknown test-time augmentation {mode!r} (crop {crop}); "
                         "choose none, hflip, or ten_crop with a crop of 1 pixel or more")
    size = faces.shape[1]
    padded = np.pad(faces, ((0, 0), (crop, crop), (crop, crop), (0, 0)), mode="edge")
    offsets = ((0, 0), (-crop, -crop), (-crop, crop), (crop, -crop), (crop, crop))
    shifted = [padded[:, crop + dy : crop + dy + size, crop + dx : crop + dx + size] for dy, dx in offsets]
    return np.stack(shifted + [view[:, :, ::-1] for view in shifted])


class TopLabel:
    """``label`` and ``confidence`` of a result holding ``probabilities`` per label."""

    probabilities: dict[str, float]

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]


@dataclass(frozen=True)
class Prediction(TopLabel):
    """One face's result: probabilities per label (in scheme order) and the top label."""

    probabilities: dict[str, float]


class KerasModel:
    """The ``.keras`` network, loaded on first use (``safe_mode=True``) and compiled into one traced
    forward pass; shared by a recognizer and its views, safe to share between threads."""

    def __init__(self, path: Path, model: keras.Model | None = None):
        self.path = path
        self._model = model
        self._forward = None
        self._lock = threading.Lock()

    @property
    def model(self) -> keras.Model:
        with self._lock:
            if self._model is None:
                import_tensorflow()  # muted on the command line (its start-up lines)
                import keras

                model = keras.models.load_model(self.path, compile=False, safe_mode=True)
                # float16 is how such a file stores its weights, not how it should compute: CPUs
                # emulate float16 arithmetic, slowly
                self._model = float32_copy(model) if stores_half_weights(model) else model
            return self._model

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        model = self.model
        with self._lock:
            if self._forward is None:
                self._forward = compile_forward(model)
            return self._forward(faces).numpy()


def compile_forward(model: keras.Model):
    """``model`` as one traced function of float32 faces ``(N, 48, 48, 1)`` (any N) → float32 probabilities."""
    import tensorflow as tf

    signature = [tf.TensorSpec([None, FACE_SIZE, FACE_SIZE, 1], tf.float32)]

    @tf.function(input_signature=signature, reduce_retracing=True)
    def forward(x):
        return tf.cast(model(x, training=False), tf.float32)

    return forward


def exported_classifier(card: ModelCard):
    """The ONNX Runtime session of the card's exported model, or ``None`` where the card records no
    passed equivalence check, the file is missing or ONNX Runtime is not installed; a file ONNX
    Runtime cannot load is reported (a warning naming it) and Keras classifies instead."""
    path = card.exported_model_path
    if path is None or runtime_version() is None:
        return None
    try:
        return OnnxClassifier(path)
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        warnings.warn(f"{path}: ONNX Runtime cannot load it ({exc}); classifying with the .keras model",
                      stacklevel=2)
        return None


class EmotionRecognizer:
    """A model and its card; safe to share between threads.

    Faces are classified by the exported model (ONNX Runtime) when the card vouches for it, else by
    the ``.keras`` model; the Keras model (Grad-CAM, feature maps, publishing) is loaded on first use.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, batch_size: int = 256,
                 model: keras.Model | None = None, use_export: bool = True):
        """``model`` replaces the network in ``model_path`` (whose card still applies): publishing
        uses it to compare variants of a model before saving one. ``use_export=False`` (or a
        ``model``) classifies with Keras even where an exported model is shipped."""
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.is_file():
            raise FileNotFoundError(f"{self.model_path}: no such model file")
        self.card = ModelCard.load(self.model_path)
        self.model_scheme: LabelScheme = self.card.scheme
        self.scheme = self.model_scheme
        self.labels: tuple[str, ...] = self.scheme.labels
        self._projection: np.ndarray | None = None
        self.view_threshold = 0.5
        self._views: dict[str, EmotionRecognizer] = {}
        self.temperature = self.card.temperature
        self.batch_size = batch_size
        self._keras = KerasModel(self.model_path, model)
        self._exported = exported_classifier(self.card) if use_export and model is None else None
        if self._exported is None:
            self._keras.model  # noqa: B018 - a bad .keras file fails here, not on the first face

    @property
    def model(self) -> keras.Model:
        """The Keras model (loaded on first use where the exported model classifies)."""
        return self._keras.model

    @property
    def backend(self) -> str:
        """What classifies the faces: the exported model's runtime and file, or Keras."""
        return self._exported.description if self._exported is not None else "keras"

    def raw_probabilities(self, faces: np.ndarray, tta: bool | str = True) -> np.ndarray:
        """Model probabilities ``(N, n_labels)`` for uint8 faces ``(N, 48, 48)``, before calibration.

        With ``tta`` the probabilities are the mean over the views of the card's test-time
        augmentation (:func:`tta_views`: the mirror image, or ten crops); a mode's name
        (``"hflip"``) uses that one instead.
        """
        faces = np.asarray(faces)
        if faces.ndim == 2:
            faces = faces[None]
        if faces.shape[1:] != (FACE_SIZE, FACE_SIZE):
            raise ValueError(f"faces must be (N, {FACE_SIZE}, {FACE_SIZE}), got {faces.shape}")
        if len(faces) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        x = faces.astype(np.float32)[..., None]
        mode = self.card.tta if tta is True else tta
        out = []
        for start in range(0, len(x), self.batch_size):
            batch = x[start : start + self.batch_size]
            if not mode or mode == "none":
                out.append((self._exported or self._keras)(batch))
                continue
            views = tta_views(batch, mode, self.card.tta_crop)
            probs = (self._exported or self._keras)(views.reshape(-1, *batch.shape[1:]))
            out.append(probs.reshape(len(views), len(batch), -1).mean(axis=0))
        return np.concatenate(out)

    def predict_proba(self, faces: np.ndarray, tta: bool = True) -> np.ndarray:
        """Calibrated probabilities ``(N, n_labels)`` (the card's temperature applied), in the
        view's classes when the recognizer is a :meth:`for_scheme` view."""
        probs = apply_temperature(self.raw_probabilities(faces, tta), self.temperature)
        return self.to_view(probs)

    def to_view(self, probs: np.ndarray) -> np.ndarray:
        """Calibrated model probabilities turned into the view's classes (unchanged without a view)."""
        if self._projection is None:
            return probs
        return shift_binary_threshold(probs @ self._projection, self.view_threshold) \
            if self.scheme.n_classes == 2 else probs @ self._projection

    def for_scheme(self, spec: str | None) -> EmotionRecognizer:
        """This recognizer seen through another label scheme (e.g. ``smile``): the same model, its
        probabilities summed into the scheme's classes; a two-class view decides at the threshold
        the card's ``views`` record (chosen on validation by ``publish``), else at 0.5."""
        if not spec or get_scheme(spec) == self.model_scheme:
            return self
        target = get_scheme(spec)
        if target.name in self._views:  # one view per scheme: pages compare recognizers by identity
            return self._views[target.name]
        view = self._views[target.name] = copy.copy(self)
        view.scheme, view.labels = target, target.labels
        view._projection = projection_matrix(self.model_scheme, target)
        view.view_threshold = self.card.view_threshold(target.name)
        return view

    def predict(self, faces: np.ndarray, tta: bool = True) -> list[Prediction]:
        """One :class:`Prediction` per face."""
        probs = self.predict_proba(faces, tta)
        return [Prediction(dict(zip(self.labels, map(float, row)))) for row in probs]
