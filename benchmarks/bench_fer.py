"""The product beside PyPI ``fer`` on the same 640×480 frame and the same faces.

``fer`` is not a dependency (it pins its own TensorFlow and OpenCV). Install it without its
dependencies in a separate environment that sees this one's packages::

    python -m venv --system-site-packages /tmp/fervenv
    /tmp/fervenv/bin/pip install fer==25.10.3 --no-deps
    PYTHONPATH=$PWD /tmp/fervenv/bin/python benchmarks/bench_fer.py [--data PATH]

Timed, medians, the two timed in turn within each repeat: the full frame (``fer``'s Haar detector
and classifier, its TFLite default and its Keras model, against this project's detect → crop →
classify with the fast model) and classification alone of the same 256 faces (``fer`` gets them at
its 64×64 input). With ``--data`` both classifiers are also scored on the PublicTest faces
(``fer`` on the 48×48 faces resized to 64×64; no test-time augmentation on either side).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench_inference import interleaved_ms, webcam_frame

from fer_core.inference.detect import detector_for
from fer_core.inference.pipeline import analyze_image
from fer_core.inference.recognizer import EmotionRecognizer
from fer_core.labels import FER7
from fer_core.machine import machine_info
from fer_core.model_card import fast_model_path

FER_INPUT = 64


def fer_inputs(faces: np.ndarray) -> np.ndarray:
    """48×48 uint8 faces as ``fer``'s classifier takes them: 64×64, scaled to [-1, 1]."""
    import cv2

    resized = np.stack([cv2.resize(f, (FER_INPUT, FER_INPUT)) for f in faces]).astype(np.float32)
    return resized / 255.0 * 2.0 - 1.0


def fer_accuracy(fer_model, faces: np.ndarray, labels: np.ndarray) -> float:
    """``fer``'s top label against FER2013's (both use FER2013's class order)."""
    probs = np.concatenate([np.asarray(fer_model._classify_emotions(fer_inputs(faces[i : i + 256])))
                            for i in range(0, len(faces), 256)])
    return float(np.mean(probs.argmax(axis=1) == labels))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="this project's model (default: the fast model the live camera uses)")
    parser.add_argument("--data", help="FER2013 data: also compare accuracy on its PublicTest faces")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    try:
        from fer.fer import FER
    except ImportError:
        print("PyPI fer is not importable here. It is not a dependency; to compare with it run:\n"
              "  python -m venv --system-site-packages /tmp/fervenv\n"
              "  /tmp/fervenv/bin/pip install fer==25.10.3 --no-deps\n"
              "  PYTHONPATH=$PWD /tmp/fervenv/bin/python benchmarks/bench_fer.py")
        return 0

    recognizer = EmotionRecognizer(args.model or fast_model_path())
    fer_tflite, fer_keras = FER(mtcnn=False, use_tflite=True), FER(mtcnn=False, use_tflite=False)
    ours = f"ours ({recognizer.model_path.stem}, {recognizer.backend.split(' (')[0]})"
    print(f"{machine_info().describe()}")
    frame, detector = webcam_frame(), detector_for(use="frame")
    print(f"faces found in the frame: ours {len(analyze_image(frame, recognizer, detector, tta=False))}, "
          f"fer {len(fer_tflite.detect_emotions(frame))}")
    frame_ms = interleaved_ms({
        ours: lambda: analyze_image(frame, recognizer, detector, tta=False),
        "fer (TFLite, its default)": lambda: fer_tflite.detect_emotions(frame),
        "fer (Keras)": lambda: fer_keras.detect_emotions(frame),
    }, args.repeats)
    faces = np.random.default_rng(0).integers(0, 256, (256, 48, 48), dtype=np.uint8)
    resized = fer_inputs(faces)
    classify_ms = interleaved_ms({
        ours: lambda: recognizer.predict_proba(faces, tta=False),
        "fer (TFLite, its default)": lambda: fer_tflite._classify_emotions(resized),
        "fer (Keras)": lambda: np.asarray(fer_keras._classify_emotions(resized)),
    }, max(3, args.repeats // 4))
    print(f"{'':<46}{'640x480 frame ms':>18}{'256 faces: faces/s':>20}")
    for name in frame_ms:
        print(f"{name:<46}{frame_ms[name]:>18.2f}{256 / classify_ms[name] * 1000:>20,.0f}")
    if args.data:
        from fer_core.data import load_dataset

        validation = load_dataset(args.data, skip_bad_rows=True).data.split("PublicTest")
        ours_probs = EmotionRecognizer(recognizer.model_path).predict_proba(validation.images, tta=False)
        print(f"PublicTest accuracy on {len(validation.labels)} faces, no TTA: ours "
              f"{np.mean(ours_probs.argmax(axis=1) == FER7.map_fer(validation.labels)):.4f}, fer "
              f"{fer_accuracy(fer_tflite, validation.images, validation.labels):.4f} (TFLite)")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
