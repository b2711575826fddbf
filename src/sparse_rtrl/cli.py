"""Command-line interface: ``sparse-rtrl``."""

from __future__ import annotations

import logging
import os
import sys

import click

from ._bench import bench_command
from ._cli_config import config_from_options, config_options
from .experiments import (
    AdaptationConfig,
    BCIConfig,
    format_bci_table,
    format_table,
    run_adaptation,
    run_bci,
)


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


main.add_command(bench_command)


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
    click.echo(f"results written to {out}")
    _report_failures(summary)


def _report_failures(summary) -> None:
    failures = [
        failure for row in summary["learners"].values() for failure in row["failures"]
    ]
    for failure in failures:
        click.echo(f"failed: {failure['error']}", err=True)
    if failures:
        sys.exit(1)


@run.command("bci")
@config_options(BCIConfig)
@click.option(
    "--synthetic",
    "synthetic",
    is_flag=True,
    help="Use two generated NWB sessions, session B drifted (the default source).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="results/bci",
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
def run_bci_command(synthetic, out, workers, quiet, **options):
    """Adapt a recurrent velocity decoder from session A to session B online.

    Sessions come from --session-a/--session-b files (NWB, or count and velocity
    matrices in .mat/.npz/.h5 under --counts-key/--velocity-key), from a demo
    recording (--source demo --demo chewie), or are generated (--synthetic, the
    default). Prints loss, recovery and R² of decoded velocity per learner and
    writes the adaptation outputs plus decoded_velocity.png into OUT.
    """
    if options.get("session_a") or options.get("session_b"):
        if synthetic:
            raise click.UsageError("--synthetic cannot be combined with session files")
        options["source"] = options.get("source") or "files"
    elif synthetic:
        options["source"] = "synthetic"
    try:
        config = config_from_options(BCIConfig, options)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    workers = _default_workers() if workers is None else workers
    try:
        summary = run_bci(config, out, workers=workers, progress=not quiet)
    except ValueError as error:
        # Data errors name the file and field; show them without a traceback.
        raise click.ClickException(str(error)) from error
    click.echo(f"data: {summary['data']['kind']} ({summary['data']['source']})")
    click.echo(format_bci_table(summary))
    click.echo(f"results written to {out}")
    _report_failures(summary)


from ._cli_reproduce import report_command, reproduce_command  # noqa: E402

main.add_command(reproduce_command)
main.add_command(report_command)


if __name__ == "__main__":
    main()
