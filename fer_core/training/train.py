"""Training: a ``tf.data`` pipeline with augmentation and one ``fit`` with callbacks (on Keras' JAX
backend, where TensorFlow is missing: a ``PyDataset``, the augmentation inside the training step).

An output folder holds everything a run makes: ``best.keras`` (best validation accuracy, written
atomically), ``history.csv`` (one row per epoch, written as it goes), ``training.json`` (the command,
the configuration and the timing) and ``backup/`` (``BackupAndRestore``: run the same command again
and an interrupted run resumes at the epoch it stopped).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_core.data import FaceData, load_dataset
from fer_core.labels import LabelScheme, get_scheme
from fer_core.model_format import MAX_CROP
from fer_core.training.architectures import ARCHITECTURES, check_architecture
from fer_core.training.augment import AUGMENTATIONS, AffineRanges, augmentation_layer
from fer_core.training.options import option

if TYPE_CHECKING:
    import keras

    from fer_core.machine import MachineInfo

BEST_MODEL = "best.keras"
HISTORY = "history.csv"
BACKUP = "backup"
TRAINING_JSON = "training.json"
OPTIMIZERS = ("adamw", "sgd")
PRECISIONS = ("auto", "mixed_bfloat16", "float32")
# CPU flags of native bfloat16 arithmetic; without them oneDNN emulates bf16 and training is ~10× slower
# than in float32 (benchmarks/bench_training.py on an AVX2-only CPU).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass
class TrainConfig:
    """One training run. The fields declared with :func:`~fer_core.training.options.option` are the
    ``train`` command's options (and the keys a ``sweep`` grid takes), in this order."""

    data: str = option(help="Kaggle CSV or image-folder tree with Training and PublicTest faces")
    out: str = option(help="run folder (model, history, backup)")
    scheme: str = option("fer7", "fer7, fer6, smile or subset:happy,sad,neutral")
    arch: str = option("vgg_compact", choices=tuple(sorted(ARCHITECTURES)))
    width: int = option(0, "channels of the first stage of vgg_compact or resnet_preact (default 0: the "
                           "architecture's own, 32 and 40)")
    epochs: int = option(60)
    batch_size: int = option(128)
    learning_rate: float = option(2e-3, "peak learning rate (cosine decay after warm-up)", flag="--lr")
    weight_decay: float = option(0.01, "decoupled: each step shrinks the weights by lr × this (SGD at --lr 0.1 "
                                       "with 5e-4 is the usual L2 5e-4; default {default:g}, for AdamW)")
    warmup_epochs: int = option(2, "epochs of linear warm-up from a tenth of --lr (default {default})")
    # Label smoothing 0.1 left a model a temperature could not calibrate: ECE 3.2% at best
    # (benchmarks/calibration_study.py on the first shipped model, commit 48f7ead).
    label_smoothing: float = option(0.0)
    class_weights: bool = option(False, "weigh classes by inverse frequency")
    patience: int = option(15, "early-stopping patience in epochs")
    # mixed_bfloat16 where the device computes bf16 natively, else float32
    precision: str = option("auto", "auto (default): bf16 mixed precision on a GPU or a CPU with native bf16, "
                                    "else float32", choices=PRECISIONS)
    augment: bool = option(True)
    # "one_pass": flip, then rotation, zoom and shift in one bilinear resampling, with a share of the
    # faces (keep_unresampled) left on the pixel grid; "three_pass": the original three Keras layers.
    augmentation: str = option("one_pass", "one_pass: rotation, zoom and shift in a single resampling (default); "
                                           "three_pass: the Keras layers of the first shipped model",
                               choices=AUGMENTATIONS)
    keep_unresampled: float = option(0.25, "one_pass: share of faces only flipped, never resampled "
                                           "(default {default:g})")
    # probability of random erasing (one rectangle of noise) per face
    erasing: float = option(0.0, "probability of random erasing per face (e.g. 0.5)")
    # Random crops: the net centre-crops this many pixels per side and every training face is shifted
    # by up to as many, so it learns on random (48 - 2·crop)-pixel crops (0: the whole face).
    crop: int = option(0, "random crops: the net sees the central 48 - 2*CROP pixels and each training face is "
                          "shifted by up to CROP pixels; published with ten-crop test-time augmentation "
                          "(e.g. 4 for 40-pixel crops; default 0, the whole face)")
    # or "sgd" (Nesterov, momentum 0.9; weight decay as in AdamW)
    optimizer: str = option("adamw", "sgd = Nesterov momentum 0.9", choices=OPTIMIZERS)
    limit: int | None = option(None, "use at most this many faces per split (quick runs)")
    # Knowledge distillation: a published model (e.g. the ensemble) whose softened probabilities on
    # each training face are mixed into that face's target.
    teacher: str | None = option(None, "distil a published model (e.g. models/vgg_ensemble6w_fer7.keras): its "
                                       "softened probabilities are mixed into each training target")
    # share of the teacher's probabilities in the target (the rest: the label)
    teacher_weight: float = option(0.5, "share of the teacher in the target (default {default:g})")
    # softens the teacher: softmax(log p / T)
    teacher_temperature: float = option(2.0, "softens the teacher's probabilities (default {default:g})")
    seed: int = option(1)
    command: list[str] = field(default_factory=list)


def scheme_arrays(data: FaceData, scheme: LabelScheme) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 48, 48, 1)`` float32 and scheme class indices, faces outside the scheme left out."""
    y = scheme.map_fer(data.labels)
    keep = y >= 0
    return data.images[keep][..., None].astype(np.float32), y[keep]


def limit_per_split(data: FaceData, limit: int | None, seed: int) -> FaceData:
    if limit is None or len(data) <= limit:
        return data
    idx = np.random.default_rng(seed).permutation(len(data))[:limit]
    return data.subset(np.sort(idx))


def balanced_class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """``n / (k · count)`` per class: rare classes (disgust) weigh more."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return (len(y) / (n_classes * np.maximum(counts, 1))).astype(np.float32)


def augmenter(config: TrainConfig) -> keras.layers.Layer:
    """The run's augmentation layer: its recipe, then random crops where ``crop`` > 0."""
    return augmentation_layer(config.augmentation, AffineRanges(keep_unresampled=config.keep_unresampled),
                              config.erasing, config.crop, seed=config.seed)


def teacher_targets(config: TrainConfig, faces: np.ndarray, scheme: LabelScheme) -> np.ndarray:
    """The teacher's probabilities for training faces ``(N, 48, 48, 1)``, softened by
    ``teacher_temperature``: classification and the teacher's test-time augmentation (its card's:
    the mirror image or ten crops) go through the recognizer, the same path as at inference."""
    from fer_core.inference.recognizer import EmotionRecognizer, apply_temperature

    teacher = EmotionRecognizer(config.teacher, use_export=False)
    if teacher.labels != scheme.labels:
        raise ValueError(f"teacher {config.teacher} has classes {', '.join(teacher.labels)}; the run's scheme "
                         f"{scheme.name} has {', '.join(scheme.labels)}")
    probs = teacher.raw_probabilities(faces[..., 0].astype(np.uint8), tta=True)
    return apply_temperature(probs, config.teacher_temperature).astype(np.float32)


def mixed_targets(y: np.ndarray, n_classes: int, soft_targets: np.ndarray | None = None,
                  soft_weight: float = 0.0) -> np.ndarray:
    """Float32 targets ``(N, n_classes)``: the one-hot label, or with ``soft_targets`` (a teacher's
    probabilities per face) ``(1 - soft_weight) · one-hot + soft_weight · soft``: cross-entropy on
    that mix is distillation at the teacher's temperature."""
    one_hot = np.eye(n_classes, dtype=np.float32)[y]
    if soft_targets is None:
        return one_hot
    return ((1.0 - soft_weight) * one_hot + soft_weight * soft_targets).astype(np.float32)


def make_dataset(x, y, n_classes: int, batch_size: int, training: bool, augment=None,
                 class_weights: np.ndarray | None = None, seed: int = 1,
                 soft_targets: np.ndarray | None = None, soft_weight: float = 0.0):
    """``tf.data`` pipeline of ``(face, target[, sample weight])`` batches (targets: :func:`mixed_targets`);
    ``augment`` (see :func:`augmenter`) is applied to training batches in the pipeline's threads."""
    import tensorflow as tf

    columns = (x, mixed_targets(y, n_classes, soft_targets, soft_weight))
    if class_weights is not None:
        columns += (class_weights[y],)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    if training:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if training and augment is not None:
        ds = ds.map(lambda a, *rest: (augment(a, training=True), *rest), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def face_batches(x, y, n_classes: int, batch_size: int, training: bool, class_weights: np.ndarray | None = None,
                 seed: int = 1, soft_targets: np.ndarray | None = None, soft_weight: float = 0.0):
    """The same batches as :func:`make_dataset` as a ``keras.utils.PyDataset``, for backends without
    TensorFlow (JAX on the lent GPU machines), reshuffled every epoch; augmentation then runs in the model."""
    import keras

    targets = mixed_targets(y, n_classes, soft_targets, soft_weight)
    weights = None if class_weights is None else class_weights[y]

    class FaceBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(x)) if training else np.arange(len(x))

        def __len__(self):
            return int(np.ceil(len(x) / batch_size))

        def __getitem__(self, index):
            rows = self.order[index * batch_size : (index + 1) * batch_size]
            return (x[rows], targets[rows]) if weights is None else (x[rows], targets[rows], weights[rows])

        def on_epoch_end(self):
            if training:
                self.order = self.rng.permutation(len(x))

    return FaceBatches()


def _epoch_stats_callback():
    import keras

    class EpochStats(keras.callbacks.Callback):
        """Adds ``learning_rate`` and ``epoch_seconds`` to each epoch's logs (before the CSV logger)."""

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                logs["epoch_seconds"] = time.perf_counter() - self._start

    return EpochStats()


def _atomic_best_checkpoint(path: Path, best_so_far: float, network: keras.Model):
    import keras

    class AtomicBestCheckpoint(keras.callbacks.Callback):
        """Saves ``network`` (the model being fitted, less any augmentation in front of it) when
        ``val_accuracy`` improves: to a temp file, then ``os.replace``.

        What it saves is an uncompiled view of the network (the same layers and weights), so the file
        holds no optimizer state: the backup has that for resuming, and a best model is only read to
        publish or evaluate it. AdamW's two moments would triple its size.
        """

        def __init__(self):
            super().__init__()
            self.best = best_so_far
            self.uncompiled_view = keras.Model(network.input, network.output, name=network.name)

        def on_epoch_end(self, epoch, logs=None):
            score = (logs or {}).get("val_accuracy")
            if score is None or score <= self.best:
                return
            self.best = float(score)
            tmp = path.with_name(f".{path.stem}.tmp.keras")
            self.uncompiled_view.save(tmp)
            os.replace(tmp, path)

    return AtomicBestCheckpoint()


def read_history(out: str | os.PathLike) -> list[dict[str, float]]:
    """Rows of ``history.csv`` as floats (empty if absent)."""
    path = Path(out) / HISTORY
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def backed_up_epochs(out: str | os.PathLike) -> int:
    """How many epochs the run's ``BackupAndRestore`` state holds (0 without one): where a resumed
    run starts."""
    path = Path(out) / BACKUP / "training_metadata.json"
    try:
        return int(json.loads(path.read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def keep_history_before(out: str | os.PathLike, epochs: int) -> list[dict[str, float]]:
    """Drop ``history.csv`` rows of epochs the resumed run will train again (written by a run stopped
    after its history row and before its backup); returns the rows kept."""
    path = Path(out) / HISTORY
    history = read_history(out)
    kept = [row for row in history if row.get("epoch", 0) < epochs]
    if len(kept) < len(history):
        with path.open(newline="") as f:
            lines = f.read().splitlines(keepends=True)
        if not kept:
            path.unlink()
            return kept
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(lines[: 1 + len(kept)]))
        os.replace(tmp, path)
    return kept


def distribution_strategy():
    """MirroredStrategy over several GPUs under TensorFlow, else the default strategy (one device)."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def backend_gpus() -> list[str]:
    """Names of the GPUs Keras' backend (TensorFlow or JAX) computes on; empty on a CPU."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return [device.device_kind for device in jax.devices() if device.platform == "gpu"]
    import tensorflow as tf

    return [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")]


def training_device(cpu: MachineInfo) -> dict:
    """What the run trains on, for its card: Keras' backend, the GPUs it uses (by name) and the CPU."""
    import keras

    return {"backend": keras.backend.backend(), "gpus": backend_gpus(),
            "cpu": f"{cpu.cpu}, {cpu.cores} cores, flags: {' '.join(cpu.flags) or 'no AVX2'}"}


def resolve_precision(precision: str, gpus: list[str], cpu_flags: tuple[str, ...]) -> str:
    """The Keras policy a run trains with: ``auto`` is ``mixed_bfloat16`` on a GPU or on a CPU with
    native bf16 units (:data:`BF16_CPU_FLAGS`), ``float32`` elsewhere; other names are kept."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    native_bf16 = bool(gpus) or any(flag in cpu_flags for flag in BF16_CPU_FLAGS)
    return "mixed_bfloat16" if native_bf16 else "float32"


def run_is_complete(out: str | os.PathLike) -> bool:
    path = Path(out) / TRAINING_JSON
    return path.is_file() and bool(json.loads(path.read_text()).get("completed"))


def start_fresh(out: str | os.PathLike) -> None:
    """Forget a previous run in ``out`` (history, backup, best model) so training starts at epoch 1."""
    out = Path(out)
    for name in (HISTORY, TRAINING_JSON, BEST_MODEL):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / BACKUP, ignore_errors=True)


def make_optimizer(config: TrainConfig, schedule):
    """AdamW (default), or SGD with Nesterov momentum 0.9 as in the published FER2013 VGG recipes."""
    import keras

    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; choose {' or '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class RunDevice:
    """Where a run trains: Keras' backend, the record ``training.json`` keeps of the device, and the
    precision policy chosen for it."""

    backend: str
    record: dict
    precision: str


@dataclass(frozen=True)
class RunFaces:
    """A run's faces as arrays (see :func:`scheme_arrays`), with the per-face extras the options ask for."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_weights: np.ndarray | None = None  # per class (see balanced_class_weights)
    soft_targets: np.ndarray | None = None  # the teacher's probabilities per training face


def check_config(config: TrainConfig) -> None:
    """Refuse settings no run can use, before any device or data is touched."""
    if not 0.0 <= config.teacher_weight <= 1.0 or config.teacher_temperature <= 0:
        raise ValueError(f"teacher weight must be in [0, 1] and temperature > 0; got {config.teacher_weight:g} "
                         f"and {config.teacher_temperature:g}")
    if not 0 <= config.crop <= MAX_CROP:
        raise ValueError(f"crop must be 0 to {MAX_CROP} pixels per side, got {config.crop}")
    check_architecture(config.arch, config.width)


def prepare_device(config: TrainConfig) -> RunDevice:
    """The backend, device and precision of the run (``--teacher`` needs TensorFlow)."""
    from fer_core.machine import machine_info

    cpu = machine_info()
    record = training_device(cpu)
    precision = resolve_precision(config.precision, record["gpus"], cpu.flags)
    if config.teacher and record["backend"] != "tensorflow":
        raise ValueError(f"--teacher classifies the training faces with the recognizer, which needs Keras' "
                         f"TensorFlow backend; this run's is {record['backend']}")
    return RunDevice(record["backend"], record, precision)


@contextlib.contextmanager
def precision_policy(precision: str):
    """Keras' global dtype policy for the run, set back to float32 however the run ends."""
    import keras

    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def load_run_faces(config: TrainConfig, scheme: LabelScheme) -> RunFaces:
    """The Training and PublicTest (validation) faces of the scheme, at most ``limit`` per split, with
    class weights and the teacher's targets where the options ask for them."""
    data = load_dataset(config.data, skip_bad_rows=True).data
    x_train, y_train = scheme_arrays(limit_per_split(data.split("Training"), config.limit, config.seed), scheme)
    x_val, y_val = scheme_arrays(limit_per_split(data.split("PublicTest"), config.limit, config.seed), scheme)
    if len(x_train) == 0 or len(x_val) == 0:
        raise ValueError(f"{config.data}: need Training and PublicTest (validation) faces; "
                         f"found {len(x_train)} and {len(x_val)}")
    weights = balanced_class_weights(y_train, scheme.n_classes) if config.class_weights else None
    soft = teacher_targets(config, x_train, scheme) if config.teacher else None
    return RunFaces(x_train, y_train, x_val, y_val, weights, soft)


def batch_pipelines(config: TrainConfig, faces: RunFaces, n_classes: int, backend: str, augment=None):
    """The training and validation batches: ``tf.data`` with the augmentation in its threads under
    TensorFlow; a ``PyDataset`` elsewhere, the augmentation then running in the model (see
    :func:`compiled_model`)."""
    batches = {"n_classes": n_classes, "batch_size": config.batch_size}
    training = {"class_weights": faces.class_weights, "seed": config.seed, "soft_targets": faces.soft_targets,
                "soft_weight": config.teacher_weight}
    if backend == "tensorflow":
        return (make_dataset(faces.x_train, faces.y_train, training=True, augment=augment, **training, **batches),
                make_dataset(faces.x_val, faces.y_val, training=False, **batches))
    return (face_batches(faces.x_train, faces.y_train, training=True, **training, **batches),
            face_batches(faces.x_val, faces.y_val, training=False, **batches))


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int):
    """Linear warm-up from a tenth of the peak over ``warmup_epochs``, then cosine decay to 1 % of it."""
    import keras

    warmup = config.warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        config.learning_rate / 10,
        decay_steps=max(1, config.epochs * steps_per_epoch - warmup),
        alpha=0.01,
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
    )


def compiled_model(config: TrainConfig, n_classes: int, backend: str, steps_per_epoch: int, augment=None):
    """The network and the model ``fit`` trains (the network, with the augmentation in front of it
    where the backend has no ``tf.data``), compiled with the run's optimizer and schedule; built
    under a ``MirroredStrategy`` where TensorFlow sees several GPUs."""
    import keras

    from fer_core.training.architectures import build_model

    scope = distribution_strategy().scope() if backend == "tensorflow" else contextlib.nullcontext()
    with scope:
        network = build_model(config.arch, n_classes, config.crop, config.width)
        model = network
        if augment is not None and backend != "tensorflow":
            model = keras.Sequential([keras.Input(network.input.shape[1:]), augment, network], name="augmented")
        model.compile(
            optimizer=make_optimizer(config, learning_rate_schedule(config, steps_per_epoch)),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
            # The metric and the optimizer's slots exist before the training step is traced (a resumed
            # run's slots do: BackupAndRestore builds them to load them). Created by the step's first
            # trace, they make TensorFlow trace it a second time: seconds at the start of every run.
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
        model.optimizer.build(model.trainable_variables)
    return network, model


def run_callbacks(out: Path, network: keras.Model, patience: int, extra: list | None = None) -> list:
    """The run's own callbacks, then ``extra``.

    The history row and the best model are written before the backup: a run stopped between the
    two redoes that epoch, and :func:`keep_history_before` drops its earlier row, so no epoch is lost
    or counted twice.
    """
    import keras

    history = keep_history_before(out, backed_up_epochs(out))
    best_so_far = max((row.get("val_accuracy", 0.0) for row in history), default=0.0)
    return [
        _epoch_stats_callback(),
        _atomic_best_checkpoint(out / BEST_MODEL, best_so_far, network),
        keras.callbacks.CSVLogger(str(out / HISTORY), append=True),
        keras.callbacks.BackupAndRestore(str(out / BACKUP)),
        keras.callbacks.EarlyStopping("val_accuracy", patience=patience, mode="max"),
        *(extra or []),
    ]


def train(config: TrainConfig, verbose: int | str = "auto", callbacks: list | None = None) -> Path:
    """Run, or resume, a training run; returns the path of the best model.

    Calling it again on the same ``out`` folder resumes an interrupted run at the epoch after the last
    one finished (``BackupAndRestore``); a run that already completed is left as it is. ``callbacks``
    are extra Keras callbacks (e.g. a progress display); they run after the run's own, so at the end
    of an epoch its history row, best model and backup are on disk before they see it (a sweep that
    stops a trial there leaves a complete run folder).
    """
    import keras

    out = Path(config.out)
    if run_is_complete(out):
        return out / BEST_MODEL
    check_config(config)
    device = prepare_device(config)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    scheme = get_scheme(config.scheme)
    with precision_policy(device.precision):
        augment = augmenter(config) if config.augment else None
        faces = load_run_faces(config, scheme)
        train_batches, val_batches = batch_pipelines(config, faces, scheme.n_classes, device.backend, augment)
        steps_per_epoch = int(np.ceil(len(faces.x_train) / config.batch_size))
        network, model = compiled_model(config, scheme.n_classes, device.backend, steps_per_epoch, augment)
        all_callbacks = run_callbacks(out, network, config.patience, callbacks)
        _write_training_json(out, config, scheme, len(faces.x_train), len(faces.x_val), network.count_params(),
                             device.record, device.precision)
        model.fit(train_batches, validation_data=val_batches, epochs=config.epochs, callbacks=all_callbacks,
                  verbose=verbose, shuffle=False)  # the pipeline shuffles
    _mark_complete(out)
    return out / BEST_MODEL


def _mark_complete(out: Path) -> None:
    path = out / TRAINING_JSON
    info = json.loads(path.read_text())
    info["completed"] = True
    path.write_text(json.dumps(info, indent=2))


def _write_training_json(out: Path, config: TrainConfig, scheme: LabelScheme, n_train: int, n_val: int,
                         n_params: int, device: dict, precision: str) -> None:
    info = {
        "config": asdict(config),
        "command": " ".join(shlex.quote(a) for a in config.command) or None,
        "scheme": scheme.to_dict(),
        "n_train": n_train,
        "n_validation": n_val,
        "parameters": n_params,
        "device": device,
        "precision": precision,
        "python": sys.version.split()[0],
    }
    (out / TRAINING_JSON).write_text(json.dumps(info, indent=2))
