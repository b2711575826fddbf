"""Figures written by the experiments."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Moving average along the last axis, with the window shrinking at the edges."""
    if width <= 1:
        return values
    kernel = np.ones(width)
    total = np.apply_along_axis(lambda v: np.convolve(v, kernel, "same"), -1, values)
    count = np.convolve(np.ones(values.shape[-1]), kernel, "same")
    return total / count


def plot_switch_curves(
    curves: dict[str, np.ndarray], switch_step: int, path: Path, title: str = ""
) -> None:
    """Plot the per-step loss of each learner around the regime switch.

    Args:
      curves: learner label -> (seeds, steps) per-step losses.
      switch_step: index of the first step after the switch.
      path: PNG file to write.
    """
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, values in curves.items():
        steps = values.shape[-1]
        width = max(1, steps // 100)
        mean = smooth(values, width).mean(axis=0)
        ax.plot(np.arange(steps) - switch_step, mean, label=label, lw=1.2)
    ax.axvline(0, color="k", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("step relative to the switch")
    ax.set_ylabel("per-step loss (mean over seeds, smoothed)")
    ax.set_title(title or "loss around the regime switch")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
