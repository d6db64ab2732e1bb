"""FER2013 data: faces as arrays, the Kaggle CSV and image-folder readers, the disk cache, exploration.

Nothing here imports TensorFlow (``tests/test_layout.py`` checks it).
"""

from fer_core.data.cache import load_dataset
from fer_core.data.faces import FACE_SIZE, SPLITS, DataError, FaceData, LoadResult, Skipped, normalise_split
from fer_core.data.folders import load_folder
from fer_core.data.kaggle_csv import load_csv, write_csv
from fer_core.data.summary import summary_text

__all__ = [
    "FACE_SIZE", "SPLITS", "DataError", "FaceData", "LoadResult", "Skipped", "load_csv", "load_dataset",
    "load_folder", "normalise_split", "summary_text", "write_csv",
]
