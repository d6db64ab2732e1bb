"""Label schemes: which emotions a model predicts and how FER2013's 7 labels map onto them.

Datasets always store FER2013's canonical label index (0 angry … 6 neutral). A scheme maps those
indices onto its own classes (or drops them), so training, evaluation, inference and the UI all take
their label names from one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FER_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# Folder names other emotion datasets use for the FER2013 classes (matched case-insensitively).
LABEL_ALIASES: dict[str, str] = {
    "anger": "angry",
    "angry": "angry",
    "mad": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "smile": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "calm": "neutral",
}


def canonical_label(name: str) -> str | None:
    """FER2013 label for a class name such as ``Sadness`` or ``0``; ``None`` if unknown."""
    key = name.strip().lower()
    if key.isdigit() and int(key) < len(FER_LABELS):
        return FER_LABELS[int(key)]
    return LABEL_ALIASES.get(key)


@dataclass(frozen=True)
class LabelScheme:
    """A set of output classes and the mapping from FER2013 label index to class index.

    ``fer_to_class[i]`` is the class index for FER label ``i``, or -1 when the scheme drops it.
    """

    name: str
    labels: tuple[str, ...]
    fer_to_class: tuple[int, ...]

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def map_fer(self, fer_labels: np.ndarray) -> np.ndarray:
        """Class index per FER label (-1 where the scheme has no class for it)."""
        table = np.asarray(self.fer_to_class, dtype=np.int64)
        return table[np.asarray(fer_labels, dtype=np.int64)]

    def to_dict(self) -> dict:
        return {"name": self.name, "labels": list(self.labels), "fer_to_class": list(self.fer_to_class)}

    @classmethod
    def from_dict(cls, data: dict) -> LabelScheme:
        return cls(data["name"], tuple(data["labels"]), tuple(int(i) for i in data["fer_to_class"]))


def _subset_scheme(names: list[str]) -> LabelScheme:
    labels = []
    for name in names:
        label = canonical_label(name)
        if label is None:
            raise ValueError(f"unknown emotion {name!r} in subset; known: {', '.join(FER_LABELS)}")
        if label not in labels:
            labels.append(label)
    if len(labels) < 2:
        raise ValueError("a subset scheme needs at least two emotions")
    mapping = tuple(labels.index(lab) if lab in labels else -1 for lab in FER_LABELS)
    return LabelScheme("subset:" + ",".join(labels), tuple(labels), mapping)


FER7 = LabelScheme("fer7", FER_LABELS, tuple(range(7)))
FER6 = LabelScheme(
    "fer6",
    ("angry", "fear", "happy", "sad", "surprise", "neutral"),
    (0, 0, 1, 2, 3, 4, 5),  # disgust (436 training faces) merges into angry
)
SMILE = LabelScheme("smile", ("not_happy", "happy"), (0, 0, 0, 1, 0, 0, 0))

NAMED_SCHEMES = {s.name: s for s in (FER7, FER6, SMILE)}


def get_scheme(spec: str) -> LabelScheme:
    """Scheme from a name: ``fer7``, ``fer6``, ``smile`` or ``subset:happy,sad,neutral``."""
    spec = spec.strip()
    if spec.lower() in NAMED_SCHEMES:
        return NAMED_SCHEMES[spec.lower()]
    if spec.lower().startswith("subset:"):
        return _subset_scheme([p for p in spec.split(":", 1)[1].split(",") if p.strip()])
    raise ValueError(
        f"unknown label scheme {spec!r}; use one of {', '.join(NAMED_SCHEMES)} or subset:a,b,c"
    )


def projection_matrix(source: LabelScheme, target: LabelScheme) -> np.ndarray:
    """``(source classes, target classes)`` 0/1 matrix: probabilities ``p @ M`` are the target
    scheme's, each target class the sum of the source classes whose FER labels map onto it.

    Raises ``ValueError`` when a source class holds FER labels that the target scheme splits or
    drops partly (its probability could not be assigned), or a target class has no source.
    """
    matrix = np.zeros((source.n_classes, target.n_classes), np.float32)
    for fer_label, (src, dst) in enumerate(zip(source.fer_to_class, target.fer_to_class)):
        if src < 0:
            continue
        if dst < 0:
            raise ValueError(f"{target.name} has no class for {FER_LABELS[fer_label]}, which {source.name} predicts")
        if matrix[src].any() and not matrix[src, dst]:
            raise ValueError(f"{target.name} splits {source.name}'s class {source.labels[src]}")
        matrix[src, dst] = 1.0
    missing = [target.labels[j] for j in range(target.n_classes) if not matrix[:, j].any()]
    if missing:
        raise ValueError(f"{source.name} predicts nothing that maps onto {', '.join(missing)}")
    return matrix


def project_probabilities(probs: np.ndarray, source: LabelScheme, target: LabelScheme) -> np.ndarray:
    """A model's probabilities in ``source`` order, summed into ``target``'s classes."""
    return np.asarray(probs, np.float32) @ projection_matrix(source, target)
