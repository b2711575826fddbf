"""Prior-work baselines beside sparse RTRL: recovery, alignment, time and memory."""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .._validation import check_int_range, resolve_dtype
from ..learners import Learner
from ..tasks import make_task
from ._adaptation import AdaptationConfig, pretrained_model, run_seeds, summarize
from ._alignment import gradient_alignment
from ._learner_specs import build_learner
from ._metrics import format_mean_std, mean_std
from ._store import ResultStore, config_key, write_json_atomic

log = logging.getLogger(__name__)

BASELINE_LEARNERS = (
    "frozen",
    "readout",
    "sparse:k=0",
    "sparse",
    "exact",
    "snap1",
    "snap2",
    "uoro",
    "kfrtrl",
    "rflo",
    "rflo:feedback=random",
    "eprop",
    "tbptt",
)


def _int_tuple(values) -> tuple[int, ...]:
    # The CLI hands tuple fields over as strings.
    return tuple(int(v) for v in values)


@dataclass
class BaselinesConfig:
    """Settings of the baseline comparison; ``sizes`` and the per-size step counts
    are parallel tuples, one entry per hidden size."""

    task: str = field(default="teacher", metadata={"help": "task name"})
    task_options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "task constructor options"}
    )
    cell: str = field(default="rnn", metadata={"help": "recurrent cell"})
    sizes: tuple[int, ...] = field(
        default=(64, 256), metadata={"help": "hidden sizes n to compare at"}
    )
    adapt_steps: tuple[int, ...] = field(
        default=(2000, 500), metadata={"help": "regime-B steps, one per size"}
    )
    alignment_steps: tuple[int, ...] = field(
        default=(500, 100),
        metadata={"help": "steps of the alignment run, one per size"},
    )
    alignment_seeds: int = field(
        default=1, metadata={"help": "seeds (from first_seed) with alignment runs"}
    )
    k: int = field(default=4, metadata={"help": "paths per unit for 'sparse'"})
    learners: tuple[str, ...] = field(
        default=BASELINE_LEARNERS, metadata={"help": "learner specs"}
    )
    seeds: int = field(default=5, metadata={"help": "number of seeds"})
    first_seed: int = field(default=0, metadata={"help": "first seed"})
    optimizer: str = field(default="adam", metadata={"help": "adam or sgd"})
    lr: float = field(default=1e-3, metadata={"help": "online learning rate"})
    dtype: str = field(default="float32", metadata={"help": "float32 or float64"})
    device: str = field(default="cpu", metadata={"help": "torch device"})
    pretrain_iterations: int = field(default=400, metadata={"help": "BPTT steps"})
    pretrain_window: int = field(default=100, metadata={"help": "BPTT window"})
    pretrain_batch: int = field(default=32, metadata={"help": "BPTT batch"})
    pretrain_lr: float = field(default=3e-3, metadata={"help": "BPTT Adam lr"})
    warmup_steps: int = field(default=300, metadata={"help": "regime-A steps"})

    def __post_init__(self):
        self.sizes = _int_tuple(self.sizes)
        self.adapt_steps = _int_tuple(self.adapt_steps)
        self.alignment_steps = _int_tuple(self.alignment_steps)
        self.learners = tuple(self.learners)

    @classmethod
    def quick(cls, **overrides) -> BaselinesConfig:
        """Return a small preset: 3 seeds, short streams, brief pretraining."""
        settings = {
            "seeds": 3,
            "adapt_steps": (500, 150),
            "alignment_steps": (150, 40),
            "warmup_steps": 100,
            "pretrain_iterations": 150,
            "pretrain_window": 50,
        }
        settings.update(overrides)
        return cls(**settings)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid setting."""
        count = len(self.sizes)
        if count == 0:
            raise ValueError("sizes must list at least one hidden size; got sizes=()")
        for name in ("adapt_steps", "alignment_steps"):
            got = len(getattr(self, name))
            if got != count:
                raise ValueError(
                    f"{name} must have one entry per size ({count}); got {got}"
                )
        for steps in self.alignment_steps:
            check_int_range("alignment_steps", steps, 0, 10**9)
        check_int_range("alignment_seeds", self.alignment_seeds, 0, self.seeds)
        for index in range(count):
            self.adaptation_config(index).validate()

    def adaptation_config(self, index: int) -> AdaptationConfig:
        """Return the adaptation settings at ``sizes[index]``."""
        shared = (
            "task task_options cell k learners seeds first_seed optimizer lr dtype "
            "device pretrain_iterations pretrain_window pretrain_batch pretrain_lr "
            "warmup_steps"
        ).split()
        return AdaptationConfig(
            hidden_size=self.sizes[index],
            adapt_steps=self.adapt_steps[index],
            full="exact",
            **{name: copy.deepcopy(getattr(self, name)) for name in shared},
        )


def trace_bytes(learner: Learner) -> int:
    """Return the bytes a learner keeps between steps besides the model.

    Learners that define ``trace_nbytes`` report their own traces and buffers. For
    the others (exact and sparse RTRL, the controls), the sum over their tensor
    attributes counts the influence matrix, its second buffer and the path indices.
    Neither counts the state ``s_t`` or the ``last_*`` diagnostics (the last
    gradient and prediction).
    """
    if hasattr(learner, "trace_nbytes"):
        return int(learner.trace_nbytes())
    return sum(
        value.nbytes
        for name, value in vars(learner).items()
        if isinstance(value, torch.Tensor) and not name.startswith("last_")
    )


def _alignment_run(
    config: AdaptationConfig,
    seed: int,
    steps: int,
    root: Path,
    labels: list[str],
    progress: bool,
) -> dict[str, dict[str, Any]]:
    """Alignment and trace memory of every learner on one seed, stored per learner.

    Each learner starts from the pretrained model at the state the frozen model
    reaches after the warmup, with fresh traces, and adapts online on the first
    ``steps`` steps of regime B beside an exact RTRL shadow.
    """
    store = ResultStore(root)
    experiment = f"baselines-alignment-n{config.hidden_size}"
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for spec in config.learner_specs():
        key = config_key(
            {"run": config.run_key(), "seed": seed, "steps": steps, "spec": spec.label}
        )
        if store.has(experiment, key):
            results[spec.label] = store.get(experiment, key)
        else:
            todo.append((spec, key))
    if not todo:
        return results

    task = make_task(config.task, **config.task_options)
    dtype = resolve_dtype(config.dtype)
    model = pretrained_model(config, task, seed, root / "pretrained")
    data = torch.Generator().manual_seed(20_000 + seed)
    warmup = task.sample("A", max(config.warmup_steps, 1), data).to(
        dtype, config.device
    )
    adapt = task.sample("B", max(steps, 1), data).to(dtype, config.device)
    start = model.cell.initial_state()
    if config.warmup_steps > 0:
        with torch.no_grad():
            _, start = model(warmup.inputs[: config.warmup_steps])

    for spec, key in tqdm(todo, desc="alignment", disable=not progress, leave=False):
        learner = build_learner(
            spec,
            copy.deepcopy(model),
            config.optimizer,
            config.lr,
            config.learner_defaults(),
            torch.Generator().manual_seed(30_000 + seed),
        )
        learner.reset(start)
        record = {"seed": seed, "learner": spec.label, "steps": steps}
        if steps > 0:
            alignment = gradient_alignment(
                learner, adapt.inputs[:steps], adapt.targets[:steps]
            )
            record.update(alignment.summary())
        else:
            record.update(mean_cosine=math.nan, median_norm_ratio=math.nan)
        record["trace_bytes"] = trace_bytes(learner)
        store.put(experiment, key, record)
        results[spec.label] = record
    return {label: results[label] for label in labels}


def baseline_row(
    row: dict[str, Any], alignments: list[dict[str, Any]]
) -> dict[str, Any]:
    """Join one learner's ``summarize`` row with its alignment records.

    Args:
      row: the learner's row of ``summarize``.
      alignments: the learner's alignment record of each seed with an alignment
        run, possibly none.

    Returns:
      Recovery against frozen and against ``sparse:k=0`` (per seed and mean ± std),
      mean loss, seconds per step, mean cosine, median norm ratio, trace bytes and
      failures.
    """
    cosine, cosine_std, _ = mean_std([a["mean_cosine"] for a in alignments])
    ratio, _, _ = mean_std([a["median_norm_ratio"] for a in alignments])
    return {
        "recovery": row["recovery"],
        "recovery_mean": row["recovery_mean"],
        "recovery_std": row["recovery_std"],
        "recovery_vs_k0_mean": row["recovery_vs_k0_mean"],
        "recovery_vs_k0_std": row["recovery_vs_k0_std"],
        "ok_seeds": len(row["loss"]),
        "seeds": len(row["seeds"]),
        "loss_mean": row["loss_mean"],
        "loss_std": row["loss_std"],
        "seconds_per_step": row["seconds_per_step"],
        "mean_cosine": cosine,
        "mean_cosine_std": cosine_std,
        "median_norm_ratio": ratio,
        "trace_bytes": alignments[0]["trace_bytes"] if alignments else None,
        "failures": row["failures"],
    }


def run_baselines(
    config: BaselinesConfig,
    out_dir: str | Path,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every learner of ``config`` at each size and write the comparison.

    At each size n, the adaptation experiment (``run_seeds``, records under
    ``runs/baselines-n<n>/``) gives recovery and seconds per step. An alignment run
    on the first ``alignment_seeds`` seeds (records under
    ``runs/baselines-alignment-n<n>/``) gives the mean cosine and median norm ratio
    to exact RTRL, and the trace memory. Writes ``config.json``, ``baselines.json``
    and ``baselines.md`` into ``out_dir``; a rerun reuses finished records.

    Returns:
      ``{"config": ..., "sizes": {"<n>": {"<learner>": row}}}``, with per row the
      recovery against frozen and against ``sparse:k=0`` (per seed and mean ± std),
      mean loss, seconds per step, mean cosine, median norm ratio, trace bytes and
      failures.
    """
    config.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", asdict(config))
    result: dict[str, Any] = {"config": asdict(config), "sizes": {}}
    for index, size in enumerate(config.sizes):
        adaptation = config.adaptation_config(index)
        labels = [spec.label for spec in adaptation.learner_specs()]
        log.info("baselines at n=%d: %d learners", size, len(labels))
        records = run_seeds(
            adaptation, out, f"baselines-n{size}", workers=workers, progress=progress
        )
        summary = summarize(records, labels, full="exact")
        seeds = range(config.first_seed, config.first_seed + config.alignment_seeds)
        alignments = [
            _alignment_run(
                adaptation, seed, config.alignment_steps[index], out, labels, progress
            )
            for seed in seeds
        ]
        result["sizes"][str(size)] = {
            label: baseline_row(
                summary["learners"][label], [a[label] for a in alignments]
            )
            for label in labels
        }
    write_json_atomic(out / "baselines.json", result)
    (out / "baselines.md").write_text(format_baselines_table(result) + "\n")
    return result


def _format_bytes(count: int | None) -> str:
    if count is None:
        return "n/a"
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def _format_number(value: float, digits: int = 2) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def format_baselines_table(result: dict[str, Any]) -> str:
    """Return one markdown table per size: loss, recovery, alignment, time, memory."""
    blocks = []
    for size, rows in result["sizes"].items():
        lines = [
            f"n = {size}",
            "",
            "| learner | loss | recovery % | vs k=0 % | cosine to exact "
            "| norm ratio | ms / step | trace memory | ok |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for label, row in rows.items():
            recovery = format_mean_std(row["recovery_mean"], row["recovery_std"])
            vs_zero = format_mean_std(
                row["recovery_vs_k0_mean"], row["recovery_vs_k0_std"]
            )
            loss = format_mean_std(row["loss_mean"], row["loss_std"], digits=4)
            milliseconds = _format_number(1000 * row["seconds_per_step"])
            lines.append(
                f"| {label} | {loss} | {recovery} | {vs_zero} "
                f"| {_format_number(row['mean_cosine'])} "
                f"| {_format_number(row['median_norm_ratio'])} "
                f"| {milliseconds} | {_format_bytes(row['trace_bytes'])} "
                f"| {row['ok_seeds']}/{row['seeds']} |"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
