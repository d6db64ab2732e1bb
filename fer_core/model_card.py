"""Model cards: the JSON file beside each ``.keras`` model (same stem) that says how to use it.

A card holds the label scheme, the input size and preprocessing, the test-time augmentation, the
temperature for calibrated probabilities, how the model was trained and what it measured.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

from fer_core.labels import FER7, LabelScheme
from fer_core.model_format import FACE_MARGINS, MAX_CROP

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / "models"
# Two shipped models: the accurate one for photos, videos, explanations and the CLIs, and a fast
# one for the live camera, where every frame counts.
DEFAULT_MODEL_NAME = "vgg_ensemble6w_fer7.keras"
FAST_MODEL_NAME = "vgg_compact_crop4_e80_fer7.keras"
# Test-time augmentation recorded in a card: the face and its mirror image, ten crops (the centre
# and four corner crops of ``tta_crop`` pixels, each also mirrored) for models trained on crops, or
# none (an ensemble whose members' average does the work views would, at a frame's time budget).
TTA_MODES = {"hflip": "average of the face and its mirror image",
             "ten_crop": "average of ten crops: the centre and the four corners, each also mirrored",
             "none": "one view: the face as it is"}
# What `ensemble --tta` takes: auto (ten crops when every member shares its crop, else the mirror image)
# or one of the modes an ensemble of any members can use.
ENSEMBLE_TTA = ("auto", "hflip", "none")


def default_model_path() -> Path:
    """The model the app and CLIs use unless told otherwise: ``$FER_MODEL``, else the shipped accurate
    model (the fast one where the accurate one is absent)."""
    if "FER_MODEL" in os.environ:
        return Path(os.environ["FER_MODEL"])
    accurate = MODELS_DIR / DEFAULT_MODEL_NAME
    return accurate if accurate.is_file() else MODELS_DIR / FAST_MODEL_NAME


def fast_model_path() -> Path:
    """The live camera's default: ``$FER_FAST_MODEL``, else the shipped fast model, else
    :func:`default_model_path`."""
    if "FER_FAST_MODEL" in os.environ:
        return Path(os.environ["FER_FAST_MODEL"])
    fast = MODELS_DIR / FAST_MODEL_NAME
    return fast if fast.is_file() and "FER_MODEL" not in os.environ else default_model_path()


def card_path(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_suffix(".json")


def history_path(model_path: str | os.PathLike) -> Path:
    """The model's training history (epochs × metrics) beside it."""
    return Path(model_path).with_suffix(".history.csv")


def eval_path(model_path: str | os.PathLike) -> Path:
    """The model's full evaluation (confusion matrix, reports) beside it."""
    return Path(model_path).with_suffix(".eval.json")


def misclassified_faces_path(model_path: str | os.PathLike) -> Path:
    """The validation faces the model got wrong, beside it."""
    return Path(model_path).with_suffix(".misclassified.npz")


def exported_model_path(model_path: str | os.PathLike) -> Path:
    """The model exported for the CPU inference runtime (ONNX), beside it."""
    return Path(model_path).with_suffix(".onnx")


@dataclass(frozen=True)
class ExportRecord:
    """The exported model a card ships and the equivalence check it passed against the ``.keras``
    file (the source of truth), both run on every validation face and its mirror image.

    ``tolerance`` bounds the largest probability difference for a ``float32`` export, and the
    accuracy difference (a fraction) for an ``int8`` one, whose probabilities move more but whose
    decisions must not: with the mirror average (``accuracy_*``, as test-time augmentation
    predicts) and on the faces alone (``accuracy_*_unmirrored``, as a model without it predicts).
    Cards written before the second pair was recorded leave it out (``None``).
    """

    file: str
    runtime: str
    runtime_version: str
    precision: str
    split: str
    n: int
    max_abs_diff: float
    tolerance: float
    accuracy_keras: float
    accuracy_exported: float
    date: str
    accuracy_keras_unmirrored: float | None = None
    accuracy_exported_unmirrored: float | None = None

    @property
    def accuracy_gaps(self) -> list[float]:
        """How far the export's accuracy is from the ``.keras`` model's, in each view recorded."""
        pairs = [(self.accuracy_keras, self.accuracy_exported),
                 (self.accuracy_keras_unmirrored, self.accuracy_exported_unmirrored)]
        return [abs(exported - keras) for keras, exported in pairs if keras is not None and exported is not None]

    @property
    def passed(self) -> bool:
        if self.precision == "int8":
            return max(self.accuracy_gaps) <= self.tolerance
        return self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "export") -> ExportRecord:
        """Raise ``ValueError`` naming the field that is missing or of the wrong type."""
        values = {}
        for field in fields(cls):
            if field.name not in data:
                if field.default is MISSING:
                    raise ValueError(f"{where}: no {field.name!r}")
                continue
            type_name = field.type.removesuffix(" | None")
            value, kind = data[field.name], {"str": str, "int": int, "float": (int, float)}[type_name]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ValueError(f"{where}.{field.name}: expected {type_name}, got {value!r}")
            values[field.name] = float(value) if type_name == "float" else value
        return cls(**values)


# What a published model takes, whatever its architecture: the recognizer passes it such faces.
FACE_INPUT = {"shape": [48, 48, 1], "dtype": "uint8 gray, 0-255", "color": "grayscale"}


@dataclass(frozen=True, kw_only=True)
class ValidationMetrics:
    """A published model's figures on the validation (PublicTest) faces, with the card's TTA unless
    named otherwise; ``accuracy_hflip`` (the mirror image alone) only for a card whose TTA is not it."""

    split: str = "PublicTest"
    n: int
    accuracy: float
    accuracy_no_tta: float
    accuracy_hflip: float | None = None
    macro_f1: float
    recall: dict[str, float]
    ece_before_calibration: float
    ece: float


# Fields a published card leaves out, rather than writing null, when they do not apply.
_ABSENT_WHEN_NONE = ("tta_crop", "accuracy_hflip", "members", "weights")


@dataclass(frozen=True, kw_only=True)
class PublishedCard:
    """Everything ``publish`` (and ``ensemble``, ``remeasure``) writes in a card, as typed fields in
    the file's order; :meth:`to_dict` gives the JSON (``export`` adds its record afterwards), which
    :class:`ModelCard` validates and reads."""

    name: str
    scheme: dict
    temperature: float
    tta: str
    tta_crop: int | None = None  # pixels per side of the ten crops
    model_file: str
    architecture: str
    parameters: int
    size_mb: float
    labels: list[str]
    input: dict  # FACE_INPUT
    preprocessing: str
    input_blur: dict
    tta_description: str
    face_crop: dict | None
    members: list[dict] | None = None  # an ensemble's
    weights: str | None = None  # an ensemble's stored weight dtype
    training: dict
    metrics: ValidationMetrics
    views: dict
    regenerate: str

    def to_dict(self) -> dict:
        card = asdict(self)
        card["metrics"] = {"validation": _without_absent(card["metrics"])}
        return _without_absent(card)

    def save(self, model_path: str | os.PathLike) -> Path:
        """Validate and write the card beside ``model_path`` (see :meth:`ModelCard.save`)."""
        return ModelCard(Path(model_path), self.to_dict()).save()


def _without_absent(values: dict) -> dict:
    return {key: value for key, value in values.items() if not (key in _ABSENT_WHEN_NONE and value is None)}


@dataclass
class ModelCard:
    """The card beside a model: the only way the project reads or writes one.

    ``data`` is the JSON as ``publish`` writes it (the file format); readers use the properties,
    which give the defaults a card may leave out.
    """

    model_path: Path
    data: dict

    @classmethod
    def load(cls, model_path: str | os.PathLike) -> ModelCard:
        """The card beside a model. A training run's ``best.keras`` has no card yet: its scheme comes
        from the run's ``training.json``; failing that, FER2013's 7 classes are assumed."""
        model_path = Path(model_path)
        path = card_path(model_path)
        if path.is_file():
            return cls(model_path, json.loads(path.read_text()))
        run_info = model_path.parent / "training.json"
        scheme = json.loads(run_info.read_text())["scheme"] if run_info.is_file() else FER7.to_dict()
        return cls(model_path, {"name": model_path.stem, "scheme": scheme, "temperature": 1.0, "tta": "hflip"})

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field when the card cannot describe a usable model."""
        for key in ("name", "scheme"):
            if key not in self.data:
                raise ValueError(f"{self.path}: the card has no {key!r}")
        scheme = self.scheme
        if len(scheme.fer_to_class) != len(FER7.labels) or max(scheme.fer_to_class) >= scheme.n_classes:
            raise ValueError(f"{self.path}: scheme.fer_to_class does not map FER2013's 7 labels onto its classes")
        if not self.temperature > 0:
            raise ValueError(f"{self.path}: temperature must be positive, got {self.temperature}")
        if self.tta not in TTA_MODES:
            raise ValueError(f"{self.path}: tta must be one of {', '.join(TTA_MODES)}, got {self.tta!r}")
        crop = self.data.get("tta_crop", 0)
        if isinstance(crop, bool) or not isinstance(crop, int) or not 0 <= crop <= MAX_CROP \
                or (self.tta == "ten_crop") != (crop > 0):
            raise ValueError(f"{self.path}: tta_crop must be 1 to {MAX_CROP} pixels for ten_crop and 0 "
                             f"(or absent) otherwise, got {crop!r}")
        if "export" in self.data:
            export = ExportRecord.from_dict(self.data["export"], where=f"{self.path}: export")
            if export.precision not in ("float32", "int8"):
                raise ValueError(f"{self.path}: export.precision must be float32 or int8, got {export.precision!r}")
            if Path(export.file).name != export.file or not export.file.endswith(".onnx"):
                raise ValueError(f"{self.path}: export.file must be an .onnx file name beside the model, "
                                 f"got {export.file!r}")

    def save(self) -> Path:
        """Validate, then write atomically: a reader never sees half a card."""
        self.validate()
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        os.replace(tmp, self.path)
        return self.path

    @property
    def path(self) -> Path:
        return card_path(self.model_path)

    @property
    def history_path(self) -> Path:
        return history_path(self.model_path)

    @property
    def eval_path(self) -> Path:
        return eval_path(self.model_path)

    @property
    def misclassified_faces_path(self) -> Path:
        return misclassified_faces_path(self.model_path)

    @property
    def name(self) -> str:
        return self.data.get("name", self.model_path.stem)

    @property
    def scheme(self) -> LabelScheme:
        return LabelScheme.from_dict(self.data["scheme"])

    @property
    def labels(self) -> tuple[str, ...]:
        return self.scheme.labels

    @property
    def temperature(self) -> float:
        return float(self.data.get("temperature", 1.0))

    @property
    def tta(self) -> str:
        """The test-time augmentation the model is measured and used with (see :data:`TTA_MODES`)."""
        return self.data.get("tta", "hflip")

    @property
    def tta_crop(self) -> int:
        """Pixels per side of the ten-crop TTA's crops (0 for ``hflip``)."""
        return int(self.data.get("tta_crop", 0))

    @property
    def is_published(self) -> bool:
        """Whether ``publish`` measured the model (an unpublished run's card has no metrics)."""
        return "metrics" in self.data

    @property
    def validation(self) -> dict:
        """The validation figures (accuracy, accuracy_no_tta, macro_f1, recall, ece, …); ``{}`` if none."""
        return self.data.get("metrics", {}).get("validation", {})

    @property
    def training(self) -> dict:
        return self.data.get("training", {})

    @property
    def architecture(self) -> str | None:
        return self.data.get("architecture")

    @property
    def parameters(self) -> int | None:
        return self.data.get("parameters")

    @property
    def face_crop(self) -> dict | None:
        return self.data.get("face_crop")

    @property
    def crop_margin(self) -> float:
        """The crop margin for the Haar cascade's boxes (the pipeline's default when not recorded)."""
        return self.crop_margin_for("haar")

    def crop_margin_for(self, detector: str) -> float:
        """The crop margin for boxes of ``detector``: the card's ``face_crop.margins``; a card written
        before detectors were a choice has only ``margin``, for Haar; otherwise the pipeline's
        default for that detector."""
        face_crop = self.face_crop or {}
        margins = face_crop.get("margins", {})
        if detector in margins:
            return float(margins[detector])
        if detector == "haar" and "margin" in face_crop:
            return float(face_crop["margin"])
        return float(FACE_MARGINS.get(detector, FACE_MARGINS["haar"]))

    @property
    def export(self) -> ExportRecord | None:
        """The exported model and its equivalence check (``None`` for cards without an export)."""
        return ExportRecord.from_dict(self.data["export"], where=f"{self.path}: export") \
            if "export" in self.data else None

    @property
    def exported_model_path(self) -> Path | None:
        """The exported file the card vouches for: recorded, passed its check and present."""
        export = self.export
        if export is None or not export.passed:
            return None
        path = self.model_path.with_name(export.file)
        return path if path.is_file() else None

    def view_threshold(self, scheme_name: str) -> float:
        """The decision threshold ``publish`` chose on validation for a two-class view, else 0.5."""
        return float(self.data.get("views", {}).get(scheme_name, {}).get("threshold", 0.5))


def shipped_models() -> list[Path]:
    """The models the product ships in ``models/`` (accurate, then fast), those present."""
    return [path for path in (MODELS_DIR / DEFAULT_MODEL_NAME, MODELS_DIR / FAST_MODEL_NAME) if path.is_file()]


def models_dir() -> Path:
    """Where the app looks for models: ``$FER_MODELS_DIR`` or the shipped ``models/``."""
    return Path(os.environ.get("FER_MODELS_DIR", MODELS_DIR))


def list_models(folder: str | os.PathLike | None = None) -> list[Path]:
    """``.keras`` files in a folder (default :func:`models_dir`): the accurate and the fast shipped
    models first, then any other (a user's own) by name."""
    folder = Path(folder) if folder is not None else models_dir()
    if not folder.is_dir():
        return []
    shipped_first = (DEFAULT_MODEL_NAME, FAST_MODEL_NAME)
    return sorted(folder.glob("*.keras"),
                  key=lambda p: (shipped_first.index(p.name) if p.name in shipped_first else 2, p.name))


# What a picker calls each shipped model, by file name; any other model goes by its file's stem.
MODEL_ROLES = {DEFAULT_MODEL_NAME: "Accurate", FAST_MODEL_NAME: "Fast"}


def model_label(model_path: str | os.PathLike) -> str:
    """How a person picks a model: ``Accurate — ensemble of 6, 71.9 %`` or ``Fast — 1.2 M parameters,
    69.6 %`` for the shipped ones (role, size, validation accuracy from the card), ``NAME — 65.0 %``
    (or the bare name without a measured card) for anyone else's."""
    model_path = Path(model_path)
    try:
        card = ModelCard.load(model_path)
    except (OSError, ValueError):  # an unreadable card: the picker still lists the file
        return model_path.stem
    accuracy = card.validation.get("accuracy")
    measured = "" if accuracy is None else f"{100 * accuracy:.1f} %"
    role = MODEL_ROLES.get(model_path.name)
    if role is None:
        return f"{model_path.stem} — {measured}" if measured else model_path.stem
    return f"{role} — " + ", ".join(part for part in (model_size(card), measured) if part)


def model_size(card: ModelCard) -> str:
    """``ensemble of N`` for an ensemble, ``1.2 M parameters`` otherwise; empty when the card says neither."""
    members = card.data.get("members")
    if members:
        return f"ensemble of {len(members)}"
    return "" if card.parameters is None else f"{card.parameters / 1e6:.1f} M parameters"
