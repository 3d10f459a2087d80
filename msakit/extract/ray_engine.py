"""Clips spread over a Ray cluster: the ``--engine ray`` of ``msakit extract`` and ``msakit predict --video``.

``map_clips(function, clips)`` runs ``function(path, *args)`` for every clip on a pool of Ray
actors, one per CPU of the cluster (or ``workers``), and returns the results in the clips'
order. Each actor is a long-lived process: the extractor's models (face landmarker, speech
recogniser) are loaded by its first clip and reused for every later one. The driver reads each
clip's file and ships its bytes with the task, so worker machines need no shared filesystem;
the actor writes them to a private temporary folder under the clip's own file name, runs the
function on that path and deletes it. At most two clips per actor are in flight, so the object
store holds a few clips at a time, not the whole corpus.

A worker process that dies (killed, out of memory, its machine lost) is restarted by Ray and its
clips are run again (``max_restarts``, ``max_task_retries``); a clip whose retries all fail
ends as that clip's failure, never as a lost or duplicated row. Results depend on each clip
alone, so the driver's assembly (``msakit.extract.pipeline``) writes the same pickle, byte for
byte, as one machine does.

Ray is optional (``pip install 'msakit[distributed]'``); ``address=None`` starts a local
cluster of this machine's cores for the call (and stops it after), an address (``auto``,
``ray://head:10001`` or ``head:6379``) joins a running one; a Ray session the caller already
started is used as it is.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from msakit.errors import ConfigError

IN_FLIGHT_PER_ACTOR = 2
RETRIES = 3  # restarts of a dead worker, and re-runs of the clips it held


def require_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray, which is not installed: pip install 'msakit[distributed]' (or pip install ray), "
                          "or use --engine local") from None
    return ray


class ClipWorker:
    """A Ray actor (made remote in ``map_clips``): runs the named function on clips it is sent."""

    def __init__(self) -> None:
        import warnings

        os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe / TensorFlow Lite chatter
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        warnings.simplefilter("ignore")
        self.folder = Path(tempfile.mkdtemp(prefix="msakit-ray-"))
        self.functions: dict[str, Callable] = {}

    def run(self, function: str, name: str, data: bytes, args: tuple) -> Any:
        if function not in self.functions:
            import importlib

            module, _, attribute = function.rpartition(".")
            self.functions[function] = getattr(importlib.import_module(module), attribute)
        here = Path(tempfile.mkdtemp(dir=self.folder))
        try:
            path = here / name
            path.write_bytes(data)
            return self.functions[function](str(path), *args)
        finally:
            shutil.rmtree(here, ignore_errors=True)

    def pid(self) -> int:
        return os.getpid()


def blas_threads() -> str:
    """The BLAS thread count of this process, as the environment sets it (else one per core)."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(name, "").strip().isdigit():
            return os.environ[name].strip()
    return str(os.cpu_count() or 1)


def connect(address: str | None, workers: int | None = None):
    """``(ray, started_here)``: an existing Ray session, the cluster at ``address``, or a local one."""
    ray = require_ray()
    if ray.is_initialized():
        return ray, False
    options = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=False)
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=workers or os.cpu_count() or 1, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        first = " ".join(str(error).split())[:200]
        raise ConfigError(f"--engine ray: could not start or reach {where} ({first}); start the head with `ray start --head` "
                          "and pass its address (--address HOST:6379), or leave --address out for a local one") from None
    return ray, True


def map_clips(function: Callable, clips: list[tuple[str | Path, tuple]], *, address: str | None = None, workers: int | None = None,
              on_result: Callable[[int, Any], None] | None = None, on_failure: Callable[[int, str], Any] | None = None) -> tuple[list, dict]:
    """``function(path, *args)`` for every ``(path, args)`` in ``clips`` on Ray actors; the results
    in order, and ``{"actors", "cluster_cpus", "seconds"}``. ``function`` must be importable by
    name (a module-level function). ``on_result(i, result)`` is called as each clip finishes
    (progress); a clip whose worker died on every retry gets ``on_failure(i, reason)`` as its
    result (without ``on_failure``, the error is raised)."""
    if not clips:
        return [], {"actors": 0, "cluster_cpus": 0, "seconds": 0.0}
    name = f"{function.__module__}.{function.__qualname__}"
    ray, started = connect(address, workers)
    from ray.exceptions import RayActorError, RayTaskError

    start = time.perf_counter()
    actors = []
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = max(1, min(workers or cpus, len(clips)))
        # The workers' BLAS uses as many threads as this process's: the audio features' matrix
        # products round differently on one thread than on several (Ray would give each worker 1).
        threads = blas_threads()
        remote = ray.remote(num_cpus=1, max_restarts=RETRIES, max_task_retries=RETRIES,
                            runtime_env={"env_vars": {"OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}})(ClipWorker)
        actors = [remote.remote() for _ in range(count)]
        results: list = [None] * len(clips)
        queue = deque(range(len(clips)))
        pending: dict = {}

        def submit(actor) -> None:
            i = queue.popleft()
            path, args = clips[i]
            path = Path(path)
            pending[actor.run.remote(name, path.name, path.read_bytes(), tuple(args))] = (i, actor)

        for _ in range(IN_FLIGHT_PER_ACTOR):
            for actor in actors:
                if queue:
                    submit(actor)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            i, actor = pending.pop(done[0])
            try:
                results[i] = ray.get(done[0])
            except (RayActorError, RayTaskError) as error:
                if on_failure is None:
                    raise
                first = " ".join(str(error).split())[:200]
                results[i] = on_failure(i, f"the Ray worker failed on this clip {RETRIES + 1} times ({type(error).__name__}: {first})")
                if isinstance(error, RayActorError):  # out of restarts: a fresh worker takes its place
                    actor = remote.remote()
                    actors.append(actor)
            if on_result is not None:
                on_result(i, results[i])
            if queue:
                submit(actor)
        return results, {"actors": count, "cluster_cpus": cpus, "seconds": time.perf_counter() - start}
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        if started:
            ray.shutdown()
