"""The Dockerfile: what it copies exists and reaches the image; where docker runs, the image serves."""

from __future__ import annotations

import fnmatch
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from fer_core.model_card import DEFAULT_MODEL_NAME, FAST_MODEL_NAME

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
# What the app reads at run time: it must be in the build context and not left out by .dockerignore.
APP_FILES = ["streamlit_app.py", "requirements.txt", "fer_core/__init__.py", "app_pages", ".streamlit/config.toml",
             "data/sample", f"models/{DEFAULT_MODEL_NAME}", f"models/{FAST_MODEL_NAME}"]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, its arguments) per Dockerfile instruction, continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [(name.upper(), rest.strip()) for name, _, rest in (line.strip().partition(" ") for line in
                                                                joined.splitlines() if line.strip())]


def ignored_by_dockerignore(path: str) -> bool:
    """Whether a ``.dockerignore`` pattern (without ``!`` exceptions, which ours does not use) drops ``path``
    or one of its parent folders."""
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    parts = Path(path).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        assert not pattern.startswith("!"), "exceptions are not handled here"
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatch(prefix, pattern) or (bare != pattern and fnmatch.fnmatch(Path(prefix).name, bare)):
                return True
    return False


def test_what_the_dockerfile_copies_and_runs_is_in_the_repo():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    copies = [[a for a in args.split() if not a.startswith("--")] for name, args in instructions if name == "COPY"]
    assert copies, "the Dockerfile copies nothing"
    for *sources, _dest in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert source == "." or not ignored_by_dockerignore(source), f"COPY {source}: left out by .dockerignore"
    runs = " ".join(args for name, args in instructions if name == "RUN")
    copied = {Path(dest).name: Path(src).name for *srcs, dest in copies for src in srcs if src != "."}
    for requirement in [w for prev, w in zip(runs.split(), runs.split()[1:]) if prev == "-r"]:
        assert copied.get(Path(requirement).name) == "requirements.txt", f"-r {requirement}: not copied before the RUN"
    cmd = json.loads(next(args for name, args in instructions if name == "CMD"))
    assert cmd[:2] == ["streamlit", "run"] and cmd[cmd.index("--server.address") + 1] == "0.0.0.0"
    assert (ROOT / cmd[2]).is_file() and not ignored_by_dockerignore(cmd[2])
    assert any(name == "USER" and args not in ("root", "0") for name, args in instructions), "runs as root"
    assert any(name == "HEALTHCHECK" and "/_stcore/health" in args for name, args in instructions)


@pytest.mark.parametrize("path", APP_FILES)
def test_the_files_the_app_reads_reach_the_image(path):
    assert (ROOT / path).exists(), f"{path}: not in the repository"
    assert not ignored_by_dockerignore(path), f"{path}: left out of the image by .dockerignore"


def test_tests_and_git_stay_out_of_the_image():
    assert ignored_by_dockerignore(".git/config") and ignored_by_dockerignore("tests/test_docker.py")
    assert ignored_by_dockerignore("fer_core/__pycache__/cli.cpython-311.pyc")


def test_secrets_stay_out_of_git_and_the_image():
    """.streamlit/secrets.toml holds the live camera's TURN credentials."""
    assert ignored_by_dockerignore(".streamlit/secrets.toml")
    checked = subprocess.run(["git", "check-ignore", "-q", ".streamlit/secrets.toml"], cwd=ROOT)
    assert checked.returncode == 0, ".streamlit/secrets.toml is not in .gitignore"
    copied_at = next(i for i, (name, _) in enumerate(dockerfile_instructions()) if name == "COPY" and "." in _.split())
    later_runs = [args for name, args in dockerfile_instructions()[copied_at:] if name == "RUN"]
    assert any("secrets.toml" in args and "exit 1" in args for args in later_runs), "the build does not refuse secrets"


def _docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not installed"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True)
    return None if info.returncode == 0 else f"docker info failed (no daemon?): {info.stderr.strip()[:200]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_image_builds_runs_and_reports_healthy():
    reason = _docker_unavailable()
    if reason:
        pytest.skip(f"{reason}: the image cannot be built here (docs/deployment.md has the commands)")
    tag, port = "fer-dashboard:test", _free_port()
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=1800)
    container = subprocess.run(["docker", "run", "-d", "--rm", "-p", f"127.0.0.1:{port}:8501", tag],
                               check=True, capture_output=True, text=True).stdout.strip()
    try:
        deadline, body = time.monotonic() + 180, None
        while time.monotonic() < deadline and body is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5).read()
            except OSError:
                time.sleep(2)
        assert body == b"ok", subprocess.run(["docker", "logs", container], capture_output=True, text=True).stderr
        user = subprocess.run(["docker", "exec", container, "id", "-u"], capture_output=True, text=True).stdout
        assert user.strip() != "0"
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
