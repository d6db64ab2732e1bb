"""TensorFlow's import, muted for the command line, and only when a Keras model is loaded.

TensorFlow's native start-up lines ("All log messages before absl::InitializeLog()…", "Could not find cuda
drivers…", the oneDNN notice) are written straight to file descriptor 2 before its logging is set up, so
neither ``TF_CPP_MIN_LOG_LEVEL`` nor Python's ``sys.stderr`` can hold them back. The command line calls
:func:`mute_start_up` (unless ``--verbose``), and the code that loads a Keras model calls
:func:`import_tensorflow` first: ``predict``, ``video``, ``batch`` and ``evaluate`` on a model whose ONNX
export classifies (the shipped ones) never import TensorFlow at all, about five seconds of every start.
"""

from __future__ import annotations

import os
import sys

_muted = False


def mute_start_up() -> None:
    """From now on :func:`import_tensorflow` imports TensorFlow with fd 2 pointed at /dev/null (the
    command line's terminal; a server keeps its stderr, which other threads may be writing to)."""
    global _muted
    _muted = True


def import_tensorflow() -> None:
    """Import TensorFlow now, muted where :func:`mute_start_up` asked for it: only the import is muted,
    every later message reaches stderr. Nothing to do once it is imported, or under another Keras
    backend (``KERAS_BACKEND=jax train`` on a machine without TensorFlow)."""
    if "tensorflow" in sys.modules or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    if not _muted:
        import tensorflow  # noqa: F401
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
