"""Markdown tables of experiment summaries for ``report.md``."""

from __future__ import annotations

import math
from typing import Any


def format_mean_std(mean: float, std: float, digits: int = 1, unit: str = "") -> str:
    """Return ``mean ± std`` with ``digits`` decimals, or ``n/a`` for a NaN mean."""
    if mean is None or not math.isfinite(mean):
        return "n/a"
    if std is None or not math.isfinite(std):
        return f"{mean:.{digits}f}{unit}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}{unit}"


def format_loss(mean: float, std: float) -> str:
    if mean is None or not math.isfinite(mean):
        return "n/a"
    return f"{mean:.4g} ± {std:.2g}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """Return a GitHub-flavoured markdown table; ``|`` in cells is escaped."""

    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("|" + "|".join(" --- " for _ in header) + "|")
    lines.extend("| " + " | ".join(cell(c) for c in row) + " |" for row in rows)
    return "\n".join(lines)


def _condition_settings(row: dict[str, Any]) -> str:
    parts = [f"task {row.get('task', '?')}", f"n={row.get('hidden_size', '?')}"]
    if "optimizer" in row:
        parts.append(f"{row['optimizer']} lr={row['lr']:g}")
    density = row.get("error_density")
    if density == "periodic":
        parts.append(f"error every {row.get('error_period')} steps")
    elif density:
        parts.append(f"error density {density}")
    if "adapt_steps" in row:
        parts.append(f"{row['adapt_steps']} adaptation steps")
    return ", ".join(parts)


def adaptation_markdown(summary: dict[str, Any]) -> str:
    """Return one table per condition: loss, recovery and seeds of each learner."""
    blocks = []
    header = [
        "learner",
        "adaptation loss",
        "recovery % (vs frozen)",
        "recovery % (vs k=0)",
        "ok / seeds",
        "ms per step",
    ]
    for label, row in summary.get("conditions", {}).items():
        learners = row.get("learners", {})
        if not learners:
            blocks.append(f"**{label}**: no stored runs.")
            continue
        rows = []
        for name, entry in learners.items():
            step_ms = 1000 * entry.get("seconds_per_step", math.nan)
            rows.append(
                [
                    f"`{name}`",
                    format_loss(entry["loss_mean"], entry["loss_std"]),
                    format_mean_std(entry["recovery_mean"], entry["recovery_std"]),
                    format_mean_std(
                        entry["recovery_vs_k0_mean"], entry["recovery_vs_k0_std"]
                    ),
                    f"{len(entry['loss'])} / {len(entry['seeds'])}",
                    "n/a" if not math.isfinite(step_ms) else f"{step_ms:.2f}",
                ]
            )
        blocks.append(
            f"**{label}** ({_condition_settings(row)})\n\n"
            + markdown_table(header, rows)
        )
    return "\n\n".join(blocks)


def spectra_markdown(summary: dict[str, Any]) -> str:
    """Return tables of condition numbers and gradient cosines from a spectra
    summary."""
    jacobian = summary.get("jacobian_condition", {})
    if not jacobian.get("count"):
        return "No stored spectra runs."
    rows = [
        [
            "J_t (S × S)",
            format_mean_std(jacobian["mean"], jacobian["std"], 2),
            f"{jacobian['min']:.2f} – {jacobian['max']:.2f}",
            str(jacobian["count"]),
        ]
    ]
    for label, entry in summary.get("influence", {}).items():
        rows.append(
            [
                f"M_t of `{label}` (S × P)",
                format_loss(entry["mean"], entry["std"]),
                f"{entry['min']:.3g} – {entry['max']:.3g}",
                str(entry["count"]),
            ]
        )
    conditions = markdown_table(
        ["matrix", "median condition number (mean ± std over seeds)", "range", "seeds"],
        rows,
    )
    cosine_rows = [
        [f"`{label}`", format_mean_std(entry["mean"], entry["std"], 3), entry["count"]]
        for label, entry in summary.get("cosine", {}).items()
    ]
    cosines = markdown_table(
        ["shadow learner", "cosine to the exact gradient", "seeds"], cosine_rows
    )
    return f"{conditions}\n\n{cosines}"
