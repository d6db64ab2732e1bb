"""How the suite itself runs: on pytest-xdist workers, each test in its module's group (conftest.py's
``xdist_group``), so that a module's fixtures (a trained run, a server, the shared local Ray) are built on one
worker only. pytest-xdist reads the group into the node id in its own collection hook: conftest's hook must
run before it, or every test becomes a group of its own."""

from __future__ import annotations

import os

import pytest
from conftest import xdist_group


def test_this_test_runs_in_its_modules_xdist_group(request):
    if not os.environ.get("PYTEST_XDIST_WORKER") or not request.config.getvalue("loadgroup"):
        pytest.skip("checks the grouping of `--dist loadgroup` on xdist workers (the default addopts); not this run")
    assert request.node.nodeid.endswith(f"@{xdist_group('test_suite')}"), request.node.nodeid
