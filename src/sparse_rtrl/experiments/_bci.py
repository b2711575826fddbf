"""The ``bci`` experiment: a recurrent velocity decoder pretrained on one session
and adapted online to a drifted or later session."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_choice
from ..data import DriftConfig
from ..tasks import make_task
from ..tasks._bci_options import SOURCES
from ._adaptation import (
    DEFAULT_LEARNERS,
    LEARNER_HELP,
    AdaptationConfig,
    adaptation_streams,
    run_seeds,
    write_outputs,
)
from ._metrics import mean_std
from ._store import write_json_atomic

DRIFT_FIELDS = (
    "drop_fraction",
    "swap_fraction",
    "gain_std",
    "baseline_std",
    "rotation_deg",
)


@dataclass
class BCIConfig(AdaptationConfig):
    """Adaptation settings plus where the two sessions come from.

    ``adapt_steps = 0`` adapts over all of session B. Drift fields left at None
    take ``DriftConfig``'s defaults, which the config then records. The data
    (synthetic sessions, drift draw) are fixed by ``data_seed``; the seeds vary the
    decoder's initial weights, the pretraining batches and the sparse paths.
    """

    task: str = field(default="bci", metadata={"cli": False})
    task_options: dict[str, Any] = field(default_factory=dict, metadata={"cli": False})
    source: str = field(
        default="synthetic",
        metadata={"help": "where the sessions come from", "choices": SOURCES},
    )
    session_a: str | None = field(
        default=None, metadata={"help": "session A file (.nwb/.mat/.npz/.h5)"}
    )
    session_b: str | None = field(
        default=None, metadata={"help": "session B file (.nwb/.mat/.npz/.h5)"}
    )
    counts_key: str = field(default="counts", metadata={"help": "count matrix key"})
    velocity_key: str = field(
        default="velocity", metadata={"help": "velocity matrix key"}
    )
    bin_width: float = field(default=0.02, metadata={"help": "bin width, seconds"})
    demo: str = field(default="chewie", metadata={"help": "demo recording name"})
    demo_path: str | None = field(
        default=None, metadata={"help": "demo file or folder"}
    )
    drift: bool = field(
        default=True, metadata={"help": "derive session B by drift (demo/synthetic)"}
    )
    data_seed: int = field(default=0, metadata={"help": "seed of data and drift"})
    drop_fraction: float | None = field(
        default=None, metadata={"help": "drift: fraction of channels lost"}
    )
    swap_fraction: float | None = field(
        default=None, metadata={"help": "drift: fraction of swapped neighbours"}
    )
    gain_std: float | None = field(
        default=None, metadata={"help": "drift: std of log gain per channel"}
    )
    baseline_std: float | None = field(
        default=None, metadata={"help": "drift: std of baseline change"}
    )
    rotation_deg: float | None = field(
        default=None, metadata={"help": "drift: preferred-direction rotation"}
    )
    learners: tuple[str, ...] = field(
        default=DEFAULT_LEARNERS, metadata={"help": LEARNER_HELP}
    )
    adapt_steps: int = field(
        default=0, metadata={"help": "regime-B bins (0: all of session B)"}
    )
    warmup_steps: int = field(default=100, metadata={"help": "regime-A bins"})
    pretrain_iterations: int = field(default=300, metadata={"help": "BPTT steps"})
    pretrain_window: int = field(default=50, metadata={"help": "BPTT window"})
    record_predictions: bool = field(
        default=True, metadata={"help": "store decoded velocity per bin"}
    )

    def __post_init__(self):
        check_choice("source", self.source, SOURCES)
        options: dict[str, Any] = {
            "source": self.source,
            "drift": self.drift,
            "data_seed": self.data_seed,
        }
        # The demo files do not record their bin width, so none is passed there.
        if self.source != "demo":
            options["bin_width"] = self.bin_width
        if self.source == "files":
            options.update(
                session_a=self.session_a,
                session_b=self.session_b,
                counts_key=self.counts_key,
                velocity_key=self.velocity_key,
            )
        if self.source == "demo":
            options.update(demo=self.demo, demo_path=self.demo_path)
        for name in DRIFT_FIELDS:
            value = getattr(self, name)
            if value is None:
                value = getattr(DriftConfig(), name)
                setattr(self, name, value)
            options[name] = value
        self.task_options = options

    def resolved(self, task) -> BCIConfig:
        """Return a copy whose ``adapt_steps`` is session B's length when 0."""
        if self.adapt_steps:
            return self
        data = asdict(self)
        data["adapt_steps"] = len(task.sessions["B"])
        return BCIConfig(**data)


def r_squared(prediction: np.ndarray, target: np.ndarray) -> float:
    """Return ``1 − Σ‖ŷ − y‖² / Σ‖y − ȳ‖²`` pooled over the output axes.

    Args:
      prediction: (T, d) decoded values.
      target: (T, d) true values.
    """
    residual = np.sum((prediction - target) ** 2)
    total = np.sum((target - target.mean(axis=0)) ** 2)
    return math.nan if total == 0 else float(1.0 - residual / total)


def run_bci(
    config: BCIConfig, out_dir: str | Path, workers: int = 1, progress: bool = True
) -> dict[str, Any]:
    """Run the ``bci`` experiment and write the adaptation outputs plus R².

    Besides the files of ``run_adaptation``, ``summary.json`` gets, per learner,
    the R² of the decoded velocity over the whole adaptation window and over its
    last quarter, and ``decoded_velocity.png`` shows true and decoded velocity at
    the start and at the end of the window for the first seed.
    """
    task = make_task(config.task, **config.task_options)
    config = config.resolved(task)
    config.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", asdict(config))
    records = run_seeds(config, out, "bci", workers, progress)
    summary = write_outputs(config, records, out)

    targets = {}
    for seed in sorted({r["seed"] for r in records}):
        _, adapt = adaptation_streams(config, task, seed)
        targets[seed] = adapt.targets.double().cpu().numpy()
    quarter = max(1, config.adapt_steps // 4)
    for label, row in summary["learners"].items():
        whole, late = [], []
        for record in records:
            if record["learner"] != label or record.get("status") != "ok":
                continue
            prediction = np.asarray(record["predictions"])
            target = targets[record["seed"]]
            whole.append(r_squared(prediction, target))
            late.append(r_squared(prediction[-quarter:], target[-quarter:]))
        row["r2"] = whole
        row["r2_mean"], row["r2_std"], _ = mean_std(whole)
        row["r2_last_quarter"] = late
        row["r2_last_quarter_mean"], row["r2_last_quarter_std"], _ = mean_std(late)
    summary["data"] = {
        "source": config.source,
        "kind": task.sessions["B"].metadata.get("kind"),
        "channels": task.input_size,
        "bins_a": len(task.sessions["A"]),
        "bins_b": len(task.sessions["B"]),
        "task_options": config.task_options,
    }
    write_json_atomic(out / "summary.json", summary)
    _plot_decoded(records, targets, config, out / "decoded_velocity.png")
    return summary


def format_bci_table(summary: dict[str, Any]) -> str:
    """Return learner, loss, recovery and R² as aligned text."""
    header = (
        f"{'learner':<22} {'loss':>16} {'recovery %':>14} {'vs k=0 %':>14} "
        f"{'R² all':>12} {'R² last 1/4':>12}"
    )
    lines = [header, "-" * len(header)]
    for label, row in summary["learners"].items():
        lines.append(
            f"{label:<22} {row['loss_mean']:>9.4g} ± {row['loss_std']:<4.2g} "
            f"{_pm(row['recovery_mean'], row['recovery_std'], 1):>14} "
            f"{_pm(row['recovery_vs_k0_mean'], row['recovery_vs_k0_std'], 1):>14} "
            f"{_pm(row['r2_mean'], row['r2_std'], 2):>12} "
            f"{_pm(row['r2_last_quarter_mean'], row['r2_last_quarter_std'], 2):>12}"
        )
    return "\n".join(lines)


def _pm(mean: float, std: float, digits: int) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _plot_decoded(records, targets, config: BCIConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seed = min(targets)
    shown = [
        r
        for r in records
        if r["seed"] == seed and r.get("status") == "ok" and "predictions" in r
    ]
    target = targets[seed]
    span = min(150, len(target))
    windows = {"start of session B": slice(0, span)}
    windows["end of adaptation"] = slice(len(target) - span, len(target))
    fig, axes = plt.subplots(2, 2, figsize=(11, 6), sharey="row")
    for column, (title, window) in enumerate(windows.items()):
        steps = np.arange(len(target))[window]
        for axis in range(2):
            ax = axes[axis, column]
            ax.plot(steps, target[window, axis], color="k", lw=2, label="true")
            for record in shown:
                prediction = np.asarray(record["predictions"])
                ax.plot(steps, prediction[window, axis], lw=1, label=record["learner"])
            ax.set_title(f"{title}, velocity {'xy'[axis]}", fontsize=9)
            ax.set_xlabel("bin")
    axes[0, 0].set_ylabel("velocity (session-A std)")
    axes[1, 0].set_ylabel("velocity (session-A std)")
    axes[0, 1].legend(fontsize=7)
    kind = "synthetic" if config.source == "synthetic" else config.source
    fig.suptitle(f"decoded vs true velocity, seed {seed}, data: {kind}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
