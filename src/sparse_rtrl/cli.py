"""Command-line interface: ``sparse-rtrl``."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys

import click

from ._bench import bench_command
from ._cli_config import config_from_options, config_options
from .experiments import (
    AdaptationConfig,
    BaselinesConfig,
    BCIConfig,
    LSTMExperimentConfig,
    TransformerConfig,
    format_baselines_table,
    format_bci_table,
    format_table,
    format_transformer_table,
    preflight,
    run_adaptation,
    run_baselines,
    run_bci,
    run_lstm_experiment,
    run_transformer_experiment,
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


def _check_workers(workers: int | None) -> int:
    if workers is None:
        return _default_workers()
    if workers < 1:
        raise click.BadParameter(f"must be >= 1; got {workers}", param_hint="--workers")
    return workers


def _out_option(default: str):
    return click.option(
        "--out",
        type=click.Path(file_okay=False),
        default=default,
        show_default=True,
        help="Output directory; finished runs found there are reused.",
    )


_WORKERS_OPTION = click.option(
    "--workers",
    type=int,
    default=None,
    help="Parallel processes, one seed each [default: min(2, CPU count)].",
)
_QUIET_OPTION = click.option("--quiet", is_flag=True, help="Hide progress bars.")


@run.command("adaptation")
@config_options(AdaptationConfig)
@_out_option("results/adaptation")
@_WORKERS_OPTION
@_QUIET_OPTION
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
    workers = _check_workers(workers)
    try:
        preflight(config)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
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
@_out_option("results/bci")
@_WORKERS_OPTION
@_QUIET_OPTION
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
    workers = _check_workers(workers)
    try:
        summary = run_bci(config, out, workers=workers, progress=not quiet)
    except ValueError as error:
        # Data errors name the file and field; show them without a traceback.
        raise click.ClickException(str(error)) from error
    data = summary["data"]
    click.echo(f"data: {data['kind']} sessions from source {data['source']!r}")
    click.echo(format_bci_table(summary))
    click.echo(f"results written to {out}")
    _report_failures(summary)


def _preset(config) -> dict:
    """Return the CLI fields of a preset config, for ``config_from_options``."""
    return {
        item.name: getattr(config, item.name)
        for item in dataclasses.fields(config)
        if item.metadata.get("cli", True)
    }


@run.command("lstm")
@config_options(LSTMExperimentConfig)
@click.option(
    "--quick",
    is_flag=True,
    help="Start from the small preset (n = 16, 3 seeds, 200 BPTT steps, 100 "
    "regime-A and 800 regime-B steps); other options override it.",
)
@_out_option("results/lstm")
@_WORKERS_OPTION
@_QUIET_OPTION
def run_lstm_command(quick, out, workers, quiet, **options):
    """Adapt an LSTM online after the switch, with sparse RTRL at k = 0 and k = 4.

    The adaptation experiment with an LSTM cell: learners frozen, readout,
    sparse:k=0, sparse:k=4 (k paths into each of the 2n state rows) and exact RTRL
    by default. Prints mean adaptation loss and recovery per learner, and writes
    config.json, summary.json, curves.npz, adaptation.png and one file per run into
    OUT.
    """
    preset = _preset(LSTMExperimentConfig.quick()) if quick else {}
    try:
        config = config_from_options(LSTMExperimentConfig, options, **preset)
        preflight(config)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    workers = _check_workers(workers)
    summary = run_lstm_experiment(config, out, workers=workers, progress=not quiet)
    click.echo(format_table(summary))
    click.echo(f"results written to {out}")
    _report_failures(summary)


@run.command("transformer")
@config_options(TransformerConfig)
@click.option(
    "--quick",
    is_flag=True,
    help="Start from the small preset (3 seeds, 150 pretraining steps, 100 "
    "regime-A and 1000 regime-B steps); other options override it.",
)
@_out_option("results/transformer")
@_QUIET_OPTION
def run_transformer_command(quick, out, quiet, **options):
    """Adapt a causal transformer online, passing gradient through some heads only.

    Every --fraction (1, 1/2, 1/3 and 1/4 by default) adapts a copy of the
    pretrained model that keeps that fraction of each layer's heads in the
    backward pass. Prints loss and recovery per fraction, with heads=1 (every
    head) as 100% and the frozen model as 0%, and writes config.json,
    summary.json (with the per-head analysis of the dense run) and one file per
    run into OUT. Seeds run one after another in this process.
    """
    preset = _preset(TransformerConfig.quick()) if quick else {}
    try:
        config = config_from_options(TransformerConfig, options, **preset)
        config.validate()
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    summary = run_transformer_experiment(config, out, progress=not quiet)
    click.echo(format_transformer_table(summary))
    click.echo(f"results written to {out}")
    _report_failures(summary)


@run.command("baselines")
@config_options(BaselinesConfig)
@click.option(
    "--quick",
    is_flag=True,
    help="Start from the small preset (3 seeds, 500 and 150 regime-B steps at "
    "n = 64 and 256, 150 BPTT steps); other options override it.",
)
@_out_option("results/baselines")
@_WORKERS_OPTION
@_QUIET_OPTION
def run_baselines_command(quick, out, workers, quiet, **options):
    """Compare sparse RTRL with prior online learners at each hidden size.

    Give one --adapt-step and one --alignment-step per --size. Prints, per size
    and learner, adaptation loss, recovery, the cosine and norm ratio of its
    gradient to exact RTRL's, milliseconds per step and trace memory, and writes
    config.json, baselines.json, baselines.md and one file per run into OUT.
    """
    preset = _preset(BaselinesConfig.quick()) if quick else {}
    try:
        config = config_from_options(BaselinesConfig, options, **preset)
        config.validate()
        for index in range(len(config.sizes)):
            preflight(config.adaptation_config(index))
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    workers = _check_workers(workers)
    result = run_baselines(config, out, workers=workers, progress=not quiet)
    click.echo(format_baselines_table(result))
    click.echo(f"results written to {out}")
    _report_failures(
        {
            "learners": {
                f"n={size} {label}": row
                for size, rows in result["sizes"].items()
                for label, row in rows.items()
            }
        }
    )


from ._cli_reproduce import report_command, reproduce_command  # noqa: E402

main.add_command(reproduce_command)
main.add_command(report_command)


if __name__ == "__main__":
    main()
