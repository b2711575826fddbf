"""Figures of the reproduction report, drawn from experiment summaries."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ._figures import smooth  # noqa: E402


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _sparse_k(label: str) -> int | None:
    """Return k of a plain ``sparse:k=<k>`` label, None for any other learner."""
    match = re.fullmatch(r"sparse:k=(\d+)", label)
    return int(match.group(1)) if match else None


def _no_data(ax, text: str = "no stored runs") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def plot_recovery_vs_k(summary: dict[str, Any], path: Path) -> None:
    """Plot recovery (mean ± std over seeds) against k, one line per condition.

    Exact RTRL is drawn at k = n. The x axis is symmetric-log so that k = 0 shows.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    drawn = False
    for label, row in summary.get("conditions", {}).items():
        points = []
        for learner, entry in row.get("learners", {}).items():
            k = _sparse_k(learner)
            if learner == "exact":
                k = row.get("hidden_size")
            if k is None or not math.isfinite(entry["recovery_mean"]):
                continue
            points.append((k, entry["recovery_mean"], entry["recovery_std"]))
        if not points:
            continue
        ks, means, stds = map(np.asarray, zip(*sorted(points)))
        ax.errorbar(ks, means, yerr=stds, marker="o", capsize=3, label=label)
        drawn = True
    if not drawn:
        _no_data(ax)
    ax.set_xscale("symlog", linthresh=1)
    ax.axhline(100, color="k", lw=0.6, ls=":")
    ax.axhline(0, color="k", lw=0.6, ls=":")
    ax.set_xlabel("paths per unit k (exact RTRL at k = n)")
    ax.set_ylabel("recovery % (frozen 0, exact 100)")
    ax.set_title("recovery against k")
    if drawn:
        ax.legend(fontsize=8)
    _save(fig, path)


def plot_recovery_vs_n(summary: dict[str, Any], path: Path, k: int = 4) -> None:
    """Plot recovery of k and of k = 0 against n, with k/n on the top axis."""
    rows = sorted(
        (row["hidden_size"], row)
        for row in summary.get("conditions", {}).values()
        if row.get("learners")
    )
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    if not rows:
        _no_data(ax)
    for learner, marker in ((f"sparse:k={k}", "o"), ("sparse:k=0", "s")):
        points = [
            (n, row["learners"][learner]["recovery_mean"])
            + (row["learners"][learner]["recovery_std"],)
            for n, row in rows
            if learner in row["learners"]
        ]
        points = [p for p in points if math.isfinite(p[1])]
        if points:
            sizes, means, stds = map(np.asarray, zip(*points))
            ax.errorbar(
                sizes, means, yerr=stds, marker=marker, capsize=3, label=learner
            )
    ax.set_xscale("log", base=2)
    if rows:
        sizes = [n for n, _ in rows]
        ax.set_xticks(sizes, [str(n) for n in sizes])
        top = ax.secondary_xaxis("top")
        top.set_xticks(sizes, [f"{100 * k / n:.1f}%" for n in sizes])
        top.set_xlabel(f"fraction of paths kept, k/n (k={k})")
        ax.legend(fontsize=8)
    ax.axhline(100, color="k", lw=0.6, ls=":")
    ax.set_xlabel("recurrent units n")
    ax.set_ylabel("recovery %")
    _save(fig, path)


def plot_recovery_bars(
    summary: dict[str, Any],
    condition: str,
    bars: dict[str, str],
    path: Path,
    title: str,
) -> None:
    """Bar chart of recovery ± std for ``bars`` (bar name -> learner label)."""
    row = summary.get("conditions", {}).get(condition, {}).get("learners", {})
    names, means, stds = [], [], []
    for name, learner in bars.items():
        entry = row.get(learner)
        if entry and math.isfinite(entry["recovery_mean"]):
            names.append(name)
            means.append(entry["recovery_mean"])
            stds.append(entry["recovery_std"])
    fig, ax = plt.subplots(figsize=(6, 4))
    if names:
        ax.bar(names, means, yerr=stds, capsize=4, color="tab:blue", alpha=0.8)
    else:
        _no_data(ax)
    ax.axhline(100, color="k", lw=0.6, ls=":")
    ax.set_ylabel("recovery %")
    ax.set_title(title)
    _save(fig, path)


def plot_condition_recovery(
    summary: dict[str, Any], learner: str, path: Path, title: str
) -> None:
    """Bar chart of ``learner``'s recovery ± std in each condition."""
    names, means, stds = [], [], []
    for label, row in summary.get("conditions", {}).items():
        entry = row.get("learners", {}).get(learner)
        if entry and math.isfinite(entry["recovery_mean"]):
            names.append(label)
            means.append(entry["recovery_mean"])
            stds.append(entry["recovery_std"])
    fig, ax = plt.subplots(figsize=(6, 4))
    if names:
        ax.bar(names, means, yerr=stds, capsize=4, color="tab:green", alpha=0.8)
    else:
        _no_data(ax)
    ax.axhline(100, color="k", lw=0.6, ls=":")
    ax.set_ylabel(f"recovery % of {learner}")
    ax.set_title(title)
    _save(fig, path)


def plot_spectra(summary: dict[str, Any], path: Path) -> None:
    """Three panels: condition numbers of J_t and M_t, the mean singular values of
    J_t per seed, and the cosine of each shadow's gradient to exact RTRL's."""
    series = summary.get("series", {})
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    if not series:
        for ax in axes:
            _no_data(ax)
        _save(fig, path)
        return

    ax = axes[0]
    jacobian = [c for s in series.values() for c in s["jacobian_condition"]]
    influence = [c for s in series.values() for c in s["influence_condition"]["exact"]]
    for values, label in ((jacobian, "J_t"), (influence, "M_t (exact)")):
        finite = np.asarray([v for v in values if math.isfinite(v) and v > 0])
        if finite.size:
            ax.hist(np.log10(finite), bins=30, alpha=0.6, label=label)
    ax.set_xlabel("log10 condition number")
    ax.set_ylabel("samples")
    ax.set_title("condition numbers along adaptation")
    ax.legend(fontsize=8)

    ax = axes[1]
    for seed, s in series.items():
        values = s["jacobian_sv_mean"]
        ax.plot(np.arange(1, len(values) + 1), values, lw=1, label=f"seed {seed}")
    ax.set_yscale("log")
    ax.set_xlabel("index (largest first)")
    ax.set_ylabel("singular value of J_t (mean over samples)")
    ax.set_title("Jacobian spectrum")
    ax.legend(fontsize=7)

    ax = axes[2]
    labels = sorted({label for s in series.values() for label in s["cosine"]})
    for label in labels:
        rows = [s["cosine"][label] for s in series.values() if label in s["cosine"]]
        width = min(len(r) for r in rows)
        if width == 0:
            continue
        values = np.asarray([r[:width] for r in rows], dtype=float)
        steps = next(iter(series.values()))["steps"][:width]
        ax.plot(steps, np.nanmean(values, axis=0), lw=1.2, label=label)
    ax.set_ylim(-0.1, 1.05)
    ax.set_xlabel("adaptation step")
    ax.set_ylabel("cosine to exact gradient")
    ax.set_title("gradient alignment (mean over seeds)")
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_final_loss_distribution(
    summary: dict[str, Any], condition: str, path: Path
) -> None:
    """Plot every seed's final loss per learner, with the mean and the CV."""
    row = summary.get("conditions", {}).get(condition, {}).get("learners", {})
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    names = [name for name, entry in row.items() if entry["final_loss"]]
    for position, name in enumerate(names):
        values = np.asarray(row[name]["final_loss"], dtype=float)
        jitter = np.linspace(-0.12, 0.12, values.size) if values.size > 1 else [0.0]
        ax.scatter(position + np.asarray(jitter), values, s=18, alpha=0.8)
        ax.hlines(values.mean(), position - 0.25, position + 0.25, color="k")
        if values.size > 1 and values.mean() > 0:
            cv = 100 * values.std(ddof=1) / values.mean()
            ax.annotate(
                f"CV {cv:.0f}%",
                (position, values.max()),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=8,
            )
    if names:
        ax.set_xticks(range(len(names)), names, rotation=15)
        ax.set_yscale("log")
    else:
        _no_data(ax)
    ax.set_ylabel("final loss (last tenth of adaptation)")
    ax.set_title(f"final loss per seed ({condition})")
    _save(fig, path)


def plot_error_density(
    summary: dict[str, Any], results: dict[str, list[dict[str, Any]]], path: Path
) -> None:
    """Plot two panels of the error-density experiment.

    Left: the mean adaptation loss of each learner in each condition of the first
    condition's task. Right: the per-step loss after the switch (mean over seeds,
    smoothed) of ``sparse:k=4`` and ``exact`` in each condition whose task has a
    target at every step.
    """
    conditions = summary.get("conditions", {})
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    ax = axes[0]
    # Only conditions of one task share a loss scale; the first condition's task
    # sets it, and other tasks appear in the tables alone.
    tasks = [row.get("task") for row in conditions.values()]
    labels = [label for label, task in zip(conditions, tasks) if task == tasks[0]]
    learners = []
    for row in conditions.values():
        learners += [name for name in row.get("learners", {}) if name not in learners]
    for learner in learners:
        means = [
            conditions[c].get("learners", {}).get(learner, {}).get("loss_mean", np.nan)
            for c in labels
        ]
        ax.plot(range(len(labels)), means, marker="o", label=learner)
    if learners:
        ax.set_xticks(range(len(labels)), labels, rotation=12, fontsize=7)
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    else:
        _no_data(ax)
    ax.set_ylabel("adaptation loss (mean over seeds)")
    ax.set_title("loss by error density")

    ax = axes[1]
    drawn = False
    for label, units in results.items():
        warmup = units[0]["config"]["warmup_steps"] if units else 0
        for learner in ("sparse:k=4", "exact"):
            # A record with ``loss_all_steps`` comes from a task with targets at
            # some steps only, where the per-step curve mixes in steps without one.
            curves = [
                record["curve"][warmup:]
                for unit in units
                if unit["status"] == "ok"
                for record in unit["records"]
                if record.get("learner") == learner
                and record.get("status") == "ok"
                and "loss_all_steps" not in record
            ]
            if not curves:
                continue
            width = min(len(c) for c in curves)
            values = np.asarray([c[:width] for c in curves])
            mean = smooth(values, max(1, width // 50)).mean(axis=0)
            ax.plot(mean, lw=1, label=f"{learner}, {label}")
            drawn = True
    if drawn:
        ax.set_yscale("log")
        ax.legend(fontsize=6)
    else:
        _no_data(ax)
    ax.set_xlabel("adaptation step")
    ax.set_ylabel("per-step loss (smoothed)")
    ax.set_title("loss after the switch")
    _save(fig, path)
