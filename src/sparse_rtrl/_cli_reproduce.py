"""``sparse-rtrl reproduce`` and ``sparse-rtrl report``."""

from __future__ import annotations

import os
import shlex
import sys

import click

from .experiments import EXPERIMENTS, SCALES, reproduce
from .experiments._backends import BACKENDS
from .experiments._store import CorruptResultError


def _names(values: tuple[str, ...]) -> list[str] | None:
    names = [name.strip() for value in values for name in value.split(",")]
    names = [name for name in names if name]
    return names or None


def _default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _command_line(only, scale, seeds, out, workers, backend, address, retry_failed):
    """Return the command as typed, with defaults filled in, for the report."""
    words = ["sparse-rtrl", "reproduce"]
    if scale != "default":
        words.append(f"--{scale}")
    names = _names(only)
    if names:
        words += ["--only", ",".join(names)]
    if seeds is not None:
        words += ["--seeds", str(seeds)]
    words += ["--out", str(out), "--workers", str(workers), "--backend", backend]
    if address is not None:
        words += ["--address", address]
    if retry_failed:
        words.append("--retry-failed")
    return shlex.join(words)


@click.command("reproduce")
@click.option(
    "--only",
    multiple=True,
    metavar="NAMES",
    help="Experiments to run, comma-separated or repeated "
    f"[default: all of {', '.join(EXPERIMENTS)}].",
)
@click.option(
    "--quick",
    "scale",
    flag_value="quick",
    help=(
        "Reduced length: all experiments, 3 seeds, in 6 min 42 s on an idle "
        "2-core CPU (measured 2026-12-04)."
    ),
)
@click.option(
    "--tiny",
    "scale",
    flag_value="tiny",
    help="Smoke-test scale: every experiment in seconds; checks the code path.",
)
@click.option(
    "--default",
    "scale",
    flag_value="default",
    default=True,
    help="The published scale, an estimated several hours on 2 cores [default].",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=None,
    help="Seeds per experiment, 0..N-1 [default: 5; 3 with --quick; 2 with --tiny].",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="results/reproduce",
    show_default=True,
    help="Output directory; finished runs found there are skipped.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Parallel worker processes (local) or CPUs of a local Ray instance "
    "[default: min(2, CPU count)].",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="local",
    show_default=True,
    help="local: a process pool on this machine; ray: Ray tasks.",
)
@click.option(
    "--address",
    default=None,
    help="Ray cluster address (auto, or ray://HOST:PORT); without it --backend ray "
    "starts a local Ray instance.",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Run again the units stored as failed (by default they are reported).",
)
@click.option("--quiet", is_flag=True, help="Hide progress bars.")
def reproduce_command(
    only, scale, seeds, out, workers, backend, address, retry_failed, quiet
):
    """Run the experiments behind every published claim and write OUT/report.md.

    Each (experiment, condition, seed) result is stored in OUT/runs/ the moment it
    finishes. Rerunning the same command skips finished runs, so an interrupted run
    resumes where it stopped. A run that fails is recorded with its error and
    the others go on. Exits with status 1 when a run failed.
    """
    if address is not None and backend != "ray":
        raise click.UsageError("--address needs --backend ray")
    workers = _default_workers() if workers is None else workers
    command = _command_line(
        only, scale, seeds, out, workers, backend, address, retry_failed
    )
    try:
        outcome = reproduce(
            out,
            names=_names(only),
            scale=scale,
            seeds=seeds,
            workers=workers,
            backend=backend,
            address=address,
            progress=not quiet,
            retry_failed=retry_failed,
            command=command,
        )
    except (ValueError, CorruptResultError) as error:
        raise click.UsageError(str(error)) from error
    except RuntimeError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"{sum(outcome.ran.values())} runs done, {outcome.skipped} reused, "
        f"{len(outcome.failed)} failed, {len(outcome.lost)} lost"
    )
    for experiment, condition, seed, error in outcome.failed + outcome.lost:
        reason = (error or "").strip().splitlines()
        click.echo(
            f"failed: {experiment} / {condition} / seed {seed}: "
            f"{reason[-1] if reason else 'unknown error'}",
            err=True,
        )
    click.echo(f"report written to {outcome.report}")
    if not outcome.ok:
        sys.exit(1)


@click.command("report")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--scale",
    type=click.Choice(SCALES),
    default=None,
    help="Scale of the units to report [default: the one of the last reproduce run "
    "in DIRECTORY].",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=None,
    help="Seeds per experiment [default: as in the last reproduce run].",
)
def report_command(directory, scale, seeds):
    """Rebuild DIRECTORY/report.md and its figures from stored results.

    Runs nothing: units that are not stored show as missing, and claims without
    data get the verdict "no data".
    """
    from .report import build_report

    try:
        path = build_report(directory, scale=scale, seeds=seeds)
    except (ValueError, CorruptResultError) as error:
        raise click.UsageError(str(error)) from error
    click.echo(f"report written to {path}")
