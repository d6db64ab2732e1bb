"""Regression: loading the Live camera's SRTP library after TensorFlow killed the server (SIGSEGV).

Each case runs in a fresh interpreter, since the crash is a property of the process's load order: four
TensorFlow start-ups, so the orders are ``slow`` (out of the inner loop).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SRTP_ROUND_TRIP = """
import pylibsrtp
key = bytes(range(30))
tx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
rx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
rtp = bytes([0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 42]) + b"payload" * 10
assert rx.unprotect(tx.protect(rtp)) == rtp
del tx, rx
"""

TENSORFLOW_IN_USE = "import tensorflow as tf\ntf.constant(1.0)\n"

ORDERS = {
    # The Upload page (TensorFlow) and then the Live camera page (streamlit-webrtc → aiortc → pylibsrtp).
    "tensorflow, fer_core, then webrtc": TENSORFLOW_IN_USE + "import fer_core\nimport streamlit_webrtc\n",
    # A user's script that imports TensorFlow first and our package later.
    "tensorflow, fer_core, then pylibsrtp": TENSORFLOW_IN_USE + "import fer_core.labels\n",
    "fer_core, tensorflow, then pylibsrtp": "import fer_core\n" + TENSORFLOW_IN_USE,
    "webrtc before tensorflow": "import fer_core\nimport streamlit_webrtc\n" + TENSORFLOW_IN_USE,
}


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("order", list(ORDERS))
def test_srtp_works_in_any_import_order(order):
    done = _run(ORDERS[order] + SRTP_ROUND_TRIP + "print('srtp ok')\n")
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert "srtp ok" in done.stdout


def test_pylibsrtp_is_loaded_self_bound_by_the_package():
    done = _run("import sys, fer_core\nprint('pylibsrtp._binding' in sys.modules)")
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr[-2000:]
