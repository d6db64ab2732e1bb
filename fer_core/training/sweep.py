"""Training many models: one ordinary ``train`` run per point of a small grid, on Ray Tune or in turn.

A grid file (YAML or JSON) maps ``train``'s options to a value or a list of values; every combination
is one trial, and every trial is a normal run folder ``OUT/<trial>/`` (``best.keras``, ``history.csv``,
``training.json``, ``backup/``) that ``publish`` accepts and that ``train`` resumes. With
``engine="ray"`` Ray Tune runs the trials side by side (one process each, ``cpus_per_trial`` cores),
each epoch's validation accuracy is reported to Tune, and ASHA stops the trials that fall behind; a
trial whose worker dies is retried and resumes from its backup. ``engine="local"`` trains the trials
one after another in this process, without Ray (which is not a runtime dependency) and so without
early stopping across trials.

Each trial is one single-process ``fit``: Keras 3 ``fit`` does not work under
``MultiWorkerMirroredStrategy`` (keras-team/keras#20585), so a sweep spreads trials over machines
instead of spreading one model over them.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import sys
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from fer_core.training.options import config_options
from fer_core.training.train import TrainConfig, read_history, run_is_complete

# The sweep's own options, the same for every trial; the grid takes every other option of ``train``.
SWEEP_OPTIONS = ("data", "out", "epochs", "limit")
# The grid's keys: TrainConfig's fields that are train options, with that option's flag (--lr, --no-augment).
GRID_OPTIONS = {name: opt.flag for name, opt in config_options(TrainConfig).items() if name not in SWEEP_OPTIONS}
TUNE_DIR = "tune"  # Ray Tune's own experiment records, beside the trials' run folders
SUMMARY_CSV = "sweep.csv"
SUMMARY_JSON = "sweep.json"


class GridError(ValueError):
    """A grid file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Trial:
    """One point of the grid: its name (also its run folder's name) and the options it sets."""

    name: str
    params: dict

    def config(self, data: str, out: Path, epochs: int, limit: int | None) -> TrainConfig:
        """The ``train`` configuration of this trial; its recorded command is the equivalent ``train`` call."""
        config = TrainConfig(data=data, out=str(out / self.name), epochs=epochs, limit=limit, **self.params)
        config.command = train_command(config, self.params)
        return config


@dataclass
class TrialOutcome:
    """What a trial left behind, read from its run folder (the same for both engines)."""

    trial: str
    params: dict
    best_val_accuracy: float | None
    best_epoch: int | None
    epochs_run: int
    status: str  # completed, stopped early, failed: <reason>, not started
    run_dir: str


def read_grid(path: str | os.PathLike) -> dict[str, list]:
    """The grid file as ``{option: [values]}``, every key and value checked (see :data:`GRID_OPTIONS`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such grid file")
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        raw = _parse_yaml(path, text)
    else:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GridError(f"{path}: not valid JSON ({exc}); a .yaml/.yml file is read as YAML") from exc
    if not isinstance(raw, dict) or not raw:
        raise GridError(f"{path}: expected a mapping of train options to values, e.g. {{\"seed\": [1, 2]}}")
    return {str(key): _checked_values(path, str(key), value) for key, value in raw.items()}


def _parse_yaml(path: Path, text: str):
    try:
        import yaml
    except ImportError as exc:
        raise GridError(f"{path}: reading YAML needs PyYAML (pip install -r requirements-dev.txt); "
                        "or write the grid as JSON") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GridError(f"{path}: not valid YAML ({exc})") from exc


def _checked_values(path: Path, key: str, value) -> list:
    if key not in GRID_OPTIONS:
        raise GridError(f"{path}: unknown grid key {key!r}; the grid takes {', '.join(sorted(GRID_OPTIONS))} "
                        "(data, out, epochs and limit are sweep options)")
    values = value if isinstance(value, list) else [value]
    if not values:
        raise GridError(f"{path}: {key}: empty list of values")
    values = [_checked_value(path, key, v) for v in values]
    if len(set(map(repr, values))) != len(values):
        raise GridError(f"{path}: {key}: a value is listed twice: {values}")
    return values


def _checked_value(path: Path, key: str, value):
    """``value`` if it suits ``key`` (a float written ``1e-4``, which YAML reads as a string, as a float)."""
    from fer_core.labels import get_scheme

    declared = config_options(TrainConfig)[key]
    kind = declared.kind
    if kind is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    ok = (isinstance(value, bool) if kind is bool
          else isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float
          else isinstance(value, int) and not isinstance(value, bool) if kind is int
          else isinstance(value, str))
    if not ok:
        raise GridError(f"{path}: {key}: {value!r} is not a {kind.__name__}")
    if declared.choices is not None and value not in declared.choices:
        raise GridError(f"{path}: {key}: {value!r} is not one of {', '.join(declared.choices)}")
    if key == "scheme":
        try:
            get_scheme(value)
        except (KeyError, ValueError) as exc:
            raise GridError(f"{path}: scheme: {exc}") from exc
    return value


def grid_trials(grid: dict[str, list]) -> list[Trial]:
    """Every combination of the grid's values, named after the index and the options that vary."""
    keys = list(grid)
    varying = [k for k in keys if len(grid[k]) > 1]
    trials = []
    for i, combo in enumerate(itertools.product(*(grid[k] for k in keys))):
        params = dict(zip(keys, combo))
        name = "-".join([f"t{i:02d}", *(f"{k}_{params[k]}" for k in varying)])
        trials.append(Trial(re.sub(r"[^A-Za-z0-9._-]", "_", name), params))
    return trials


def train_command(config: TrainConfig, params: dict) -> list[str]:
    """The ``python -m fer_core train`` command that trains this configuration on its own."""
    command = ["python", "-m", "fer_core", "train", "--data", config.data, "--out", config.out,
               "--epochs", str(config.epochs)]
    if config.limit is not None:
        command += ["--limit", str(config.limit)]
    for key, value in params.items():
        flag = GRID_OPTIONS[key]
        if isinstance(value, bool):
            # --class-weights turns a default-off option on; --no-augment turns a default-on one off.
            if value != getattr(TrainConfig(data="", out=""), key):
                command.append(flag)
        else:
            command += [flag, str(value)]
    return command


def run_sweep(data: str | os.PathLike, out: str | os.PathLike, grid: dict[str, list], epochs: int,
              limit: int | None = None, engine: str = "local", address: str | None = None,
              max_concurrent: int | None = None, cpus_per_trial: float = 1, gpus_per_trial: float = 0,
              grace_epochs: int = 1, num_cpus: int | None = None, progress: int = 2) -> list[TrialOutcome]:
    """Train every trial of ``grid`` into ``out/<trial>/`` and return what each left behind.

    Running it again with the same arguments resumes: completed trials are kept, interrupted ones
    resume at their last epoch. ``address`` joins a running Ray cluster (``engine="ray"``); without
    it an embedded Ray is started with ``num_cpus`` (all cores when None). Paths are made absolute:
    Ray runs each trial in its own working folder.
    """
    data, out = str(Path(data).resolve()), Path(out).resolve()
    trials = grid_trials(grid)
    out.mkdir(parents=True, exist_ok=True)
    _warm_dataset_cache(data)
    configs = {t.name: t.config(data, out, epochs, limit) for t in trials}
    if engine == "local":
        failures = _run_in_turn(configs, progress)
    elif engine == "ray":
        failures = _run_on_ray(configs, out, epochs, address, max_concurrent, cpus_per_trial, gpus_per_trial,
                               grace_epochs, num_cpus)
    else:
        raise ValueError(f"unknown engine {engine!r}; choose local or ray")
    outcomes = [trial_outcome(t, out / t.name, failures.get(t.name)) for t in trials]
    write_summary(out, outcomes)
    return outcomes


def _warm_dataset_cache(data: str) -> None:
    """Load the data once here, so it is checked before any trial starts and the trials read the cache
    instead of decoding (and caching) the same images side by side."""
    from fer_core.data import load_dataset

    load_dataset(data, skip_bad_rows=True)


def _run_in_turn(configs: dict[str, TrainConfig], progress: int) -> dict[str, str]:
    """Train the trials one after another in this process; a trial that fails does not stop the others."""
    from fer_core.training.train import train

    failures = {}
    for name, config in configs.items():
        print(f"trial {name}: {shlex.join(config.command)}", flush=True)
        try:
            train(config, verbose=progress)
        except Exception as exc:  # noqa: BLE001 - one failing trial must not cost the others
            traceback.print_exc()
            failures[name] = f"{type(exc).__name__}: {exc}"
    return failures


def _run_on_ray(configs: dict[str, TrainConfig], out: Path, epochs: int, address: str | None,
                max_concurrent: int | None, cpus_per_trial: float, gpus_per_trial: float, grace_epochs: int,
                num_cpus: int | None) -> dict[str, str]:
    """Run the trials as a Ray Tune grid with ASHA; returns the error of each trial that failed."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    # An embedded Ray must not phone home: nothing outside the machine is contacted unless asked.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address)
        else:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False)  # never a `ray start` one
    threads = max(1, int(cpus_per_trial))
    specs = [{"name": name, "config": asdict(config), "threads": threads} for name, config in configs.items()]
    tuner = tune.Tuner(
        tune.with_resources(train_trial, {"cpu": cpus_per_trial, "gpu": gpus_per_trial}),
        param_space={"trial": tune.grid_search(specs)},
        tune_config=tune.TuneConfig(
            scheduler=ASHAScheduler(time_attr="epoch", metric="val_accuracy", mode="max", max_t=epochs,
                                    grace_period=max(1, min(grace_epochs, epochs))),
            max_concurrent_trials=max_concurrent,
            trial_name_creator=lambda trial: trial.config["trial"]["name"],
            trial_dirname_creator=lambda trial: trial.config["trial"]["name"],
        ),
        run_config=tune.RunConfig(name=TUNE_DIR, storage_path=str(out), verbose=1,
                                  failure_config=tune.FailureConfig(max_failures=2)),
    )
    try:
        results = tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    return {result.config["trial"]["name"]: f"{type(result.error).__name__}: {result.error}"
            for result in results if result.error is not None}


def train_trial(tune_config: dict) -> None:
    """Ray Tune's trainable: one ordinary ``train`` run with ``threads`` TensorFlow threads.

    Each epoch's logs are reported to Tune after the epoch's history row, best model and backup are
    written, so a trial that ASHA stops there is a publishable run folder. The last epoch is reported
    only once ``train`` has returned: Tune ends a trial at its final report, and the run must first
    be marked complete (a run that completed before this sweep is reported once, from its history).
    """
    from ray import tune

    spec = tune_config["trial"]
    config = TrainConfig(**spec["config"])
    limit_tensorflow_threads(spec["threads"])
    from fer_core.training.train import train

    reporter = tune_report_callback(final_epoch=config.epochs)
    train(config, verbose=0, callbacks=[reporter])
    history = read_history(config.out)
    if history and reporter.last_reported != len(history):
        tune.report({**history[-1], "epoch": len(history)})


def limit_tensorflow_threads(threads: int) -> None:
    """Give this process's TensorFlow ``threads`` threads per op and between ops, so trials sharing a
    machine each keep to their own cores instead of all of them contending for every core."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        print(f"TensorFlow was already running in this worker; it keeps its thread pools ({os.getpid()})",
              file=sys.stderr)


def tune_report_callback(final_epoch: int):
    """A Keras callback reporting each epoch's logs, with its 1-based number as ``epoch``, to Ray Tune;
    all but ``final_epoch``, which :func:`train_trial` reports after ``train`` has returned."""
    import keras
    from ray import tune

    class ReportToTune(keras.callbacks.Callback):
        last_reported = 0

        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 < final_epoch:
                tune.report({**{k: float(v) for k, v in (logs or {}).items()}, "epoch": epoch + 1})
                self.last_reported = epoch + 1

    return ReportToTune()


def trial_outcome(trial: Trial, run_dir: Path, failure: str | None) -> TrialOutcome:
    """A trial's result from its run folder: best validation accuracy, epochs run and how it ended."""
    history = read_history(run_dir)
    best = max(history, key=lambda row: row.get("val_accuracy", 0.0)) if history else None
    if failure:
        status = f"failed: {failure}"
    elif run_is_complete(run_dir):
        status = "completed"
    else:
        status = "stopped early" if history else "not started"  # by ASHA, or interrupted
    return TrialOutcome(trial.name, trial.params, best.get("val_accuracy") if best else None,
                        int(best["epoch"]) + 1 if best else None, len(history), status, str(run_dir))


def write_summary(out: Path, outcomes: list[TrialOutcome]) -> None:
    """``sweep.csv`` (one row per trial, best first) and ``sweep.json`` beside the trials."""
    summary_frame(outcomes).to_csv(out / SUMMARY_CSV, index=False)
    (out / SUMMARY_JSON).write_text(json.dumps([asdict(o) for o in ranked(outcomes)], indent=2))


def ranked(outcomes: list[TrialOutcome]) -> list[TrialOutcome]:
    """Best validation accuracy first; trials without one last."""
    return sorted(outcomes, key=lambda o: (o.best_val_accuracy is None, -(o.best_val_accuracy or 0.0)))


def summary_frame(outcomes: list[TrialOutcome]):
    """The summary table: trial, its options, best validation accuracy, epochs, status, run folder."""
    import pandas as pd

    return pd.DataFrame([{"trial": o.trial, "params": json.dumps(o.params), "best_val_accuracy": o.best_val_accuracy,
                          "best_epoch": o.best_epoch, "epochs_run": o.epochs_run, "status": o.status,
                          "run_dir": o.run_dir} for o in ranked(outcomes)])


def ensemble_commands(outcomes: list[TrialOutcome], data: str, top: int, name: str) -> list[str]:
    """The commands that publish the ``top`` best trials and average them with ``ensemble``."""
    best = [o for o in ranked(outcomes) if o.best_val_accuracy is not None][:top]
    names = [f"{name}_{o.trial}" for o in best]
    commands = [shlex.join(["python", "-m", "fer_core", "publish", "--run", o.run_dir, "--data", data,
                            "--name", n]) for o, n in zip(best, names)]
    if len(best) > 1:
        commands.append(shlex.join(["python", "-m", "fer_core", "ensemble", *(f"models/{n}.keras" for n in names),
                                    "--data", data, "--name", f"{name}_ensemble"]))
    return commands

