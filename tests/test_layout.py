"""The package boundary: data, app, serve, labels and model-card code never import TensorFlow or Keras."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import fer_core.app
import fer_core.data
import fer_core.serve

ROOT = Path(__file__).resolve().parent.parent


def tensorflow_free_modules() -> list[str]:
    modules = ["fer_core.labels", "fer_core.model_card"]
    for package in (fer_core.data, fer_core.app, fer_core.serve):
        modules.append(package.__name__)
        modules += [m.name for m in pkgutil.iter_modules(package.__path__, package.__name__ + ".")]
    return modules


def test_data_and_app_modules_do_not_import_tensorflow():
    modules = tensorflow_free_modules()
    assert "fer_core.data.kaggle_csv" in modules and "fer_core.app.ui" in modules
    code = "\n".join(f"import {m}" for m in modules) + (
        "\nimport sys\nprint(sorted({'tensorflow', 'keras'} & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
