"""The LSTM experiment: the adaptation experiment with an LSTM cell.

It tests whether sparse RTRL with k = 4 paths into each of the 2n state rows of an
LSTM recovers as much of the post-switch loss as exact RTRL.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ._adaptation import AdaptationConfig, run_seeds, write_outputs
from ._store import write_json_atomic

LSTM_LEARNERS = ("frozen", "readout", "sparse:k=0", "sparse:k=4", "exact")


@dataclass
class LSTMExperimentConfig(AdaptationConfig):
    """Settings of the LSTM experiment: ``AdaptationConfig`` with LSTM defaults.

    The influence matrix of an LSTM has 2n rows and 4n(n + m + 1) columns, so the
    default ``hidden_size`` of 32 gives (64, 4608) for the 3-input teacher task.
    """

    cell: str = field(default="lstm", metadata={"help": "recurrent cell"})
    hidden_size: int = field(default=32, metadata={"help": "LSTM units n"})
    learners: tuple[str, ...] = field(
        default=LSTM_LEARNERS, metadata={"help": "learner specs"}
    )

    @classmethod
    def quick(cls, **overrides: Any) -> LSTMExperimentConfig:
        """Return a small preset (n = 16, 3 seeds, 800 adaptation steps)."""
        preset = cls(
            hidden_size=16,
            seeds=3,
            pretrain_iterations=200,
            pretrain_window=60,
            pretrain_batch=16,
            warmup_steps=100,
            adapt_steps=800,
        )
        return replace(preset, **overrides)


def run_lstm_experiment(
    config: LSTMExperimentConfig,
    out_dir: str | Path,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the LSTM experiment and write its files into ``out_dir``.

    Files: ``config.json``, ``runs/lstm/*.json`` (one per learner and seed, written
    as each finishes and reused on a rerun with the same settings),
    ``summary.json``, ``curves.npz`` and ``adaptation.png``.

    Returns:
      The summary of ``summarize``: per learner its seeds, losses and recovery
      (``recovery_mean``, ``recovery_std``) against ``frozen`` and ``config.full``.
    """
    config.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", asdict(config))
    records = run_seeds(config, out, "lstm", workers, progress)
    return write_outputs(config, records, out)
