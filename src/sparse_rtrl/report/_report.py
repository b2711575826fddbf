"""``report.md``: the published claims beside the measured figures, with verdicts.

The report is a function of the stored unit results and the manifest: it can be
rebuilt at any time (``sparse-rtrl report DIR``) without running anything.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..experiments._claims import PUBLISHED
from ..experiments._registry import (
    EXPERIMENTS,
    NO_DATA,
    SCALES,
    Claim,
    Experiment,
    Measurement,
)
from ..experiments._reproduce import load_results, machine_info, read_manifest
from ..experiments._store import write_json_atomic
from ._tables import markdown_table

log = logging.getLogger(__name__)

REPORT = "report.md"
SUMMARY = "summary.json"


@dataclass(frozen=True)
class ClaimRow:
    """One row of the claims table."""

    key: str
    claim: str
    published: str
    measured: str
    verdict: str
    rule: str
    experiment: str | None


def judge(claim: Claim, summary: dict[str, Any] | None) -> tuple[Measurement, str]:
    """Return the measurement of ``claim`` from ``summary`` and the rule's verdict.

    A missing summary, or one the claim cannot read, gives ``no data``.
    """
    if summary is None:
        return Measurement(), NO_DATA
    try:
        measurement = claim.measure(summary)
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError) as error:
        log.error("claim %s: measurement failed: %r", claim.key, error)
        return Measurement(note=f"measurement failed: {error!r}"), NO_DATA
    return measurement, claim.rule.verdict(measurement)


def claim_rows(
    experiments: list[Experiment], summaries: dict[str, dict[str, Any] | None]
) -> list[ClaimRow]:
    """Return a row per registered claim, then one per published claim no
    experiment tests."""
    rows = []
    for experiment in experiments:
        for claim in experiment.claims:
            measurement, verdict = judge(claim, summaries.get(experiment.name))
            rows.append(
                ClaimRow(
                    claim.key,
                    claim.text,
                    claim.published,
                    measurement.text(),
                    verdict,
                    claim.rule.describe(),
                    experiment.name,
                )
            )
    tested = {row.key.split("/")[0] for row in rows}
    for key, text, published in PUBLISHED:
        if key not in tested:
            rows.append(
                ClaimRow(
                    key,
                    text,
                    published,
                    "not run (no experiment registered)",
                    NO_DATA,
                    "",
                    None,
                )
            )
    return rows


def _verdict_cell(row: ClaimRow) -> str:
    rule = row.rule.split(":")[0].split(" (")[0]
    return f"**{row.verdict}** ({rule})" if rule else f"**{row.verdict}**"


def _seed_text(experiments: list[Experiment], scale: str, seeds: int | None) -> str:
    if seeds is not None:
        return f"seeds 0–{seeds - 1} ({seeds} per experiment)"
    counts = {e.name: e.seed_count(scale) for e in experiments}
    if len(set(counts.values())) == 1:
        count = next(iter(counts.values()))
        return f"seeds 0–{count - 1} ({count} per experiment)"
    return ", ".join(f"{name}: {count}" for name, count in counts.items())


def _header(manifest: dict[str, Any], scale: str, seed_text: str) -> list[str]:
    machine = manifest.get("machine") or machine_info()
    built = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    lines = [
        "# Sparse RTRL: published claims against measured results",
        "",
        f"- Command: `{manifest.get('command', 'unknown')}`",
        f"- Run: started {manifest.get('started', 'unknown')}, finished "
        f"{manifest.get('finished') or 'not finished'}; "
        f"{manifest.get('ran', '?')} units run, {manifest.get('skipped', '?')} "
        f"reused, {manifest.get('failed', '?')} failed",
        f"- Machine: {machine.get('platform')}, {machine.get('cpu_count')} CPUs, "
        f"Python {machine.get('python')}, torch {machine.get('torch')}",
        f"- Backend: {manifest.get('backend', 'local')}; workers: "
        f"{manifest.get('workers', 1)}",
        f"- Scale: `{scale}`; {seed_text}",
        f"- Report built: {built}",
        "- Published figures: A. Shalev-Merin, arXiv 2603.15195 (abstract only) "
        "and the follow-up arXiv 2603.28750 (abstract).",
    ]
    if scale == "quick":
        lines.append(
            "- At scale `quick` the pretraining and adaptation windows are shorter "
            "than at the published scale, so a verdict judges the shorter run."
        )
    elif scale == "tiny":
        lines.append(
            "- At scale `tiny` networks and runs are far smaller than published: "
            "the verdicts check the code path, not the claims."
        )
    return lines


def _verdict_section(rows: list[ClaimRow]) -> list[str]:
    rules = []
    for row in rows:
        if row.rule and row.rule not in rules:
            rules.append(row.rule)
    lines = [
        "## How verdicts are computed",
        "",
        "Each verdict comes from the measured numbers by the rule named beside it; "
        "none is written by hand. σ is the standard deviation across seeds, or the "
        "bootstrap standard error over seeds where the measured figure says SE. "
        "`inconclusive` means the seeds disagree too much, or the effect is too "
        "small, to decide; `no data` means no finished run measured the figure.",
        "",
    ]
    lines += [f"- {rule}" for rule in rules]
    return lines


def _failure_lines(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = []
    for condition, units in results.items():
        for unit in units:
            if unit["status"] != "ok":
                last = (unit.get("error") or "").strip().splitlines()
                reason = last[-1] if last else "unknown error"
                lines.append(f"- {condition}, seed {unit['seed']}: {reason}")
            for record in unit.get("records", []):
                if record.get("status") not in (None, "ok"):
                    lines.append(
                        f"- {condition}, seed {unit['seed']}, "
                        f"{record.get('learner', '?')}: {record.get('error')}"
                    )
    return lines


def build_report(
    out_dir: str | Path,
    scale: str | None = None,
    seeds: int | None = None,
    experiments: list[Experiment] | None = None,
) -> Path:
    """Write ``report.md``, ``summary.json`` and the figures into ``out_dir``.

    Args:
      out_dir: the directory of a ``reproduce`` run.
      scale: the scale whose units to report; the manifest's by default.
      seeds: seeds per experiment; the manifest's by default.
      experiments: experiments to report; every registered one by default.

    Returns:
      The path of ``report.md``.
    """
    out = Path(out_dir)
    manifest = read_manifest(out)
    scale = scale or manifest.get("scale") or "default"
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {list(SCALES)}; got scale={scale!r}")
    if seeds is None:
        seeds = manifest.get("seeds")
    experiments = list(EXPERIMENTS.values()) if experiments is None else experiments

    summaries: dict[str, dict[str, Any] | None] = {}
    sections: list[str] = []
    for experiment in experiments:
        units = experiment.units(scale, seeds)
        results = load_results(out, units)
        stored = sum(len(v) for v in results.values())
        failed = sum(u["status"] != "ok" for v in results.values() for u in v)
        section = [f"## {experiment.title}", "", experiment.description, ""]
        section.append(
            f"Stored units: {stored} of {len(units)} ({failed} failed), "
            f"experiment `{experiment.name}`."
        )
        summary = None
        if stored:
            try:
                summary = experiment.summarize(results)
            except Exception as error:
                # One experiment's broken summary must not cost the whole report.
                log.exception("summary of %s failed", experiment.name)
                section += ["", f"Summary failed: {error!r}"]
            if summary is not None:
                section += _experiment_body(experiment, summary, results, out)
        summaries[experiment.name] = summary
        failures = _failure_lines(results)
        if failures:
            section += ["", "Failures:", "", *failures]
        sections.append("\n".join(section))

    rows = claim_rows(experiments, summaries)
    table = markdown_table(
        ["claim", "published", "measured", "verdict"],
        [[row.claim, row.published, row.measured, _verdict_cell(row)] for row in rows],
    )
    lines = _header(manifest, scale, _seed_text(experiments, scale, seeds))
    lines += ["", "## Claims", "", table, ""]
    lines += _verdict_section(rows)
    text = "\n".join(lines) + "\n\n" + "\n\n".join(sections) + "\n"
    write_json_atomic(
        out / SUMMARY,
        {
            "scale": scale,
            "seeds": seeds,
            "claims": [row.__dict__ for row in rows],
            "experiments": summaries,
        },
    )
    path = out / REPORT
    tmp = path.with_name(f".{REPORT}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def _experiment_body(experiment, summary, results, out: Path) -> list[str]:
    body: list[str] = []
    claims = [
        f"- {claim.text}: rule {claim.rule.describe().split(':')[0]}"
        for claim in experiment.claims
    ]
    if claims:
        body += ["", "Claims tested here:", "", *claims]
    if experiment.table is not None:
        body += ["", experiment.table(summary)]
    if experiment.figures is not None:
        try:
            paths = experiment.figures(summary, results, out)
        except (ValueError, TypeError, KeyError, IndexError) as error:
            log.error("figures of %s failed: %r", experiment.name, error)
            body += ["", f"Figures failed: {error!r}"]
            paths = []
        body += ["", *[f"![{experiment.name}]({Path(p).name})" for p in paths]]
    return body
