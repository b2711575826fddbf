"""The adaptation experiment: pretrain on regime A, switch to B, adapt online."""

from __future__ import annotations

import copy
import logging
import math
import multiprocessing
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .._validation import (
    NonFiniteError,
    check_choice,
    check_int_range,
    check_positive,
    resolve_dtype,
)
from ..cells import CELLS
from ..kernels import (
    BACKENDS,
    BackendUnavailableError,
    limit_kernel_threads,
    resolve_backend,
)
from ..learners import RecurrentModel, pretrain_bptt
from ..learners._batched import BatchedRTRL
from ..paths import SELECTIONS
from ..tasks import ERROR_DENSITIES, TASKS, apply_error_density, make_task
from ._backends import exit_with_parent
from ._learner_specs import OPTIMIZERS, LearnerSpec, build_learner, make_optimizer
from ._metrics import mean_std, recovery
from ._store import ResultStore, config_key, write_json_atomic

log = logging.getLogger(__name__)

DEFAULT_LEARNERS = ("frozen", "readout", "sparse:k=0", "sparse", "exact")
LEARNER_HELP = (
    "learner spec NAME[:KEY=VALUE,...], e.g. sparse:k=8,selection=topk; names: "
    "frozen, readout, exact, sparse and the baselines snap1, snap2, uoro, kfrtrl, "
    "rflo, eprop, tbptt. Recovery needs 'frozen' and the --full learner"
)


@dataclass
class AdaptationConfig:
    """Settings of one adaptation experiment; every field is a CLI flag."""

    task: str = field(
        default="teacher",
        metadata={"help": "data stream with a regime switch", "choices": tuple(TASKS)},
    )
    task_options: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "task constructor option, e.g. switch_mix=0.8"},
    )
    cell: str = field(
        default="rnn", metadata={"help": "recurrent cell", "choices": tuple(CELLS)}
    )
    hidden_size: int = field(default=64, metadata={"help": "recurrent units n"})
    k: int = field(default=4, metadata={"help": "paths per unit for 'sparse'"})
    selection: str = field(
        default="random",
        metadata={"help": "path selection of 'sparse'", "choices": SELECTIONS},
    )
    keep_self: bool = field(default=False, metadata={"help": "always keep j = i"})
    rescale: bool = field(default=False, metadata={"help": "scale kept paths by n/k"})
    decay: float = field(
        default=1.0, metadata={"help": "influence trace decay in [0, 1]"}
    )
    learners: tuple[str, ...] = field(
        default=DEFAULT_LEARNERS, metadata={"help": LEARNER_HELP}
    )
    full: str = field(
        default="exact", metadata={"help": "learner whose loss defines 100% recovery"}
    )
    seeds: int = field(default=5, metadata={"help": "number of seeds"})
    first_seed: int = field(default=0, metadata={"help": "first seed"})
    optimizer: str = field(
        default="adam", metadata={"help": "online optimizer", "choices": OPTIMIZERS}
    )
    lr: float = field(default=1e-3, metadata={"help": "online learning rate"})
    dtype: str = field(
        default="float32",
        metadata={"help": "tensor dtype", "choices": ("float32", "float64")},
    )
    device: str = field(default="cpu", metadata={"help": "torch device"})
    pretrain_iterations: int = field(default=400, metadata={"help": "BPTT steps"})
    pretrain_window: int = field(default=100, metadata={"help": "BPTT window"})
    pretrain_batch: int = field(default=32, metadata={"help": "BPTT batch"})
    pretrain_lr: float = field(default=3e-3, metadata={"help": "BPTT Adam lr"})
    warmup_steps: int = field(default=300, metadata={"help": "regime-A steps"})
    adapt_steps: int = field(default=2000, metadata={"help": "regime-B steps"})
    error_density: str = field(
        default="every",
        metadata={
            "help": "when the error reaches the learner: every step, every "
            "--error-period steps, or at the last step of each segment",
            "choices": ERROR_DENSITIES,
        },
    )
    error_period: int = field(default=10, metadata={"help": "periodic spacing"})
    backend: str = field(
        default="auto",
        metadata={"help": "sparse propagation kernel", "choices": BACKENDS},
    )
    record_predictions: bool = field(
        default=False, metadata={"help": "store per-step predictions in each run"}
    )
    batch_seeds: bool = field(
        default=False,
        metadata={
            "help": "run all seeds of each exact or sparse learner as one batch "
            "(tanh RNN only): one Python step per batch instead of per seed. "
            "Results equal the per-seed runs up to rounding, and stored runs are "
            "reused whichever way they were made"
        },
    )

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid setting."""
        check_choice("task", self.task, TASKS)
        check_choice("cell", self.cell, CELLS)
        check_int_range("hidden_size", self.hidden_size, 1, 100_000)
        size = self.state_size()
        check_int_range("k", self.k, 0, size, f"for a state of size {size}")
        check_int_range("seeds", self.seeds, 1, 10_000)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_positive("lr", self.lr)
        resolve_dtype(self.dtype)
        check_int_range("warmup_steps", self.warmup_steps, 0, 10**9)
        check_int_range("adapt_steps", self.adapt_steps, 1, 10**9)
        check_int_range("pretrain_iterations", self.pretrain_iterations, 0, 10**9)
        check_int_range("pretrain_window", self.pretrain_window, 1, 10**6)
        check_int_range("pretrain_batch", self.pretrain_batch, 1, 10**6)
        check_choice("error_density", self.error_density, ERROR_DENSITIES)
        if self.error_density == "periodic":
            check_int_range(
                "error_period",
                self.error_period,
                1,
                self.adapt_steps,
                f"for adapt_steps={self.adapt_steps}",
            )
        for name in ("keep_self", "rescale", "record_predictions", "batch_seeds"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False; got {name}={value!r}")
        for spec in self.learner_specs():
            if spec.name == "sparse":
                k = spec.options.get("k", self.k)
                check_int_range(
                    "k", k, 0, self.hidden_size, f"for n={self.hidden_size}"
                )
        if self.batch_seeds and self.cell != "rnn":
            raise ValueError(
                f"batch_seeds runs tanh RNNs only; got cell={self.cell!r}. "
                "Drop --batch-seeds to run the seeds one by one"
            )
        labels = [spec.label for spec in self.learner_specs()]
        if len(set(labels)) != len(labels):
            raise ValueError(f"learners must be distinct; got {labels}")

    def state_size(self) -> int:
        """Rows of the influence matrix: n for the RNN, 2n for the LSTM."""
        return getattr(CELLS[self.cell], "state_multiplier", 1) * self.hidden_size

    def learner_specs(self) -> list[LearnerSpec]:
        """Parse ``learners``; a bare ``sparse`` gets this config's ``k``."""
        specs = []
        for text in self.learners:
            spec = LearnerSpec.parse(text)
            if spec.name == "sparse" and "k" not in spec.options:
                spec = LearnerSpec("sparse", {**spec.options, "k": self.k})
            specs.append(spec)
        return specs

    def learner_defaults(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "selection": self.selection,
            "keep_self": self.keep_self,
            "rescale": self.rescale,
            "decay": self.decay,
            "backend": self.backend,
        }

    def pretrain_key(self) -> str:
        fields = (
            "task task_options cell hidden_size dtype pretrain_iterations "
            "pretrain_window pretrain_batch pretrain_lr"
        ).split()
        return config_key({name: getattr(self, name) for name in fields})

    def run_key(self) -> str:
        """Hash of every field that changes a run's result except the learner list."""
        data = asdict(self)
        # How the runs are scheduled does not change their results (beyond
        # rounding), so batched and per-seed runs share their stored results.
        for name in ("learners", "seeds", "first_seed", "batch_seeds"):
            data.pop(name)
        return config_key(data)


def build_model(config: AdaptationConfig, task, seed: int) -> RecurrentModel:
    """Build the RNN of ``config`` with weights drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    cell = CELLS[config.cell](
        task.input_size,
        config.hidden_size,
        generator=generator,
        dtype=resolve_dtype(config.dtype),
        device=config.device,
    )
    return RecurrentModel(cell, task.output_size, generator=generator)


def pretrained_model(
    config: AdaptationConfig, task, seed: int, cache_dir: Path | None
) -> RecurrentModel:
    """Return the model of ``seed`` pretrained on regime A, cached in ``cache_dir``."""
    model = build_model(config, task, seed)
    path = None
    if cache_dir is not None:
        path = cache_dir / f"{config.pretrain_key()}-seed{seed}.pt"
        if path.exists():
            model.load_state_dict(torch.load(path, map_location=config.device))
            return model
    generator = torch.Generator().manual_seed(10_000 + seed)
    pretrain_bptt(
        model,
        task,
        config.pretrain_iterations,
        window=config.pretrain_window,
        batch_size=config.pretrain_batch,
        lr=config.pretrain_lr,
        generator=generator,
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, path)
    return model


def adaptation_streams(config: AdaptationConfig, task, seed: int):
    """Return the regime-A warm-up stream and the regime-B adaptation stream of
    ``seed``, with the config's error density applied to the latter."""
    data = torch.Generator().manual_seed(20_000 + seed)
    warmup = task.sample("A", max(config.warmup_steps, 1), data)
    adapt = task.sample("B", config.adapt_steps, data)
    adapt = apply_error_density(adapt, config.error_density, config.error_period)
    dtype = resolve_dtype(config.dtype)
    return warmup.to(dtype, config.device), adapt.to(dtype, config.device)


def run_record_key(config: AdaptationConfig, seed: int, label: str) -> str:
    """Return the store key of one (seed, learner) run."""
    return f"{config.run_key()}-seed{seed}-{config_key({'learner': label})}"


def _split_stored(store, experiment, runs):
    """Split ``(item, key)`` pairs into the stored records and the runs to do."""
    records, todo = [], []
    for item, key in runs:
        if store is not None and store.has(experiment, key):
            records.append(store.get(experiment, key))
        else:
            todo.append((item, key))
    return records, todo


def _new_record(config, experiment, key, seed, label) -> dict[str, Any]:
    return {
        "experiment": experiment,
        "key": key,
        "seed": seed,
        "learner": label,
        "config": asdict(config),
    }


def _finish_record(record, curve, warmup_steps, seconds_per_step, predictions):
    """Add the losses of a finished run to ``record``."""
    adapt_curve = np.asarray(curve[warmup_steps:])
    tail = max(1, len(adapt_curve) // 10)
    record.update(
        status="ok",
        loss=float(adapt_curve.mean()),
        final_loss=float(adapt_curve[-tail:].mean()),
        pre_switch_loss=float(np.mean(curve[:warmup_steps]))
        if warmup_steps
        else math.nan,
        seconds_per_step=seconds_per_step,
        curve=curve,
    )
    if predictions is not None:
        record["predictions"] = predictions


def run_seed(
    config: AdaptationConfig,
    seed: int,
    root: str | None,
    experiment: str = "adaptation",
    progress: bool = False,
    labels: set[str] | None = None,
) -> list[dict[str, Any]]:
    """Run every learner of ``config`` on one seed and store each result at once.

    All learners start from the same pretrained weights, see the same streams and get
    an optimizer of the same kind. A learner that hits a NaN or an Inf is recorded as
    failed with its error, and the other learners still run. ``labels`` restricts
    the run to the learners with those labels.
    """
    store = ResultStore(root) if root else None
    task = make_task(config.task, **config.task_options)
    specs = config.learner_specs()
    if labels is not None:
        specs = [spec for spec in specs if spec.label in labels]
    runs = [(spec, run_record_key(config, seed, spec.label)) for spec in specs]
    records, todo = _split_stored(store, experiment, runs)
    if not todo:
        return records

    cache = Path(root) / "pretrained" if root else None
    model = pretrained_model(config, task, seed, cache)
    warmup, adapt = adaptation_streams(config, task, seed)
    warmup_steps = config.warmup_steps

    for spec, key in todo:
        record = _new_record(config, experiment, key, seed, spec.label)
        generator = torch.Generator().manual_seed(30_000 + seed)
        learner_model = copy.deepcopy(model)
        start = time.perf_counter()
        step = -1
        try:
            learner = build_learner(
                spec,
                learner_model,
                config.optimizer,
                config.lr,
                config.learner_defaults(),
                generator,
            )
            curve = []
            predictions = []
            bar = tqdm(
                total=warmup_steps + len(adapt),
                desc=f"seed {seed} {spec.label}",
                disable=not progress,
                leave=False,
            )
            for step in range(warmup_steps):
                loss = learner.step(
                    warmup.inputs[step], warmup.targets[step], learn=False
                )
                curve.append(loss.item())
                bar.update()
            adapt_start = time.perf_counter()
            for t in range(len(adapt)):
                step = warmup_steps + t
                learn = bool(adapt.error_mask[t])
                loss = learner.step(adapt.inputs[t], adapt.targets[t], learn=learn)
                curve.append(loss.item())
                if config.record_predictions:
                    predictions.append(learner.last_prediction.tolist())
                bar.update()
            bar.close()
            _finish_record(
                record,
                curve,
                warmup_steps,
                (time.perf_counter() - adapt_start) / len(adapt),
                predictions if config.record_predictions else None,
            )
        except NonFiniteError as error:
            record.update(
                status="failed",
                error=f"learner {spec.label}, seed {seed}, step {step}: {error}",
            )
            log.error("run failed: %s", record["error"])
        record["seconds"] = time.perf_counter() - start
        if store is not None:
            store.put(experiment, key, record)
        records.append(record)
    return records


def _run_seed_in_worker(config, seed, root, experiment, labels=None):
    limit_kernel_threads()
    try:
        return run_seed(config, seed, root, experiment, labels=labels)
    except Exception:
        # A traceback object does not cross the process boundary; its text does.
        raise RuntimeError(traceback.format_exc()) from None


#: Learners whose seeds can run as one ``BatchedRTRL`` batch, with the options
#: that it takes.
BATCHABLE_OPTIONS = {
    "exact": ("decay",),
    "sparse": ("k", "selection", "keep_self", "rescale", "decay", "backend"),
}


def batchable(config: AdaptationConfig, spec: LearnerSpec) -> bool:
    """Return True when the seeds of ``spec`` can run as one batch: exact or
    sparse RTRL on the tanh RNN, with options that ``BatchedRTRL`` takes."""
    if config.cell != "rnn" or spec.name not in BATCHABLE_OPTIONS:
        return False
    return set(spec.options) <= set(BATCHABLE_OPTIONS[spec.name])


def run_seeds_batched(
    config: AdaptationConfig,
    spec: LearnerSpec,
    seeds: list[int],
    root: str | None,
    experiment: str = "adaptation",
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Run one learner on many seeds as one batch and store each seed's result.

    Each seed gets the pretrained model, streams, path generator and optimizer
    kind of :func:`run_seed`, so its result equals the per-seed run up to
    rounding. Seeds whose error masks differ run in separate batches, because a
    batch learns at the same steps in every stream. If a batch hits a NaN or an
    Inf, its seeds run again one by one, so that only the failing seed is
    recorded as failed.
    """
    store = ResultStore(root) if root else None
    runs = [(seed, run_record_key(config, seed, spec.label)) for seed in seeds]
    records, todo = _split_stored(store, experiment, runs)
    if not todo:
        return records

    task = make_task(config.task, **config.task_options)
    cache = Path(root) / "pretrained" if root else None
    runs = []
    for seed, key in todo:
        model = pretrained_model(config, task, seed, cache)
        warmup, adapt = adaptation_streams(config, task, seed)
        runs.append((seed, key, model, warmup, adapt))
    groups: dict[bytes, list] = {}
    for run in runs:
        mask = run[4].error_mask.to(torch.uint8).cpu().numpy().tobytes()
        groups.setdefault(mask, []).append(run)

    for group in groups.values():
        try:
            found = _run_batch(config, spec, group, experiment, progress)
        except NonFiniteError as error:
            group_seeds = [run[0] for run in group]
            log.warning(
                "batch of %s, seeds %s: %s; running the seeds one by one",
                spec.label,
                group_seeds,
                error,
            )
            found = []
            for seed in group_seeds:
                found.extend(
                    run_seed(config, seed, root, experiment, labels={spec.label})
                )
        else:
            if store is not None:
                for record in found:
                    store.put(experiment, record["key"], record)
        records.extend(found)
    return records


def _run_batch(config, spec, group, experiment, progress) -> list[dict[str, Any]]:
    """Run ``spec`` on the seeds of ``group`` with one ``BatchedRTRL``."""
    options = {**config.learner_defaults(), **spec.options}
    k = options["k"] if spec.name == "sparse" else None
    seeds = [run[0] for run in group]
    learner = BatchedRTRL(
        [copy.deepcopy(run[2]) for run in group],
        lambda params: make_optimizer(config.optimizer, params, config.lr),
        k=k,
        selection=options["selection"],
        keep_self=options["keep_self"],
        rescale=options["rescale"],
        generators=[torch.Generator().manual_seed(30_000 + seed) for seed in seeds],
        backend=options["backend"],
        decay=options["decay"],
    )

    warmup_x = torch.stack([run[3].inputs for run in group], dim=1)  # (T, B, m)
    warmup_y = torch.stack([run[3].targets for run in group], dim=1)
    adapt_x = torch.stack([run[4].inputs for run in group], dim=1)
    adapt_y = torch.stack([run[4].targets for run in group], dim=1)
    mask = group[0][4].error_mask
    warmup_steps = config.warmup_steps
    curves: list[list[float]] = [[] for _ in group]
    predictions: list[list] = [[] for _ in group]

    start = time.perf_counter()
    bar = tqdm(
        total=warmup_steps + len(adapt_x),
        desc=f"seeds {seeds[0]}-{seeds[-1]} {spec.label}",
        disable=not progress,
        leave=False,
    )
    for step in range(warmup_steps):
        losses = learner.step(warmup_x[step], warmup_y[step], learn=False)
        for curve, loss in zip(curves, losses.tolist(), strict=True):
            curve.append(loss)
        bar.update()
    adapt_start = time.perf_counter()
    for t in range(len(adapt_x)):
        losses = learner.step(adapt_x[t], adapt_y[t], learn=bool(mask[t]))
        for curve, loss in zip(curves, losses.tolist(), strict=True):
            curve.append(loss)
        if config.record_predictions:
            for stream_predictions, prediction in zip(
                predictions, learner.last_prediction.tolist(), strict=True
            ):
                stream_predictions.append(prediction)
        bar.update()
    bar.close()

    # Per-stream cost: the batch's time per step shared among its streams.
    per_step = (time.perf_counter() - adapt_start) / len(adapt_x) / len(group)
    seconds = (time.perf_counter() - start) / len(group)
    records = []
    for b, (seed, key, *_) in enumerate(group):
        record = _new_record(config, experiment, key, seed, spec.label)
        _finish_record(
            record,
            curves[b],
            warmup_steps,
            per_step,
            predictions[b] if config.record_predictions else None,
        )
        record["batch"] = len(group)
        record["seconds"] = seconds
        records.append(record)
    return records


def _run_batched_in_worker(config, spec, seeds, root, experiment):
    limit_kernel_threads()
    try:
        return run_seeds_batched(config, spec, seeds, root, experiment)
    except Exception:
        raise RuntimeError(traceback.format_exc()) from None


def preflight(config: AdaptationConfig) -> None:
    """Build the task, a model and every learner once, so that a bad setting fails
    here, in seconds, and not inside a worker after pretraining.

    Raises:
      ValueError: naming the invalid setting (task option, learner option,
        selection, backend, decay, device).
    """
    config.validate()
    try:
        task = make_task(config.task, **config.task_options)
    except TypeError as error:
        raise ValueError(
            f"invalid task option for task {config.task!r}: {error}; "
            f"got task_options={config.task_options}"
        ) from error
    try:
        model = build_model(config, task, config.first_seed)
    except (AssertionError, RuntimeError) as error:
        raise ValueError(f"device {config.device!r} cannot be used: {error}") from error
    generator = torch.Generator().manual_seed(0)
    dtype = resolve_dtype(config.dtype)
    for spec in config.learner_specs():
        try:
            learner = build_learner(
                spec,
                model,
                config.optimizer,
                config.lr,
                config.learner_defaults(),
                generator,
            )
            backend = getattr(learner, "backend", None)
            if backend is not None:
                # Resolving here turns an unknown or unusable kernel into an
                # error now, not at the first step after pretraining.
                resolve_backend(backend, torch.device(config.device), dtype)
        except (ValueError, NotImplementedError, BackendUnavailableError) as error:
            raise ValueError(f"learner {spec.label!r}: {error}") from error


def run_seeds(
    config: AdaptationConfig,
    out_dir: str | Path,
    experiment: str = "adaptation",
    workers: int = 1,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run all seeds of ``config``, in a process pool when ``workers > 1``.

    With ``config.batch_seeds`` each batchable learner (see :func:`batchable`)
    runs all its seeds as one batch, and the other learners run seed by seed.
    """
    preflight(config)
    seeds = list(range(config.first_seed, config.first_seed + config.seeds))
    root = str(out_dir)
    specs = config.learner_specs()
    batched = [spec for spec in specs if config.batch_seeds and batchable(config, spec)]
    labels = {spec.label for spec in specs} - {spec.label for spec in batched}
    # Each job is a (function, arguments) pair. The batched learners go first
    # because they run longest.
    jobs = [
        (run_seeds_batched, (config, spec, seeds, root, experiment)) for spec in batched
    ]
    if labels:
        jobs += [(run_seed, (config, seed, root, experiment)) for seed in seeds]
    records: list[dict[str, Any]] = []
    total = len(seeds) * len(specs)
    with tqdm(total=total, desc=f"{experiment} runs", disable=not progress) as bar:
        if workers <= 1:
            for function, args in jobs:
                if function is run_seed:
                    found = run_seed(*args, progress=progress, labels=labels)
                else:
                    found = run_seeds_batched(*args, progress=progress)
                records.extend(found)
                bar.update(len(found))
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                workers,
                mp_context=context,
                initializer=exit_with_parent,
                initargs=(os.getpid(),),
            ) as pool:
                futures = []
                for function, args in jobs:
                    if function is run_seed:
                        futures.append(
                            pool.submit(_run_seed_in_worker, *args, labels=labels)
                        )
                    else:
                        futures.append(pool.submit(_run_batched_in_worker, *args))
                for future in as_completed(futures):
                    found = future.result()
                    records.extend(found)
                    bar.update(len(found))
    return records


def summarize(
    records: list[dict[str, Any]], labels: list[str], full: str = "exact"
) -> dict[str, Any]:
    """Per learner: per-seed losses, recovery vs frozen and vs k = 0, mean ± std.

    Recovery of each seed uses that seed's frozen, ``k = 0`` and ``full`` losses; a
    seed where one of them failed gives no recovery value.
    """
    by_seed: dict[int, dict[str, dict]] = {}
    for record in records:
        by_seed.setdefault(record["seed"], {})[record["learner"]] = record

    def ok_loss(seed_records, label):
        record = seed_records.get(label)
        if record is None or record.get("status") != "ok":
            return math.nan
        return record["loss"]

    summary: dict[str, Any] = {"full": full, "learners": {}}
    seeds = sorted(by_seed)
    for label in labels:
        losses, final, rec_frozen, rec_zero, failures, step_time = (
            [],
            [],
            [],
            [],
            [],
            [],
        )
        for seed in seeds:
            seed_records = by_seed[seed]
            record = seed_records.get(label)
            if record is None:
                continue
            if record.get("status") != "ok":
                failures.append({"seed": seed, "error": record.get("error")})
                continue
            loss = record["loss"]
            losses.append(loss)
            final.append(record["final_loss"])
            step_time.append(record["seconds_per_step"])
            full_loss = ok_loss(seed_records, full)
            rec_frozen.append(
                recovery(ok_loss(seed_records, "frozen"), full_loss, loss)
            )
            rec_zero.append(
                recovery(ok_loss(seed_records, "sparse:k=0"), full_loss, loss)
            )
        mean, std, count = mean_std(rec_frozen)
        zero_mean, zero_std, zero_count = mean_std(rec_zero)
        loss_mean, loss_std, _ = mean_std(losses)
        summary["learners"][label] = {
            "seeds": [s for s in seeds if label in by_seed[s]],
            "loss": losses,
            "final_loss": final,
            "loss_mean": loss_mean,
            "loss_std": loss_std,
            "recovery": rec_frozen,
            "recovery_mean": mean,
            "recovery_std": std,
            "recovery_count": count,
            "recovery_vs_k0": rec_zero,
            "recovery_vs_k0_mean": zero_mean,
            "recovery_vs_k0_std": zero_std,
            "recovery_vs_k0_count": zero_count,
            "seconds_per_step": float(np.mean(step_time)) if step_time else math.nan,
            "failures": failures,
        }
    return summary


def write_outputs(
    config: AdaptationConfig, records: list[dict[str, Any]], out_dir: str | Path
) -> dict[str, Any]:
    """Write ``summary.json``, ``curves.npz`` and ``adaptation.png`` to ``out_dir``."""
    from ..report import plot_switch_curves

    out = Path(out_dir)
    labels = [spec.label for spec in config.learner_specs()]
    summary = summarize(records, labels, config.full)
    summary["config"] = asdict(config)
    write_json_atomic(out / "summary.json", summary)

    curves = {}
    for label in labels:
        rows = [
            r["curve"]
            for r in sorted(records, key=lambda r: r["seed"])
            if r["learner"] == label and r.get("status") == "ok"
        ]
        if rows:
            curves[label] = np.asarray(rows)  # (seeds, warmup + adapt steps)
    np.savez(
        out / "curves.npz",
        **{label.replace(":", "_"): value for label, value in curves.items()},
    )
    plot_switch_curves(curves, config.warmup_steps, out / "adaptation.png")
    return summary


def format_table(summary: dict[str, Any]) -> str:
    """Return the learner / loss / recovery table as aligned text."""
    width = max([22, *(len(label) for label in summary["learners"])])
    header = (
        f"{'learner':<{width}} {'loss':>18} {'recovery %':>16} {'vs k=0 %':>16} "
        f"{'ok':>4}"
    )
    lines = [header, "-" * len(header)]
    for label, row in summary["learners"].items():
        loss = f"{row['loss_mean']:.4g} ± {row['loss_std']:.2g}"
        rec = _pm(row["recovery_mean"], row["recovery_std"])
        rec0 = _pm(row["recovery_vs_k0_mean"], row["recovery_vs_k0_std"])
        ok = f"{len(row['loss'])}/{len(row['seeds'])}"
        lines.append(f"{label:<{width}} {loss:>18} {rec:>16} {rec0:>16} {ok:>4}")
    return "\n".join(lines)


def _pm(mean: float, std: float) -> str:
    return "n/a" if not math.isfinite(mean) else f"{mean:.1f} ± {std:.1f}"


def run_adaptation(
    config: AdaptationConfig,
    out_dir: str | Path,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the adaptation experiment and write every output file into ``out_dir``.

    Files: ``config.json`` (the resolved config), ``runs/adaptation/*.json`` (one per
    learner and seed, written as each finishes), ``summary.json``, ``curves.npz``
    (per-step losses, one (seeds, steps) array per learner) and ``adaptation.png``.
    Rerunning with the same settings and ``out_dir`` reuses finished runs.
    """
    config.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", asdict(config))
    records = run_seeds(config, out, "adaptation", workers, progress)
    return write_outputs(config, records, out)
