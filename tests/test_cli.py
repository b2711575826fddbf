"""End-to-end runs of the command-line interface at small size."""

import json

import numpy as np
from click.testing import CliRunner
from helpers import SMALL_ADAPTATION_ARGS

from sparse_rtrl.cli import main

SMALL = [*SMALL_ADAPTATION_ARGS, "--workers", "1", "--quiet"]


def test_run_adaptation_writes_every_promised_file(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "adaptation", *SMALL, "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("config.json", "summary.json", "curves.npz", "adaptation.png"):
        assert (out / name).is_file(), name
    assert "recovery" in result.output
    assert "sparse:k=2" in result.output

    config = json.loads((out / "config.json").read_text())
    assert config["hidden_size"] == 6
    summary = json.loads((out / "summary.json").read_text())
    labels = ["frozen", "readout", "sparse:k=0", "sparse:k=2", "exact"]
    assert list(summary["learners"]) == labels
    for label in labels:
        row = summary["learners"][label]
        assert len(row["loss"]) == 2
        assert len(row["recovery"]) == 2
    assert summary["learners"]["exact"]["recovery_mean"] == 100.0
    assert summary["learners"]["frozen"]["recovery_mean"] == 0.0

    curves = np.load(out / "curves.npz")
    assert curves["exact"].shape == (2, 35)
    assert len(list((out / "runs" / "adaptation").glob("*.json"))) == 10


def test_rerun_reuses_finished_runs(tmp_path):
    out = tmp_path / "out"
    args = ["run", "adaptation", *SMALL, "--out", str(out)]
    assert CliRunner().invoke(main, args).exit_code == 0
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")}
    assert CliRunner().invoke(main, args).exit_code == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")} == stamps


def test_learner_and_task_options(tmp_path):
    args = [
        "run", "adaptation", *SMALL,
        "--learner", "frozen",
        "--learner", "sparse:k=1,selection=topk",
        "--learner", "exact",
        "--task-option", "switch_mix=0.9",
        "--dtype", "float64",
        "--optimizer", "sgd",
        "--out", str(tmp_path),
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "sparse:k=1,selection=topk" in summary["learners"]
    assert summary["config"]["task_options"] == {"switch_mix": 0.9}


def test_invalid_k_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(
        main, ["run", "adaptation", "--k", "70", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "k must be in [0, 64]; got k=70" in result.output


def test_help_explains_every_flag():
    result = CliRunner().invoke(main, ["run", "adaptation", "--help"])
    assert result.exit_code == 0
    for flag in ("--hidden-size", "--k", "--selection", "--seeds", "--optimizer"):
        assert flag in result.output
    for flag in ("--lr", "--dtype", "--adapt-steps", "--out", "--learner", "--task"):
        assert flag in result.output
