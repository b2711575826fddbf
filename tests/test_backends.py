"""The local process pool and the Ray backend run units and return their records."""

import os

import pytest
import torch

from sparse_rtrl.experiments import Experiment, ResultStore, run_units
from sparse_rtrl.experiments._backends import (
    Job,
    LocalBackend,
    RayBackend,
    WorkerLost,
    accepted_options,
    make_backend,
)


def square_unit(config: dict, seed: int) -> list[dict]:
    return [
        {
            "seed": seed,
            "value": config["scale"] * seed**2,
            "threads": torch.get_num_threads(),
            "pid": os.getpid(),
        }
    ]


def broken_unit(config: dict, seed: int) -> list[dict]:
    if seed == 1:
        raise ValueError(f"unit {seed} is broken")
    return square_unit(config, seed)


def dying_unit(config: dict, seed: int) -> list[dict]:
    os._exit(3)


def unit_with_options(config, seed, cache_dir=None):
    return [{"cache_dir": cache_dir}]


def _jobs(run, count=3):
    return [Job(run, {"scale": 2.0}, seed) for seed in range(count)]


def _collect(backend, jobs):
    return dict(backend.run(jobs))


def test_in_process_backend_runs_in_order():
    backend = LocalBackend(1)
    indices = [index for index, _ in backend.run(_jobs(square_unit))]
    assert indices == [0, 1, 2]


def test_in_process_backend_records_failure():
    results = _collect(LocalBackend(1), _jobs(broken_unit))
    assert results[0]["status"] == "ok"
    assert results[1]["status"] == "failed"
    assert "unit 1 is broken" in results[1]["error"]
    assert results[2]["records"][0]["value"] == 8.0


def test_process_pool_runs_units_single_threaded():
    results = _collect(LocalBackend(2), _jobs(broken_unit, 4))
    assert sorted(results) == [0, 1, 2, 3]
    assert results[1]["status"] == "failed"
    ok = [results[i]["records"][0] for i in (0, 2, 3)]
    assert [r["value"] for r in ok] == [0.0, 8.0, 18.0]
    assert all(r["threads"] == 1 for r in ok)
    assert all(r["pid"] != os.getpid() for r in ok)


def test_dead_worker_reported_not_stored(tmp_path):
    experiment = Experiment(
        name="dying",
        title="dying",
        description="every worker exits",
        configs=lambda scale: {"only": {"scale": 1.0}},
        run=dying_unit,
        summarize=lambda results: {},
    )
    outcome = run_units(
        experiment.units("tiny"),
        {"dying": experiment},
        tmp_path,
        LocalBackend(2),
        progress=False,
    )
    assert len(outcome.lost) == 2
    assert outcome.ran == {}
    assert "worker process died" in outcome.lost[0][3]
    assert ResultStore(tmp_path).records("dying") == []


def test_accepted_options_filters_by_signature():
    options = {"cache_dir": "/tmp/x", "progress": True}
    assert accepted_options(unit_with_options, options) == {"cache_dir": "/tmp/x"}
    assert accepted_options(square_unit, options) == {}


def test_make_backend_rejects_unknown():
    with pytest.raises(ValueError, match="backend must be one of"):
        make_backend("slurm")
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        LocalBackend(0)


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip(
        "ray", reason="ray is not installed; pip install 'sparse-rtrl[ray]'"
    )
    # Ray workers inherit the environment of the processes ray.init starts, and
    # must import this module to unpickle its unit functions.
    saved = os.environ.get("PYTHONPATH")
    here = os.path.dirname(os.path.abspath(__file__))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, saved]))
    try:
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    yield ray
    ray.shutdown()


def test_ray_backend_runs_and_stores(ray_instance, tmp_path):
    experiment = Experiment(
        name="squares",
        title="squares",
        description="seed 1 fails",
        configs=lambda scale: {"only": {"scale": 2.0}},
        run=broken_unit,
        summarize=lambda results: {},
        seeds={"tiny": 3, "quick": 3, "default": 3},
    )
    outcome = run_units(
        experiment.units("tiny"),
        {"squares": experiment},
        tmp_path,
        RayBackend(),
        progress=False,
    )
    assert ray_instance.is_initialized(), "the backend shut down a Ray it did not start"
    assert outcome.ran == {"squares": 3}
    assert [(f[0], f[2]) for f in outcome.failed] == [("squares", 1)]
    stored = {r["seed"]: r for r in ResultStore(tmp_path).records("squares")}
    assert stored[0]["status"] == "ok"
    assert stored[2]["records"][0]["value"] == 8.0
    assert stored[2]["records"][0]["threads"] == 1
    assert stored[1]["status"] == "failed"
    assert "unit 1 is broken" in stored[1]["error"]


def test_ray_worker_lost_is_reported(ray_instance):
    results = dict(RayBackend(max_retries=0).run([Job(dying_unit, {}, 0)]))
    assert isinstance(results[0], WorkerLost)


DRIVER = """
import multiprocessing, os, signal, time
from concurrent.futures import ProcessPoolExecutor
from sparse_rtrl.experiments._backends import exit_with_parent

if __name__ == "__main__":
    pool = ProcessPoolExecutor(
        1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(), 0.1),
    )
    print(pool.submit(os.getpid).result(), flush=True)
    pool.submit(time.sleep, 60)
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc")
def test_pool_worker_exits_when_driver_is_killed(tmp_path):
    import subprocess
    import sys
    import time

    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == -9, result.stderr
    worker = int(result.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(worker)
