"""The sweep command: grid files, trial names and commands, and a 2-trial sweep on a local Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import copy_real_faces

from fer_core.cli import build_parser, main
from fer_core.training.sweep import GridError, grid_trials, read_grid, train_command
from fer_core.training.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def _grid_file(tmp_path: Path, text: str, suffix: str = ".yaml") -> Path:
    path = tmp_path / f"grid{suffix}"
    path.write_text(text)
    return path


def test_yaml_and_json_grids_read_the_same(tmp_path):
    yaml_grid = read_grid(_grid_file(tmp_path, "seed: [1, 2]\narch: tiny\nlearning_rate: [0.002, 1e-4]\n"))
    json_grid = read_grid(_grid_file(tmp_path, '{"seed": [1, 2], "arch": "tiny", "learning_rate": [0.002, 0.0001]}',
                                     ".json"))
    assert yaml_grid == json_grid == {"seed": [1, 2], "arch": ["tiny"], "learning_rate": [0.002, 0.0001]}


@pytest.mark.parametrize(("text", "message"), [
    ("seed: [1, 2]\nlearnin_rate: 0.01\n", "unknown grid key 'learnin_rate'"),
    ("epochs: [5, 10]\n", "unknown grid key 'epochs'"),
    ("seed: [1, one]\n", "seed: 'one' is not a int"),
    ("learning_rate: fast\n", "learning_rate: 'fast' is not a float"),
    ("class_weights: 1\n", "class_weights: 1 is not a bool"),
    ("teacher: 3\n", "teacher: 3 is not a str"),
    ("arch: [tiny, resnet9000]\n", "arch: 'resnet9000' is not one of"),
    ("augmentation: five_pass\n", "augmentation: 'five_pass' is not one of one_pass, three_pass"),
    ("seed: []\n", "seed: empty list"),
    ("seed: [1, 1]\n", "seed: a value is listed twice"),
    ("- seed\n", "expected a mapping"),
    ("seed: [1\n", "not valid YAML"),
])
def test_a_bad_grid_is_an_error_naming_the_key(tmp_path, text, message):
    path = _grid_file(tmp_path, text)
    with pytest.raises(GridError, match=None) as info:
        read_grid(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_cli_reports_a_bad_grid_and_exits_2(tmp_path, capsys):
    path = _grid_file(tmp_path, "seed: 1\nbogus: 2\n")
    assert main(["sweep", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--grid", str(path)]) == 2
    assert "unknown grid key 'bogus'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_refuses_an_address_without_the_ray_engine(tmp_path, capsys):
    path = _grid_file(tmp_path, "seed: 1\n")
    assert main(["sweep", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--grid", str(path),
                 "--address", "head:6379"]) == 2
    assert "--engine ray" in capsys.readouterr().err


def test_every_combination_is_one_trial_named_after_what_varies():
    trials = grid_trials({"arch": ["tiny"], "seed": [1, 2], "augmentation": ["one_pass", "three_pass"]})
    assert [t.name for t in trials] == ["t00-seed_1-augmentation_one_pass", "t01-seed_1-augmentation_three_pass",
                                        "t02-seed_2-augmentation_one_pass", "t03-seed_2-augmentation_three_pass"]
    assert trials[3].params == {"arch": "tiny", "seed": 2, "augmentation": "three_pass"}


def test_a_trials_recorded_command_is_the_train_command_that_reproduces_it(tmp_path):
    params = {"arch": "tiny", "learning_rate": 0.0005, "augment": False, "class_weights": True, "seed": 3,
              "precision": "float32", "teacher": "models/t.keras", "teacher_weight": 0.7}
    trial = grid_trials({k: [v] for k, v in params.items()})[0]
    config = trial.config("DATA", tmp_path, epochs=4, limit=300)
    assert config.command == train_command(config, params)
    args = build_parser().parse_args(config.command[3:])
    assert (args.command, args.data, args.out, args.epochs, args.limit) == ("train", "DATA", str(tmp_path / "t00"), 4,
                                                                           300)
    assert (args.arch, args.lr, args.no_augment, args.class_weights, args.seed, args.precision) == (
        "tiny", 0.0005, True, True, 3, "float32")
    assert (args.teacher, args.teacher_weight, args.teacher_temperature) == ("models/t.keras", 0.7, 2.0)
    assert config == TrainConfig(data="DATA", out=str(tmp_path / "t00"), epochs=4, limit=300,
                                 command=config.command, **params)


def test_reading_a_grid_imports_neither_tensorflow_nor_ray(tmp_path):
    path = _grid_file(tmp_path, "seed: [1, 2]\narch: tiny\n")
    code = ("import sys; from fer_core.training.sweep import grid_trials, read_grid; "
            f"grid_trials(read_grid({str(path)!r})); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'ray') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_two_trials_on_a_local_ray_complete_and_publish(local_ray, fer_dir, tmp_path, capsys):
    from fer_core.model_card import ModelCard
    from fer_core.training.publish import publish

    pytest.importorskip("ray.tune", reason="needs ray[tune] (requirements-dev.txt)")
    data = copy_real_faces(fer_dir, tmp_path / "data", {"train": 50, "validation": 15})
    grid = _grid_file(tmp_path, "arch: tiny\nseed: [1, 2]\nprecision: float32\nbatch_size: 64\n")
    out = tmp_path / "sweep"
    local_ray.wait_for_free_cpus()  # the sweep joins it (2 CPUs: both trials at once) instead of starting its own
    code = main(["sweep", "--data", str(data), "--out", str(out), "--grid", str(grid), "--engine", "ray",
                 "--epochs", "1", "--limit", "300", "--top", "2"])
    printed = capsys.readouterr()
    assert code == 0, printed.out[-3000:] + printed.err[-3000:]

    summary = json.loads((out / "sweep.json").read_text())
    assert sorted(row["trial"] for row in summary) == ["t00-seed_1", "t01-seed_2"]
    for row in summary:
        assert (row["status"], row["epochs_run"], row["best_epoch"]) == ("completed", 1, 1)
        info = json.loads((Path(row["run_dir"]) / "training.json").read_text())
        assert info["completed"] and info["n_train"] == 300 and info["config"]["seed"] == row["params"]["seed"]
    assert "python -m fer_core ensemble models/sweep_t0" in printed.out

    published = publish(out / "t01-seed_2", data, "swept", models_dir=tmp_path / "models", blur_candidates=(0.0,))
    card = ModelCard.load(published)
    assert card.is_published and card.training["config"]["seed"] == 2


@pytest.mark.slow
def test_local_engine_trains_in_turn_and_a_failing_trial_spares_the_others(fer_dir, tmp_path, monkeypatch):
    import fer_core.training.train
    from fer_core.training.sweep import run_sweep

    real_train = fer_core.training.train.train

    def train(config, **kwargs):
        if config.seed == 2:
            raise RuntimeError("out of memory")
        return real_train(config, **kwargs)

    monkeypatch.setattr(fer_core.training.train, "train", train)
    data = copy_real_faces(fer_dir, tmp_path / "data", {"train": 10, "validation": 5})
    grid = {"arch": ["tiny"], "seed": [2, 1], "precision": ["float32"]}
    outcomes = run_sweep(data, tmp_path / "sweep", grid, epochs=1, engine="local", progress=0)
    assert [(o.trial, o.status, o.epochs_run) for o in outcomes] == [
        ("t00-seed_2", "failed: RuntimeError: out of memory", 0), ("t01-seed_1", "completed", 1)]
    rows = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [row["trial"] for row in rows] == ["t01-seed_1", "t00-seed_2"]  # best first, the failed one last


def test_train_options_and_grid_keys_are_trainconfigs_fields():
    """``train``'s options parse to TrainConfig's defaults, and the grid takes every one but the sweep's own."""
    from fer_core.training.options import config_options
    from fer_core.training.sweep import GRID_OPTIONS, SWEEP_OPTIONS

    options = config_options(TrainConfig)
    args = build_parser().parse_args(["train", "--data", "D", "--out", "O"])
    assert {name: opt.value(args) for name, opt in options.items()} == {
        name: getattr(TrainConfig(data="D", out="O"), name) for name in options}
    assert set(GRID_OPTIONS) == set(options) - set(SWEEP_OPTIONS)
    assert (GRID_OPTIONS["learning_rate"], GRID_OPTIONS["augment"]) == ("--lr", "--no-augment")


def test_a_field_declared_with_option_is_an_option_with_its_type_default_help_and_choices():
    import argparse
    from dataclasses import dataclass

    from fer_core.training.options import config_options, option

    @dataclass
    class Recipe:
        data: str = option(help="where")
        width: int = option(32, "channels (default {default})")
        mode: str = option("a", choices=("a", "b"))
        mirror: bool = option(True)
        internal: int = 3

    parser = argparse.ArgumentParser()
    for opt in config_options(Recipe).values():
        parser.add_argument(opt.flag, **opt.argparse_kwargs())
    assert "channels (default 32)" in parser.format_help() and "--no-mirror" in parser.format_help()
    args = parser.parse_args(["--data", "x", "--width", "48", "--no-mirror"])
    values = {name: opt.value(args) for name, opt in config_options(Recipe).items()}
    assert Recipe(**values) == Recipe(data="x", width=48, mode="a", mirror=False)
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "x", "--mode", "c"])
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --data is required: the field has no default
