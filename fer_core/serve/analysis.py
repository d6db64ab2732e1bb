"""What every engine of the HTTP API does with a request's images: the models it may use, decoding under
the request's budgets (:func:`fer_core.inference.images.decode_image`), and the steps of
:mod:`fer_core.inference.pipeline` (detect → crop, then one classification for all the request's faces →
one result row per face).

The classification step is handed in as a coroutine (:data:`Classify`): the local engine runs the
recognizer in a thread, one request's faces as one batch; the Ray Serve engine passes a
``@serve.batch`` method, so that the faces of concurrent requests share one call. Everything else is
the same code whatever the engine, and the per-face rows are :func:`fer_core.inference.results.face_record`,
the rows of ``predict --jsonl``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from fer_core.labels import get_scheme, projection_matrix
from fer_core.model_card import ModelCard, default_model_path, fast_model_path
from fer_core.settings import AnalysisSettings

if TYPE_CHECKING:
    from fer_core.inference.pipeline import FaceCrops
    from fer_core.inference.recognizer import EmotionRecognizer

log = logging.getLogger("fer_core.serve")

ModelAlias = Literal["accurate", "fast"]
INTERNAL_ERROR = "internal error while analysing this input (logged by the server)"


def model_paths() -> dict[str, Path]:
    """The shipped models by the name a request uses: ``accurate`` (:func:`default_model_path`) and
    ``fast`` (:func:`fast_model_path`); both honour ``$FER_MODEL`` and ``$FER_FAST_MODEL``."""
    return {"accurate": default_model_path(), "fast": fast_model_path()}


class RequestError(ValueError):
    """A request the API refuses as a whole; ``status`` is the HTTP status, ``code`` a stable name."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class ImageInput:
    """One image of a request: the name it was sent under and its encoded bytes."""

    name: str
    data: bytes


@dataclass
class ImageOutcome:
    """One input's answer: its faces (``face_record`` rows), or why it was not analysed and the HTTP
    status that refusing it alone carries (413 over a budget, 422 unusable, 500 our fault)."""

    name: str
    faces: list[dict] = field(default_factory=list)
    error: str | None = None
    status: int = 200

    def record(self) -> dict:
        """``{"name", "status": "ok"|"error", "error", "faces"}``: one item of a response."""
        return {"name": self.name, "status": "ok" if self.error is None else "error", "error": self.error,
                "faces": self.faces}


@dataclass(frozen=True)
class Prepared:
    """An image after the detect and crop steps, waiting for the classifier."""

    name: str
    crops: FaceCrops


Classify = Callable[[np.ndarray, AnalysisSettings], Awaitable[np.ndarray]]


def refusal(name: str, status: int, message: str) -> ImageOutcome:
    return ImageOutcome(name, error=message, status=status)


class Analyzer:
    """The shipped models, loaded once, and the steps of an analysis around the classifier.

    Thread-safe: the recognizers and the detectors may be shared between threads."""

    def __init__(self, paths: dict[str, Path] | None = None):
        self.paths = {alias: Path(p).resolve() for alias, p in (paths or model_paths()).items()}
        self.recognizers: dict[Path, EmotionRecognizer] = {}

    def load(self) -> None:
        """Load every model (ONNX Runtime where the card vouches for the export, else Keras)."""
        from fer_core.inference.recognizer import EmotionRecognizer

        for path in self.paths.values():
            if path not in self.recognizers:
                self.recognizers[path] = EmotionRecognizer(path)

    @property
    def ready(self) -> bool:
        return all(path in self.recognizers for path in self.paths.values())

    def recognizer(self, settings: AnalysisSettings) -> EmotionRecognizer:
        """The loaded recognizer of ``settings.model``, seen through ``settings.scheme``."""
        from fer_core.inference.pipeline import recognizer_for

        return recognizer_for(settings, load=lambda model: self.recognizers[Path(model)])

    def prepare(self, item: ImageInput, settings: AnalysisSettings, whole_image: bool = False,
                max_faces: int | None = None) -> Prepared | ImageOutcome:
        """Decoding (bytes and pixels checked against the budgets first, the pixels from the header),
        detection and cropping of one image; an outcome when it is refused."""
        from fer_core.inference.images import ImageError, ImageTooLarge, decode_image, failure_reason
        from fer_core.inference.pipeline import crop_image_faces, settings_detector

        try:
            image = decode_image(item.data, item.name, settings.budgets)
            detector = None if whole_image else settings_detector(settings, "photo")
            return Prepared(item.name, crop_image_faces(image, self.recognizer(settings), detector,
                                                        whole_image=whole_image, max_faces=max_faces))
        except ImageTooLarge as exc:
            return refusal(item.name, 413, failure_reason(item.name, exc))
        except ImageError as exc:
            return refusal(item.name, 422, failure_reason(item.name, exc))
        except Exception:  # noqa: BLE001 - one input's fault must not cost the others their answers
            log.exception("analysing %r", item.name)
            return refusal(item.name, 500, INTERNAL_ERROR)

    def classify_now(self, faces: np.ndarray, settings: AnalysisSettings) -> np.ndarray:
        """Calibrated probabilities of 48×48 faces, in one recognizer call (the local engine's classifier)."""
        return self.recognizer(settings).predict_proba(faces, tta=settings.tta)

    async def analyze(self, items: Sequence[ImageInput], settings: AnalysisSettings, classify: Classify,
                      whole_image: bool = False, max_faces: int | None = None) -> list[ImageOutcome]:
        """Every image's faces (each image whole with ``whole_image``), all classified in one ``classify`` call."""
        prepared = await asyncio.to_thread(
            lambda: [self.prepare(item, settings, whole_image, max_faces) for item in items])
        return await self.finish(prepared, settings, classify)

    async def classify_arrays(self, faces: np.ndarray, settings: AnalysisSettings,
                              classify: Classify) -> list[ImageOutcome]:
        """Faces sent as 48×48 arrays, each its own input named ``faces[i]``, in one ``classify`` call."""
        from fer_core.inference.pipeline import FaceCrops

        prepared = [Prepared(f"faces[{i}]", FaceCrops([(0, 0, 48, 48)], face[None])) for i, face in enumerate(faces)]
        return await self.finish(prepared, settings, classify)

    async def finish(self, prepared: Sequence[Prepared | ImageOutcome], settings: AnalysisSettings,
                     classify: Classify) -> list[ImageOutcome]:
        """Classify the faces of every prepared image in one ``classify`` call; one outcome per input."""
        from fer_core.inference.pipeline import face_results
        from fer_core.inference.results import face_record

        labels = self.recognizer(settings).labels
        faces = [p.crops.faces for p in prepared if isinstance(p, Prepared)]
        total = sum(len(f) for f in faces)
        probabilities = await classify(np.concatenate(faces), settings) if total else np.zeros((0, len(labels)))
        outcomes, start = [], 0
        for item in prepared:
            if isinstance(item, ImageOutcome):
                outcomes.append(item)
                continue
            rows = probabilities[start : start + len(item.crops.boxes)]
            start += len(item.crops.boxes)
            results = face_results(item.crops.boxes, rows, labels)
            outcomes.append(ImageOutcome(item.name, [face_record(r) for r in results]))
        return outcomes


def scheme_labels(card: ModelCard, scheme: str | None) -> tuple[str, ...]:
    """The classes a request's answer reports: the model's, or those of the label view ``scheme``;
    refused (422) when the model's classes cannot be summed into that view."""
    if not scheme:
        return card.labels
    try:
        target = get_scheme(scheme)
        projection_matrix(card.scheme, target)
    except ValueError as exc:
        raise RequestError(422, "invalid_scheme", f"scheme {scheme!r}: {exc}") from None
    return target.labels


def faces_array(faces: Sequence[Sequence[Sequence[int]]]) -> np.ndarray:
    """A batch of 48×48 gray faces (values 0-255, already validated) as ``(N, 48, 48)`` uint8."""
    return np.asarray(faces, dtype=np.uint8).reshape(len(faces), 48, 48)
