"""The benchmark scripts run end to end on a few faces (or a tiny model), so the figures the README quotes stay
re-runnable (timings are not checked here: they belong to the benchmark's own output)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def detector_study(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import detector_study

    return detector_study


def test_union_detector_keeps_every_box_of_the_first_and_adds_the_second_where_new(detector_study):
    class Fixed:
        def __init__(self, boxes):
            self.boxes = boxes

        def detect(self, image):
            return list(self.boxes)

    first = Fixed([(10, 10, 50, 50)])
    second = Fixed([(12, 12, 50, 50), (200, 200, 40, 40)])
    union = detector_study.UnionDetector(first, second)
    assert union.detect(np.zeros((300, 300), np.uint8)) == [(10, 10, 50, 50), (200, 200, 40, 40)]


def test_the_scenes_background_holds_no_face_for_any_detector(detector_study):
    """Every false box in the studies' scenes is the detector's own: the canvas, bright or dark and lit
    from any side as the hard scenes light it, gives no box at either settings of any shipped detector."""
    from fer_core.inference.detect import DETECTOR_NAMES, detector_for

    rng = np.random.default_rng(0)
    canvas = detector_study.background(rng)
    lit = [detector_study.uneven_light(canvas, rng) for _ in range(20)]
    for name in DETECTOR_NAMES:
        for use in ("photo", "frame"):
            detector = detector_for(name, use)
            found = [box for image in (canvas, *lit) for box in detector.detect(image)]
            assert not found, f"{name} ({use} settings) finds a face in the empty canvas: {found[:3]}"


@pytest.mark.slow  # every detector candidate on the real photos and scenes
def test_detector_study_weighs_every_candidate_and_names_the_rules_pick_for_every_use(detector_study, fer_dir,
                                                                                     astronaut_path, capsys):
    """The study end to end on the real photos and a few scenes (pasted faces at one size: the full study's
    four sizes cost four times as much), with the older settings and the unions with Haar. On a sample this
    small one false box decides, so whether the defaults match their picks is the full study's verdict
    (docs/detectors.md); the photo default's real-photo figures are checked in tests/test_cnn_detectors.py."""
    assert detector_study.main(["--data", str(fer_dir), "--photos", str(astronaut_path.parent), "--per-class", "1",
                                "--sizes", "96", "--scenes", "2", "--repeats", "1", "--candidates"]) == 0
    out = capsys.readouterr().out
    sys.modules.pop("detector_study", None)
    assert "blazeface + haar photo" in out and "yunet + blazeface frame" in out and "lost" in out
    assert "load average" in out and "32 faces in 4 real photos" in out
    assert re.search(r"\|\s+96px\s+hard", out), out  # one size, the one asked for
    assert re.search(r"faces found by no detector at any size: \d+ of 7 ", out), out
    picks = out[out.index("the rule's pick"):]
    for use in ("photo", "video", "batch", "live"):
        assert f"DEFAULT_DETECTORS[{use!r}]" in picks


def test_paired_comparison_counts_the_faces_only_one_model_gets_right():
    from fer_core.training.metrics import paired_comparison

    first = np.array([True] * 10 + [False] * 6)
    second = np.array([True] * 16)
    result = paired_comparison(first, second)
    assert (result["only_first_right"], result["only_second_right"]) == (0, 6)
    assert result["p_value"] == pytest.approx(2 / 2**6)  # six of six faces on one side
    assert paired_comparison(first, first)["p_value"] == 1.0
    with pytest.raises(ValueError, match="different faces"):
        paired_comparison(first, second[:5])


def linear_model(path: Path) -> Path:
    """The cheapest 7-class model on 48×48 faces (pooled pixels into one dense layer), saved to ``path``:
    for the benchmarks that score every validation face, where what the model computes is not the point."""
    import keras

    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Rescaling(1 / 255),
                              keras.layers.AveragePooling2D(6), keras.layers.Flatten(),
                              keras.layers.Dense(7, activation="softmax")])
    model.save(path)
    return path


def test_compare_models_runs_on_the_validation_faces(monkeypatch, tmp_path, fer_dir, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import compare_models

    model = linear_model(tmp_path / "linear_fer7.keras")
    assert compare_models.main([str(model), str(model), "--data", str(fer_dir)]) == 0
    out = capsys.readouterr().out
    assert "3589 PublicTest faces" in out
    assert out.count("only A right 0, only B right 0; exact McNemar p = 1.000") == 2


@pytest.mark.slow  # three TensorFlow processes, each training
def test_bench_training_prints_both_precisions_beside_the_cpu_and_the_auto_choice():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_training.py"), "--arch", "tiny",
                          "--batches", "1", "--batch-size", "8"], capture_output=True, text=True, check=True,
                         cwd=ROOT, timeout=600).stdout
    assert "flags:" in out and "load average" in out
    assert "train --precision auto picks" in out
    assert "float32:" in out and "mixed_bfloat16:" in out


def test_bench_inference_prints_the_models_arithmetic_beside_the_cpus_rate(monkeypatch, tiny_recognizer, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_inference

    bench_inference.print_arithmetic_ceiling(tiny_recognizer)
    out = capsys.readouterr().out
    assert "MFLOP per face" in out and "GFLOP/s" in out and "faces/s at that rate" in out


def test_bench_inference_prints_keras_and_int8_matrix_product_rates_and_their_ratio(monkeypatch, tiny_recognizer,
                                                                                      capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_inference

    bench_inference.print_precision_ceiling(tiny_recognizer, repeats=2, size=256)
    out = capsys.readouterr().out
    dtype = bench_inference.conv_compute_dtype(tiny_recognizer.model)
    match = re.search(rf"Keras' {dtype} (\d+) GFLOP/s .* int8 (\d+) GOP/s .* is (\d+\.\d+)× as fast", out)
    assert match, out
    keras_rate, int8_rate, ratio = int(match[1]), int(match[2]), float(match[3])
    assert keras_rate > 0 and int8_rate > 0
    rounding = 0.5 / keras_rate + 0.5 / int8_rate + 0.005  # the printed rates are whole numbers
    assert ratio == pytest.approx(int8_rate / keras_rate, rel=rounding)


def test_conv_compute_dtype_reads_a_mixed_precision_members_policy(monkeypatch):
    import keras

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from bench_inference import conv_compute_dtype

    member = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, dtype="mixed_bfloat16")])
    outer = keras.Sequential([keras.Input((8, 8, 1)), member])
    assert conv_compute_dtype(member) == conv_compute_dtype(outer) == "bfloat16"
    assert conv_compute_dtype(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])) == "float32"


def test_bench_models_labels_two_versions_of_one_model_by_their_paths(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_models

    paths = [Path("before/models/fast.keras"), Path("models/fast.keras"), Path("models/other.keras")]
    assert bench_models.model_labels(paths) == ["before/models/fast", "models/fast", "other"]


def test_bench_models_prints_both_batch_sizes_per_model(monkeypatch, tiny_model_path, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_models

    assert bench_models.main([str(tiny_model_path), "--repeats", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(line for line in out if line.startswith("model and path"))
    assert "batch 32 faces/s" in header and "batch 256 faces/s" in header
    name, path, params, *figures = next(line for line in out if line.startswith(tiny_model_path.stem)).split()
    assert (name, path) == (tiny_model_path.stem, "keras")
    assert len(figures) == 4 and all(float(f.replace(",", "")) > 0 for f in figures)  # 32, 256, one face, frame


@pytest.fixture
def ensemble_study(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import ensemble_study

    yield ensemble_study
    sys.modules.pop("ensemble_study", None)


def test_ensemble_study_scores_a_subset_exactly_as_the_built_ensemble_classifies(ensemble_study, tmp_path):
    from fer_core.inference.recognizer import EmotionRecognizer
    from fer_core.training.architectures import build_ensemble, build_model

    members = [build_model("tiny", 7), build_model("tiny", 7)]
    paths = [tmp_path / f"m{i}_fer7.keras" for i in range(2)]
    for model, path in zip(members, paths):
        model.save(path)
    build_ensemble(members).save(tmp_path / "ens_fer7.keras")
    faces = np.random.default_rng(0).integers(0, 256, (20, 48, 48), dtype=np.uint8)
    studied = ensemble_study.ensemble_probs(tuple(ensemble_study.member_probs(p, faces, False) for p in paths))
    built = EmotionRecognizer(tmp_path / "ens_fer7.keras", use_export=False).raw_probabilities(faces, "hflip")
    np.testing.assert_allclose(studied, built, atol=1e-5)


def test_ensemble_study_uses_ten_crops_only_when_every_member_shares_the_crop(ensemble_study):
    def member(crop, value):
        probs = np.full((3, 7), value)  # plain views: value - 1, mirror: value, ten crops: value + 1
        return ensemble_study.MemberProbs(f"c{crop}", crop, probs - 1, probs, probs + 1 if crop else None)

    assert ensemble_study.ensemble_probs((member(4, 0.0), member(4, 2.0)))[0, 0] == 2.0  # the ten-crop views
    assert ensemble_study.ensemble_probs((member(4, 0.0), member(0, 2.0)))[0, 0] == 1.0  # the mirror image
    assert ensemble_study.ensemble_probs((member(4, 0.0), member(2, 2.0)))[0, 0] == 1.0
    assert ensemble_study.ensemble_probs((member(4, 0.0), member(4, 2.0)), "hflip")[0, 0] == 1.0
    assert ensemble_study.ensemble_probs((member(4, 0.0), member(4, 2.0)), "none")[0, 0] == 0.0
    assert len(ensemble_study.subsets([member(0, 0.0)] * 4, 2)) == 11
    assert len(ensemble_study.subsets([member(0, 0.0)] * 4, 2, max_size=3)) == 10


def test_ensemble_study_halves_keep_each_class_split_in_two(ensemble_study):
    y = np.repeat(np.arange(7), [40, 5, 41, 90, 60, 33, 62])
    first, second = ensemble_study.stratified_halves(y, seed=3)
    assert not (first & second).any() and (first | second).all()
    for c in range(7):
        assert abs(int((first & (y == c)).sum()) - int((second & (y == c)).sum())) <= 1


def test_ensemble_study_runs_on_the_validation_faces(ensemble_study, tmp_path, fer_dir, capsys):

    paths = [linear_model(tmp_path / f"m{i}_fer7.keras") for i in range(3)]
    assert ensemble_study.main([*map(str, paths), "--data", str(fer_dir), "--top", "2", "--max-size", "2",
                                "--tta", "none", "hflip"]) == 0
    out = capsys.readouterr().out
    assert "3589 PublicTest faces, 3 models" in out and out.count("3 subsets") == 2
    assert out.index("test-time augmentation: none") < out.index("test-time augmentation: hflip")
    assert out.count("all 3 members:") == 2 and out.count("scored on the other") == 2 and out.count(" picks ") == 4


def test_bench_api_prints_a_row_per_photo_and_client_count_beside_the_cpu(monkeypatch, astronaut_path, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_api

    monkeypatch.setattr(bench_api, "PHOTOS", astronaut_path.parent)
    assert bench_api.main(["--configs", "local", "--requests", "1", "--clients", "1", "2"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| local |")]
    assert len(rows) == 4 and all(line.endswith("| 0 |") for line in rows), out
    assert "flags:" in out and "load average" in out
    sys.modules.pop("bench_api", None)
