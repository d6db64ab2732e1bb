"""fer_core.data.explore: filters, counts and shares, sampling, mosaics, mean faces, and the bundled sample."""

from __future__ import annotations

import numpy as np
import pytest

from fer_core.data import FaceData, load_dataset
from fer_core.data.explore import (
    class_counts,
    counts_table,
    describe_source,
    enlarge,
    face_mosaic,
    filter_faces,
    mean_faces,
    sample_per_class,
)
from fer_core.labels import FER_LABELS
from fer_core.model_card import PROJECT_ROOT


@pytest.fixture
def faces() -> FaceData:
    """12 faces: Training has 4 happy (3) and 2 sad (4), PublicTest 5 happy and 1 angry (0).

    Every face is filled with its own index, so which faces were picked can be read off the pixels.
    """
    labels = np.array([3, 3, 3, 3, 4, 4, 3, 3, 3, 3, 3, 0])
    splits = np.array(["Training"] * 6 + ["PublicTest"] * 6)
    images = np.repeat(np.arange(12, dtype=np.uint8), 48 * 48).reshape(12, 48, 48)
    return FaceData(images, labels, splits, np.array([f"row {i + 2}" for i in range(12)]))


def test_filter_faces_by_split_and_label(faces):
    happy_training = filter_faces(faces, splits=["Training"], labels=[3])
    assert happy_training.images[:, 0, 0].tolist() == [0, 1, 2, 3]
    assert set(happy_training.splits) == {"Training"}
    assert len(filter_faces(faces, labels=[0, 4])) == 3
    assert len(filter_faces(faces)) == 12
    assert len(filter_faces(faces, splits=[], labels=[3])) == 0


def test_class_counts_has_every_emotion_and_shares_per_split(faces):
    counts = class_counts(faces)
    assert len(counts) == 2 * len(FER_LABELS)
    training = counts[counts["split"] == "Training"].set_index("emotion")
    assert training["count"].to_dict() == {"angry": 0, "disgust": 0, "fear": 0, "happy": 4, "sad": 2, "surprise": 0,
                                           "neutral": 0}
    assert training.loc["happy", "share"] == pytest.approx(4 / 6)
    assert counts.groupby("split")["share"].sum().to_dict() == pytest.approx({"Training": 1.0, "PublicTest": 1.0})


def test_counts_table_orders_splits_and_emotions_and_adds_totals(faces):
    table = counts_table(class_counts(faces))
    assert table.index.tolist() == ["Training", "PublicTest"]
    assert table.columns.tolist() == [*FER_LABELS, "total"]
    assert table["total"].tolist() == [6, 6]
    assert table.loc["PublicTest", "angry"] == 1


def test_sample_per_class_is_seeded_capped_and_within_class(faces):
    sample = sample_per_class(faces, per_class=3, seed=7)
    assert list(sample) == [0, 3, 4]
    assert [len(sample[label]) for label in sample] == [1, 3, 2]
    for label, indices in sample.items():
        assert (faces.labels[indices] == label).all()
        assert len(set(indices.tolist())) == len(indices)
    again = sample_per_class(faces, per_class=3, seed=7)
    assert all(np.array_equal(sample[k], again[k]) for k in sample)
    draws = {tuple(sample_per_class(faces, per_class=3, seed=s)[3]) for s in range(20)}
    assert len(draws) > 1, "different seeds should draw different happy faces"


def test_face_mosaic_places_faces_row_by_row_with_white_gaps():
    images = np.stack([np.full((2, 3), v, np.uint8) for v in (10, 20, 30)])
    mosaic = face_mosaic(images, columns=2, gap=1)
    assert mosaic.shape == (2 * 2 + 1, 2 * 3 + 1)
    assert (mosaic[0:2, 0:3] == 10).all() and (mosaic[0:2, 4:7] == 20).all()
    assert (mosaic[3:5, 0:3] == 30).all()
    assert (mosaic[2, :] == 255).all() and (mosaic[:, 3] == 255).all()
    assert (mosaic[3:5, 4:7] == 255).all(), "the unused last cell stays white"


def test_face_mosaic_scales_by_pixel_repetition_and_caps_columns():
    image = np.array([[[0, 100], [200, 50]]], np.uint8)
    mosaic = face_mosaic(image, columns=5, scale=3)
    assert mosaic.shape == (6, 6)
    assert (mosaic[:3, :3] == 0).all() and (mosaic[3:, :3] == 200).all() and (mosaic[3:, 3:] == 50).all()
    assert np.array_equal(enlarge(image[0], 3), mosaic)


@pytest.mark.parametrize("columns, scale", [(0, 1), (2, 0)])
def test_face_mosaic_rejects_bad_arguments(columns, scale):
    with pytest.raises(ValueError):
        face_mosaic(np.zeros((1, 48, 48), np.uint8), columns=columns, scale=scale)
    with pytest.raises(ValueError):
        face_mosaic(np.zeros((0, 48, 48), np.uint8), columns=2)


def test_mean_faces_average_each_class_pixelwise(faces):
    means = mean_faces(faces)
    assert list(means) == [0, 3, 4]
    assert means[3].dtype == np.uint8 and means[3].shape == (48, 48)
    assert (means[3] == 5).all(), "happy faces 0-3 and 6-10 average 46/9"
    assert (means[0] == 11).all()


def test_mean_faces_round_rather_than_truncate():
    images = np.stack([np.zeros((48, 48), np.uint8), np.ones((48, 48), np.uint8), np.ones((48, 48), np.uint8)])
    data = FaceData(images, np.array([2, 2, 2]), np.array(["Training"] * 3), np.array(["a", "b", "c"]))
    assert (mean_faces(data)[2] == 1).all()


def test_describe_source_names_csv_rows_and_keeps_file_paths():
    assert describe_source("row 17", "/data/fer2013.csv") == "fer2013.csv, row 17"
    assert describe_source("/data/train/happy/a.jpg", "/data") == "/data/train/happy/a.jpg"


def test_bundled_sample_has_30_publictest_faces_per_class():
    result = load_dataset(PROJECT_ROOT / "data" / "sample")
    assert result.skipped == []
    assert result.counts() == {"PublicTest": {name: 30 for name in FER_LABELS}}
    assert result.data.images.shape == (210, 48, 48)
