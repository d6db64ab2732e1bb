"""Load order of native libraries that would otherwise crash the process once TensorFlow is loaded.

TensorFlow loads its Python extension with ``RTLD_GLOBAL`` (``tensorflow/python/pywrap_tensorflow.py``),
which puts ``libtensorflow_framework.so.2`` into the process's global symbol scope, and that library
exports the OpenSSL API of the BoringSSL copy linked into it (``CRYPTO_malloc``, ``EVP_*``,
``SHA256_Update``…). pylibsrtp's extension (imported by aiortc under streamlit-webrtc for the Live
camera) links its own OpenSSL 3 statically, exports the same names and calls them through its PLT; the
dynamic linker searches the global scope first, so when pylibsrtp is loaded after TensorFlow its
OpenSSL calls land in BoringSSL's functions, whose structures differ, and its initialiser dies with
SIGSEGV. Loading pylibsrtp with ``RTLD_DEEPBIND`` makes its own definitions win, in either order.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

SELF_BOUND_MODULES = ("pylibsrtp._binding",)


def load_self_bound(module: str) -> bool:
    """Import the extension ``module`` with ``RTLD_DEEPBIND`` (its own symbols before the global ones).

    Returns False when it was already imported, is not installed, or the platform has no
    ``RTLD_DEEPBIND`` (only glibc has it; elsewhere TensorFlow's wheels do not export these symbols).
    """
    deepbind = getattr(os, "RTLD_DEEPBIND", None)
    if deepbind is None or module in sys.modules:
        return False
    package = module.partition(".")[0]
    if importlib.util.find_spec(package) is None:
        return False
    importlib.import_module("_cffi_backend")  # its dependency, loaded the ordinary way
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | deepbind)
    try:
        importlib.import_module(module)
    finally:
        sys.setdlopenflags(flags)
    return True


def guard_native_libraries() -> None:
    """Load every library known to clash with TensorFlow's exported symbols self-bound."""
    for module in SELF_BOUND_MODULES:
        load_self_bound(module)
