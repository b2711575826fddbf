"""Command-line interface: ``sparse-rtrl``."""

from __future__ import annotations

import logging
import os
import sys

import click

from ._cli_config import config_from_options, config_options
from .experiments import AdaptationConfig, format_table, run_adaptation


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    help="Logging verbosity.",
)
@click.version_option(package_name="sparse-rtrl")
def main(log_level: str) -> None:
    """Online learning of recurrent networks with sparse RTRL."""
    _setup_logging(log_level)


@main.group()
def run() -> None:
    """Run one experiment and write its results."""


def _default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


@run.command("adaptation")
@config_options(AdaptationConfig)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="results/adaptation",
    show_default=True,
    help="Output directory; finished runs found there are reused.",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Parallel processes, one seed each [default: min(2, CPU count)].",
)
@click.option("--quiet", is_flag=True, help="Hide progress bars.")
def run_adaptation_command(out, workers, quiet, **options):
    """Pretrain on regime A, switch to regime B, and adapt online with each learner.

    Prints the table of mean adaptation loss and recovery per learner, and writes
    config.json, summary.json, curves.npz, adaptation.png and one file per run into
    OUT.
    """
    try:
        config = config_from_options(AdaptationConfig, options)
        config.validate()
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    workers = _default_workers() if workers is None else workers
    summary = run_adaptation(config, out, workers=workers, progress=not quiet)
    click.echo(format_table(summary))
    failures = [
        failure for row in summary["learners"].values() for failure in row["failures"]
    ]
    for failure in failures:
        click.echo(f"failed: {failure['error']}", err=True)
    click.echo(f"results written to {out}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
