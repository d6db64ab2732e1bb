"""The Ray engine of batch analysis: work units spread over a pool of Ray actors.

Each actor is a :class:`fer_core.inference.batch.BatchAnalyzer` in its own worker process, so the
model is loaded once per worker and reused for every unit sent to it. Ray restarts an actor whose
process dies (``max_restarts``) and sends the unit it was running again (``max_task_retries``); the
driver alone writes rows, once per unit it gets back, so a retried unit is never written twice. An
actor out of restarts is replaced and its unit given out again; a unit that kills its worker every
time it is tried is written as one error row per item, and the batch goes on. Ray is imported
here, inside functions, never by ``import fer_core``.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from pathlib import Path

from fer_core.inference.batch import BatchAnalyzer, BatchError, BatchSettings, Engine, WorkUnit, item_row

MAX_RESTARTS = 4  # per actor: a worker killed by the system (memory, a lost node) comes back
MAX_TASK_RETRIES = 2  # per unit, on a restarted actor
ROUNDS = 2  # times the driver gives out a unit whose actor ran out of restarts on it
# Each actor holds one CPU of Ray's, so its TensorFlow, ONNX Runtime and OpenCV run on one thread
# each: left alone, every actor's libraries would start a thread per core of the machine and the
# actors would fight for them.
ONE_THREAD_EACH = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "FER_INFERENCE_THREADS": "1",
                   "OPENCV_FOR_THREADS_NUM": "1"}


def start_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address``, or start an embedded local Ray; ``False`` when this process
    already runs Ray (a test, a notebook), which is then left as it is."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, runtime_env=this_package_first())
    return True


def this_package_first() -> dict:
    """A runtime environment whose workers import the ``fer_core`` this process runs, wherever they
    start: a checkout run without installing it is then the code the embedded workers run too."""
    import fer_core

    root = str(Path(fer_core.__file__).resolve().parent.parent)
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}}


def worker_count() -> int:
    """One actor per CPU the running Ray has (the embedded one: this machine's cores)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def ray_engine(settings: BatchSettings, workers: int | None = None, address: str | None = None,
               analyzer_class: type[BatchAnalyzer] = BatchAnalyzer) -> Engine:
    """An engine for :func:`fer_core.inference.batch.run_batch` over ``workers`` actors (default:
    one per CPU of the cluster) of ``analyzer_class``; Ray is started or joined when it runs."""

    def engine(units: list[WorkUnit], done: Callable[[WorkUnit, list[dict]], None]) -> None:
        import ray

        started = start_ray(address, workers if not address else None)
        actors = []
        try:
            actor_class = ray.remote(num_cpus=1, max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES,
                                     runtime_env={"env_vars": ONE_THREAD_EACH})(analyzer_class)
            actors += [actor_class.remote(settings) for _ in range(workers or worker_count())]
            _wait_until_started(actors)
            _run_on_actors(units, actors, actor_class, settings, done)
        finally:
            for actor in filter(None, actors):  # their CPUs back now, not once the garbage collector frees
                ray.kill(actor)  # these handles (a Ray that goes on running: a notebook's, a cluster's)
            if started:
                ray.shutdown()

    return engine


def _wait_until_started(actors: list) -> None:
    """Return once every actor has loaded the model; a :class:`BatchError` when one cannot (a model
    missing on a node, a package not installed there), before any unit is given out and recorded."""
    import ray
    from ray.exceptions import RayActorError

    try:
        ray.get([actor.__ray_ready__.remote() for actor in actors])
    except RayActorError as exc:
        cause = str(exc).strip().splitlines()[-1]  # the worker's exception, after its traceback
        raise BatchError(f"the Ray workers could not start: {cause}") from None


def _run_on_actors(units: list[WorkUnit], actors: list, actor_class, settings: BatchSettings,
                   done: Callable[[WorkUnit, list[dict]], None]) -> None:
    """Give every actor one unit at a time and hand back each unit's rows as it finishes, in whatever
    order they finish. One at a time, because Ray fails and retries every unit queued on an actor
    that dies, and a unit that kills its worker must not use up the tries of the units behind it."""
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    from fer_core.model_card import ModelCard

    queue = deque(units)
    running: dict = {}  # result reference → (unit, index of its actor, the actor)
    rounds: dict[WorkUnit, int] = {}  # times a unit came back with its worker dead
    model_name = ModelCard.load(settings.analysis.model).name

    def submit(slot: int) -> None:
        if queue:
            if actors[slot] is None:  # its actor was lost: a fresh one, now that there is a unit for it
                actors[slot] = actor_class.remote(settings)
            unit = queue.popleft()
            running[actors[slot].analyze.remote(unit)] = (unit, slot, actors[slot])

    for slot in range(len(actors)):
        submit(slot)
    while running:
        [ref], _ = ray.wait(list(running), num_returns=1)
        unit, slot, actor = running.pop(ref)
        try:
            rows = ray.get(ref)
        except RayActorError:  # the actor ran out of restarts or tries: a fresh one takes its place
            if actors[slot] is actor:
                ray.kill(actor)  # gives its CPU back now, for the fresh one to start on
                actors[slot] = None  # started by submit, if a unit is left for it
            rounds[unit] = rounds.get(unit, 0) + 1
            if rounds[unit] < ROUNDS:  # perhaps not its fault (a lost node): give it out again
                queue.appendleft(unit)
                submit(slot)
                continue
            reason = "its worker died every time it analysed it"
            rows = [item_row(item, model_name, "error", reason) for item in unit.items]
        except RayTaskError as exc:  # an exception the analyzer's own handling let through
            cause = str(exc).strip().splitlines()[-1]
            rows = [item_row(item, model_name, "error", f"unexpected: {cause}") for item in unit.items]
        done(unit, rows)
        submit(slot)
