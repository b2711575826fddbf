"""Backends that run units of work: this process, a process pool, a Ray cluster.

Every backend runs ``execute_unit`` on each job and yields the results as they
finish, and the driver stores them. Workers never write results themselves, so a Ray
cluster needs no filesystem shared with the driver.
"""

from __future__ import annotations

import inspect
import logging
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from ..kernels import limit_kernel_threads

log = logging.getLogger(__name__)

BACKENDS = ("local", "ray")


def exit_with_parent(parent: int, interval: float = 1.0) -> None:
    """End this worker process soon after process ``parent`` is gone.

    Used as a process-pool initializer. Without it, pool workers whose driver
    was killed (SIGTERM, SIGKILL) were seen to finish their jobs and stay alive.
    A daemon thread checks the parent every ``interval`` seconds.
    """

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@dataclass(frozen=True)
class Job:
    """A call ``run(config, seed, **options)`` to make on some worker."""

    run: Callable[..., list[dict[str, Any]]]
    config: Any
    seed: int
    options: dict[str, Any] = field(default_factory=dict)


class WorkerLost(RuntimeError):
    """A worker process died (killed, out of memory) before returning a result.

    This is a failure of the machinery, not of the unit: the runner stores nothing
    for it, so the next run tries the unit again.
    """


def accepted_options(run: Callable, options: dict[str, Any]) -> dict[str, Any]:
    """Return the entries of ``options`` that ``run`` takes as keyword arguments."""
    try:
        parameters = inspect.signature(run).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(options)
    return {key: value for key, value in options.items() if key in parameters}


def execute_unit(job: Job, single_thread: bool = True) -> dict[str, Any]:
    """Run one job and return ``status``, ``records``, ``error`` and ``seconds``.

    Any exception of the job becomes ``status="failed"`` with its traceback as
    ``error``, so one failing unit never stops the others. ``KeyboardInterrupt``
    still propagates.

    Args:
      job: the call to make.
      single_thread: limit torch and numba to one thread; a worker of a pool shares the
        cores with the other workers.
    """
    if single_thread:
        limit_kernel_threads()
    start = time.perf_counter()
    try:
        records = job.run(job.config, job.seed, **job.options)
        if not isinstance(records, list) or not all(
            isinstance(r, dict) for r in records
        ):
            raise TypeError(
                f"{getattr(job.run, '__name__', job.run)} must return a list of "
                f"dicts; got {type(records).__name__}"
            )
        result = {"status": "ok", "records": records, "error": None}
    except Exception:
        result = {"status": "failed", "records": [], "error": traceback.format_exc()}
    result["seconds"] = time.perf_counter() - start
    return result


class LocalBackend:
    """Run jobs in this process (``workers=1``) or in a spawned process pool.

    Args:
      workers: parallel processes; 1 runs every job here, one after another.
    """

    name = "local"

    def __init__(self, workers: int = 1):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1; got workers={workers}")
        self.workers = workers

    @property
    def in_process(self) -> bool:
        return self.workers == 1

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield ``(index into jobs, result)`` as each job finishes.

        A worker that dies yields a ``WorkerLost`` in place of the result for every
        job that had not returned, because a broken pool cannot run the rest.
        """
        if self.in_process:
            for index, job in enumerate(jobs):
                yield index, execute_unit(job, single_thread=False)
            return
        # spawn, not fork: a forked child inherits torch's thread pools and locks.
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(
            self.workers,
            mp_context=context,
            initializer=exit_with_parent,
            initargs=(os.getpid(),),
        )
        try:
            futures = {pool.submit(execute_unit, job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                index = futures[future]
                try:
                    yield index, future.result()
                except BrokenProcessPool as error:
                    yield index, WorkerLost(f"worker process died: {error}")
        finally:
            # On an interrupt, drop the jobs that have not started; the running ones
            # finish and their results are lost, so the next run repeats them.
            pool.shutdown(wait=True, cancel_futures=True)


class RayBackend:
    """Run jobs as Ray tasks with one CPU each.

    Uses the running Ray instance when this process already called ``ray.init``.
    Otherwise it connects to ``address`` (``auto`` or ``ray://host:port``), or starts
    a local instance when ``address`` is None, and shuts down what it started.

    Args:
      address: the cluster to connect to; None starts a local Ray instance.
      num_cpus: CPUs of a local instance started here; None lets Ray count them.
      max_retries: times Ray reruns a task whose worker died (Ray's default is 3).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        max_retries: int = 3,
    ):
        self.address = address
        self.num_cpus = num_cpus
        self.max_retries = max_retries

    @property
    def in_process(self) -> bool:
        return False

    @staticmethod
    def _import_ray():
        try:
            import ray
        except ImportError as error:
            raise RuntimeError(
                "the ray backend needs the ray package; install it with "
                "pip install 'sparse-rtrl[ray]'"
            ) from error
        return ray

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield ``(index into jobs, result)`` as each Ray task finishes.

        A task whose worker died (after Ray's own retries) yields a ``WorkerLost``.
        """
        ray = self._import_ray()
        started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False}
            if self.address is not None:
                kwargs["address"] = self.address
            elif self.num_cpus is not None:
                kwargs["num_cpus"] = self.num_cpus
            ray.init(**kwargs)
            started = True
        try:
            remote = ray.remote(num_cpus=1, max_retries=self.max_retries)(execute_unit)
            pending = {remote.remote(job): i for i, job in enumerate(jobs)}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    index = pending.pop(ref)
                    try:
                        yield index, ray.get(ref)
                    except ray.exceptions.RayError as error:
                        yield index, WorkerLost(f"ray task failed: {error}")
        finally:
            if started:
                ray.shutdown()


def make_backend(
    name: str, workers: int = 1, address: str | None = None
) -> LocalBackend | RayBackend:
    """Build the backend ``name`` (``local`` or ``ray``)."""
    if name == "local":
        return LocalBackend(workers)
    if name == "ray":
        # A local instance gets one CPU per worker; a cluster keeps its own count.
        return RayBackend(address, num_cpus=None if address else workers)
    raise ValueError(f"backend must be one of {list(BACKENDS)}; got backend={name!r}")
