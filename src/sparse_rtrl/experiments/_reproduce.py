"""The resumable runner behind ``sparse-rtrl reproduce``.

Layout of the output directory:

- ``reproduce.json``: the manifest of the latest run (command, scale, seeds,
  machine, start and end times); the report reads it.
- ``runs/<experiment>/<key>.json``: one file per finished unit (experiment,
  condition, seed), written atomically by the driver as soon as the unit returns.
- ``cache/``: pretrained weights and per-learner adaptation runs that units share
  and reuse (local backend, or Ray on this machine).
- ``report.md`` and its PNG figures, written at the end.
"""

from __future__ import annotations

import datetime
import logging
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ._backends import Job, LocalBackend, RayBackend, WorkerLost, accepted_options
from ._registry import EXPERIMENTS, SCALES, Experiment, Unit, config_to_dict
from ._store import ResultStore, read_json, write_json_atomic

log = logging.getLogger(__name__)

MANIFEST = "reproduce.json"


@dataclass
class RunOutcome:
    """Counts of one ``reproduce`` call and where the report is.

    Attributes:
      ran: units run now, by experiment.
      skipped: units found finished in the store.
      failed: units that raised, as ``(experiment, condition, seed, error)``.
      lost: units whose worker died; nothing was stored, so a rerun repeats them.
      report: path of ``report.md``, or None when no report was written.
    """

    ran: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    failed: list[tuple[str, str, int, str]] = field(default_factory=list)
    lost: list[tuple[str, str, int, str]] = field(default_factory=list)
    report: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and not self.lost


def machine_info() -> dict[str, Any]:
    """Return the platform, CPU count, Python and torch versions of this machine."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def select_experiments(names: Sequence[str] | None = None) -> list[Experiment]:
    """Return the registered experiments named in ``names``, or all of them."""
    if not names:
        return list(EXPERIMENTS.values())
    unknown = [name for name in names if name not in EXPERIMENTS]
    if unknown:
        raise ValueError(
            f"experiment must be one of {sorted(EXPERIMENTS)}; got {unknown}"
        )
    return [EXPERIMENTS[name] for name in names]


def stored_result(store: ResultStore, unit: Unit) -> dict[str, Any] | None:
    """Return the stored result of ``unit``, or None when it has not finished.

    Raises:
      CorruptResultError: the unit's file exists but is not valid JSON; the message
        names the file.
    """
    if not store.has(unit.experiment, unit.key):
        return None
    return store.get(unit.experiment, unit.key)


def _unit_result(unit: Unit, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "experiment": unit.experiment,
        "condition": unit.condition,
        "key": unit.key,
        "seed": unit.seed,
        "config": config_to_dict(unit.config),
        "status": result["status"],
        "error": result.get("error"),
        "seconds": result.get("seconds"),
        "finished": _now(),
        "records": result.get("records", []),
    }


def run_units(
    units: Sequence[Unit],
    experiments: dict[str, Experiment],
    out_dir: str | Path,
    backend: LocalBackend | RayBackend | None = None,
    progress: bool = True,
    retry_failed: bool = False,
    use_cache: bool = True,
) -> RunOutcome:
    """Run every unit not yet in the store and store each result as it arrives.

    A unit found in the store is skipped: finished runs are never repeated, and an
    interrupted call loses only the units in flight. A unit stored as failed is
    skipped too unless ``retry_failed``.

    Args:
      units: the units to run.
      experiments: name -> experiment, for each unit's ``run`` and ``cost``.
      out_dir: the output directory (``runs/`` and ``cache/`` live there).
      backend: where units run; this process by default.
      progress: show one bar per experiment and one for all units.
      retry_failed: run again the units stored as failed.
      use_cache: pass ``cache_dir`` to units that accept it.
    """
    backend = backend or LocalBackend(1)
    out = Path(out_dir)
    store = ResultStore(out)
    outcome = RunOutcome()
    pending: list[Unit] = []
    for unit in units:
        found = stored_result(store, unit)
        if found is not None and (found.get("status") == "ok" or not retry_failed):
            outcome.skipped += 1
        else:
            pending.append(unit)

    def cost(unit: Unit) -> float:
        estimate = experiments[unit.experiment].cost
        return estimate(unit.config) if estimate else 0.0

    pending.sort(key=cost, reverse=True)
    options = {"cache_dir": str(out / "cache") if use_cache else None}
    options["progress"] = progress and backend.in_process
    jobs = [
        Job(
            experiments[unit.experiment].run,
            unit.config,
            unit.seed,
            accepted_options(experiments[unit.experiment].run, options),
        )
        for unit in pending
    ]

    names = sorted({unit.experiment for unit in pending})
    bars = {}
    overall = tqdm(total=len(jobs), desc="all units", disable=not progress)
    for position, name in enumerate(names, start=1):
        total = sum(unit.experiment == name for unit in pending)
        bars[name] = tqdm(
            total=total, desc=name, position=position, disable=not progress
        )
    try:
        for index, result in backend.run(jobs):
            unit = pending[index]
            if isinstance(result, WorkerLost):
                outcome.lost.append(
                    (unit.experiment, unit.condition, unit.seed, str(result))
                )
                log.error(
                    "unit %s/%s seed %d not stored: %s",
                    unit.experiment,
                    unit.condition,
                    unit.seed,
                    result,
                )
            else:
                stored = _unit_result(unit, result)
                store.put(unit.experiment, unit.key, stored)
                outcome.ran[unit.experiment] = outcome.ran.get(unit.experiment, 0) + 1
                if stored["status"] != "ok":
                    outcome.failed.append(
                        (unit.experiment, unit.condition, unit.seed, stored["error"])
                    )
                    log.error(
                        "unit %s/%s seed %d failed: %s",
                        unit.experiment,
                        unit.condition,
                        unit.seed,
                        stored["error"].strip().splitlines()[-1],
                    )
            bars[unit.experiment].update()
            overall.update()
            overall.set_postfix_str(
                f"{unit.experiment} {unit.condition} seed {unit.seed}"
            )
    finally:
        for bar in bars.values():
            bar.close()
        overall.close()
    return outcome


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    write_json_atomic(out_dir / MANIFEST, manifest)


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """Return the manifest of ``out_dir``, or an empty dict when there is none."""
    path = Path(out_dir) / MANIFEST
    return read_json(path) if path.exists() else {}


def reproduce(
    out_dir: str | Path,
    names: Sequence[str] | None = None,
    scale: str = "default",
    seeds: int | None = None,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    progress: bool = True,
    retry_failed: bool = False,
    command: str | None = None,
    report: bool = True,
) -> RunOutcome:
    """Run the registered experiments and write ``report.md`` into ``out_dir``.

    Args:
      out_dir: output directory; finished units found there are reused.
      names: experiments to run; None runs every registered one. The report
        covers every registered experiment whose units are stored.
      scale: ``tiny``, ``quick`` or ``default`` (the published scale).
      seeds: seeds per experiment; None uses each experiment's count at ``scale``.
      workers: parallel processes (local) or CPUs of a local Ray instance.
      backend: ``local`` or ``ray``.
      address: Ray cluster address; None starts a local instance.
      progress: show progress bars.
      retry_failed: run again the units stored as failed.
      command: the command line, for the manifest and the report header.
      report: write the report at the end.
    """
    from ._backends import make_backend

    if scale not in SCALES:
        raise ValueError(f"scale must be one of {list(SCALES)}; got scale={scale!r}")
    if seeds is not None and (isinstance(seeds, bool) or seeds < 1):
        raise ValueError(f"seeds must be an integer >= 1; got seeds={seeds}")
    experiments = select_experiments(names)
    runner = make_backend(backend, workers, address)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "command": command or "reproduce()",
        "scale": scale,
        "seeds": seeds,
        "only": list(names) if names else None,
        "backend": backend,
        "workers": workers,
        "address": address,
        "machine": machine_info(),
        "started": _now(),
        "finished": None,
    }
    write_manifest(out, manifest)

    units = [unit for e in experiments for unit in e.units(scale, seeds)]
    # A remote cluster's nodes may not see this directory, so they get no cache.
    use_cache = backend == "local" or address is None
    outcome = run_units(
        units,
        {e.name: e for e in experiments},
        out,
        runner,
        progress,
        retry_failed,
        use_cache,
    )
    manifest["finished"] = _now()
    manifest["ran"] = sum(outcome.ran.values())
    manifest["skipped"] = outcome.skipped
    manifest["failed"] = len(outcome.failed)
    manifest["lost"] = len(outcome.lost)
    write_manifest(out, manifest)
    if report:
        from ..report import build_report

        outcome.report = build_report(out)
    return outcome


def load_results(
    out_dir: str | Path, units: Sequence[Unit]
) -> dict[str, list[dict[str, Any]]]:
    """Return condition -> stored results of ``units``, skipping unfinished ones.

    Every condition of ``units`` gets an entry, empty when none of its units is
    stored.
    """
    store = ResultStore(out_dir)
    results: dict[str, list[dict[str, Any]]] = {}
    for unit in units:
        found = stored_result(store, unit)
        results.setdefault(unit.condition, [])
        if found is not None:
            results[unit.condition].append(found)
    return results


def run_and_summarize(
    experiment: Experiment,
    units: Sequence[Unit],
    out_dir: str | Path,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Run ``units`` of ``experiment`` locally, then return its summary of them.

    Units are stored like ``reproduce`` stores them, so the two share finished
    runs. Writes no report.
    """
    from ._backends import make_backend

    outcome = run_units(
        units,
        {experiment.name: experiment},
        out_dir,
        make_backend("local", workers),
        progress,
    )
    if outcome.lost:
        log.error("%d units of %s did not return", len(outcome.lost), experiment.name)
    return experiment.summarize(load_results(out_dir, units))


def run_experiment(
    name: str,
    out_dir: str | Path,
    scale: str = "default",
    seeds: int | None = None,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Run one registered experiment at ``scale`` locally and return its summary."""
    experiment = select_experiments([name])[0]
    units = experiment.units(scale, seeds)
    return run_and_summarize(experiment, units, out_dir, workers, progress)
