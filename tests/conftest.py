"""Shared fixtures: paths to ../shared/data (skipped with a reason where it is absent)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FER_SHARED_DATA", ROOT.parent / "shared" / "data"))
FER_DIR = SHARED_DATA / "fer2013"
ASTRONAUT = SHARED_DATA / "photos" / "astronaut.png"


DATA_FIXTURES = {"fer_dir", "astronaut_path"}
TRAINING_FIXTURES = {"trained_run", "published_model", "crop_run"}  # module fixtures that train a model first


# Test modules that run on one pytest-xdist worker together: the Ray ones (which share one local Ray:
# see LocalRay) and the browser ones (Chromium and `streamlit run` servers). Every other
# module is a group of its own, so that its module-scoped fixtures (a trained run, a server) are built
# once, on one worker.
XDIST_GROUPS = {
    "ray": {"test_batch", "test_sweep", "test_serve_ray"},
    "browser": {"test_browser", "test_journey", "test_hostile_browser"},
}


# The groups that take longest (`pytest --durations=0`, summed per group: each 45-120 s, the rest under 45),
# longest first: they are handed out first (pyproject.toml's `--no-loadscope-reorder` keeps this order), so
# that the short ones fill in around them and no worker is left with a long group while the other idles.
LONGEST_GROUPS = ("browser", "test_training", "ray", "test_benchmarks", "test_crops", "test_hostile_app")


def xdist_group(module: str) -> str:
    return next((group for group, modules in XDIST_GROUPS.items() if module in modules), module)


def group_rank(item: pytest.Item) -> int:
    """Where the item's group comes in the run: :data:`LONGEST_GROUPS` in their order, then the rest."""
    group = xdist_group(item.path.stem)
    return LONGEST_GROUPS.index(group) if group in LONGEST_GROUPS else len(LONGEST_GROUPS)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads xdist_group into the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``needs_data`` on tests that read ../shared/data, ``slow`` on those that train a model first,
    and each test's ``xdist_group`` (see :data:`XDIST_GROUPS`; used by ``--dist loadgroup``), the
    longest groups first (:data:`LONGEST_GROUPS`; otherwise in the order collected)."""
    items.sort(key=group_rank)  # stable: each module's tests stay together and in order
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & DATA_FIXTURES:
            item.add_marker(pytest.mark.needs_data)
        if names & TRAINING_FIXTURES or item.path.stem in XDIST_GROUPS["browser"]:
            item.add_marker(pytest.mark.slow)  # a model trained first, or Chromium driving real servers
        item.add_marker(pytest.mark.xdist_group(xdist_group(item.path.stem)))


@pytest.fixture(scope="session")
def fer_dir() -> Path:
    if not (FER_DIR / "train").is_dir():
        pytest.skip(f"FER2013 image folders not found at {FER_DIR} (CI has ../shared/data; a fresh clone may not)")
    return FER_DIR


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    if not ASTRONAUT.is_file():
        pytest.skip(f"{ASTRONAUT} not found (CI has ../shared/data; a fresh clone may not)")
    return ASTRONAUT


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session caches loaded datasets in its own folder, never in the user's ~/.cache."""
    monkeypatch.setenv("FER_CACHE_DIR", str(run_temp(tmp_path_factory) / "fer_cache"))


def run_temp(tmp_path_factory) -> Path:
    """The test run's temporary folder, shared by its pytest-xdist workers (each worker's own folder
    is inside it), so that they load FER2013 into one cache (written atomically) instead of one each."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


class LocalRay:
    """The one embedded local Ray of 2 CPUs that the "ray" group's modules share (see :data:`XDIST_GROUPS`),
    instead of one started and stopped by each module (~7 s to start and a few more to stop, each time):
    started by the group's first test that asks for it (:func:`local_ray`), stopped after its last test
    (:func:`pytest_runtest_teardown`). It is started as ``fer batch --engine ray`` starts one
    (:func:`fer_core.inference.batch_ray.start_ray`), with ``tests/`` on its workers' path (for
    :mod:`batch_workers`), the run's dataset cache and ``$FER_TEST_DIE_ONCE`` (the marker file of
    :class:`batch_workers.DiesOnceAnalyzer`) in their environment, and no usage statistics sent (as
    the sweep's own embedded Ray)."""

    def __init__(self, folder: Path, cache: Path):
        self.marker = folder / "died"
        tests_first = os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))
        self.environment = {"PYTHONPATH": tests_first, "FER_TEST_DIE_ONCE": str(self.marker),
                            "FER_CACHE_DIR": str(cache), "RAY_USAGE_STATS_ENABLED": "0"}

    def start(self) -> None:
        import ray

        from fer_core.inference.batch_ray import start_ray

        if ray.is_initialized():
            return
        with pytest.MonkeyPatch.context() as patch:  # Ray's processes keep the environment they start in
            for name, value in self.environment.items():
                patch.setenv(name, value)
            start_ray(num_cpus=2)

    @staticmethod
    def stop() -> None:
        import ray

        ray.shutdown()

    @staticmethod
    def wait_for_free_cpus(timeout: float = 60.0) -> None:
        """Return once every CPU of it is free (the earlier tests' actors and replicas handed theirs back);
        fail after ``timeout`` instead, for work that would wait for them for ever (Ray Tune's trials)."""
        import ray

        deadline = time.monotonic() + timeout
        while ray.available_resources().get("CPU", 0) < ray.cluster_resources().get("CPU", 0):
            if time.monotonic() > deadline:
                pytest.fail(f"the local Ray's CPUs are still held after {timeout:.0f} s: "
                            f"{ray.available_resources().get('CPU', 0)} of {ray.cluster_resources().get('CPU')} free")
            time.sleep(0.2)


@pytest.fixture(scope="session")
def _local_ray(tmp_path_factory) -> LocalRay:
    """The session's :class:`LocalRay`, not started yet."""
    pytest.importorskip("ray")
    cluster = LocalRay(tmp_path_factory.mktemp("ray"), run_temp(tmp_path_factory) / "fer_cache")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def local_ray(_local_ray) -> LocalRay:
    """The "ray" group's local Ray (:class:`LocalRay`), started if it is not running."""
    _local_ray.start()
    return _local_ray


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """Stop the "ray" group's Ray after its last test (the next test is in another group, or there is
    none), once that test's fixtures are torn down (a Serve app on it): idle, a local Ray still takes a
    few CPU seconds a minute from the other groups' tests on this worker."""
    yield
    last_of_group = nextitem is None or xdist_group(nextitem.path.stem) != "ray"
    if xdist_group(item.path.stem) == "ray" and last_of_group and "ray" in sys.modules:
        LocalRay.stop()


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """An untrained 7-class ``tiny`` model (no card: FER7 assumed). Its predictions are meaningless:
    use it to test the pipeline's plumbing, never accuracy."""
    from fer_core.training.architectures import build_model

    path = tmp_path_factory.mktemp("models") / "tiny_fer7.keras"
    build_model("tiny", 7).save(path)
    return path


@pytest.fixture(scope="session")
def tiny_recognizer(tiny_model_path):
    from fer_core.inference.recognizer import EmotionRecognizer

    return EmotionRecognizer(tiny_model_path)


@pytest.fixture(scope="session")
def astronaut_clip(astronaut_path, tmp_path_factory) -> Path:
    """A 10-frame MP4 (10 fps, 256×256) of the astronaut photo drifting right by 2 px a frame."""
    import av
    import cv2
    import numpy as np

    photo = cv2.resize(cv2.imread(str(astronaut_path)), (256, 256))
    path = tmp_path_factory.mktemp("video") / "astronaut.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
        for i in range(10):
            frame = np.full_like(photo, 90)
            frame[:, 2 * i :] = photo[:, : 256 - 2 * i]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode(None))
    return path

