"""The package's boundaries: data, app, serve, labels and model-card code never import TensorFlow or Keras,
and every import inside fer_core points down its layers (:data:`LAYERS`), with no modules importing each
other in a circle."""

from __future__ import annotations

import ast
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


# --------------------------------------------------------------------------- layers
#
# Every module of fer_core sits in a layer, and imports point downward only: a module may import modules of
# its own layer or of a lower one, never of a higher one. Training sits above inference because it measures
# what it trains through the recognizer (``training.metrics``, ``training.publish``) and builds on the
# exported-model helpers, while inference needs nothing of training: the names a model file and its card
# agree on live in ``model_format``, below both. The surfaces (the pages' ``app``, the HTTP API, the CLI) sit
# on top. Within a layer any import is allowed, but no modules may import each other in a circle, whether
# the import is at the top of a file, inside a function or under ``TYPE_CHECKING``: a lazy import is still
# a dependency. A new module needs a line here (or falls under its package's line).
LAYERS = {
    "fer_core": 0,  # the package's __init__: the native-libraries guard
    "fer_core.native_libs": 0,
    "fer_core.labels": 0,
    "fer_core.model_format": 0,
    "fer_core.model_card": 0,
    "fer_core.settings": 0,
    "fer_core.machine": 0,
    "fer_core.outputs": 0,
    "fer_core.tensorflow_start": 0,
    "fer_core.data": 1,
    "fer_core.inference": 2,
    "fer_core.training": 3,
    "fer_core.app": 4,
    "fer_core.serve": 4,
    "fer_core.cli": 4,
    "fer_core.__main__": 4,
}
PACKAGE = "fer_core"


def package_modules() -> dict[str, Path]:
    """Every module of fer_core by dotted name (a package by its own name), with its file."""
    modules = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def layer_of(module: str) -> int | None:
    """The layer of the longest entry of :data:`LAYERS` that names ``module`` or a package holding it
    (the bare package name stands for its ``__init__`` only); ``None`` when none does."""
    names = [key for key in LAYERS if module == key or (key != PACKAGE and module.startswith(key + "."))]
    return LAYERS[max(names, key=len)] if names else None


def imported_modules(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The fer_core modules that ``module``'s source imports anywhere in it (functions and
    ``TYPE_CHECKING`` blocks included), relative imports resolved. ``from a import b`` names the
    module ``a.b`` when that is a module, else ``a``; a module importing itself is left out."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            base = ".".join(part for part in (base, node.module) if part)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t == PACKAGE or t.startswith(PACKAGE + "."))
    return found - {module}


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    known = set(modules)
    return {name: imported_modules(path.read_text(), name, path.name == "__init__.py", known)
            for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (strongly connected)."""

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for target in graph.get(todo.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    reach = {module: reachable(module) for module in graph}
    groups = {frozenset({module} | {other for other in reach[module] if module in reach.get(other, ())})
              for module in graph}
    return sorted(sorted(group) for group in groups if len(group) > 1)


def test_the_import_reader_sees_lazy_relative_and_type_checking_imports():
    known = {"fer_core", "fer_core.data", "fer_core.inference", "fer_core.inference.detect",
             "fer_core.inference.detect.haar", "fer_core.inference.pipeline", "fer_core.labels"}
    source = ("from typing import TYPE_CHECKING\nimport numpy\nfrom . import haar\nfrom .. import pipeline\n"
              "from fer_core.data import FACE_SIZE\nif TYPE_CHECKING:\n    from fer_core.labels import LabelScheme\n"
              "def f():\n    import fer_core.inference\n")
    found = imported_modules(source, "fer_core.inference.detect", True, known)
    assert found == {"fer_core.inference.detect.haar", "fer_core.inference.pipeline", "fer_core.data",
                     "fer_core.labels", "fer_core.inference"}
    assert imported_modules("from .cli import main\n", "fer_core.__main__", False, known | {"fer_core.cli"}) \
        == {"fer_core.cli"}


def test_every_module_has_a_layer():
    missing = [module for module in package_modules() if layer_of(module) is None]
    assert not missing, f"modules missing from LAYERS in {Path(__file__).name}: {', '.join(missing)}"


def test_no_module_imports_a_higher_layer():
    upward = [f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
              for module, targets in sorted(import_graph().items()) for target in sorted(targets)
              if layer_of(target) is not None and layer_of(module) is not None and layer_of(target) > layer_of(module)]
    assert not upward, "imports pointing upward:\n" + "\n".join(upward)


def test_no_modules_import_each_other_in_a_circle():
    found = circles(import_graph())
    assert not found, "modules importing each other:\n" + "\n".join(" <-> ".join(group) for group in found)
