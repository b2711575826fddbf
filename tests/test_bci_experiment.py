"""End-to-end runs of the ``bci`` experiment at small size."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from sparse_rtrl.cli import main
from sparse_rtrl.data import default_primate_dir
from sparse_rtrl.experiments import r_squared

SMALL = [
    "--hidden-size", "8",
    "--seeds", "2",
    "--pretrain-iterations", "3",
    "--pretrain-batch", "2",
    "--warmup-steps", "5",
    "--adapt-steps", "40",
    "--workers", "1",
    "--quiet",
]  # fmt: skip


def test_r_squared_hand_values():
    target = np.array([[1.0, 0.0], [-1.0, 2.0], [0.0, -2.0]])
    assert r_squared(target, target) == 1.0
    assert r_squared(np.zeros_like(target) + target.mean(0), target) == 0.0
    # Residual 3 (1 + 1 + 1) over a total of 2 + 8 = 10.
    shifted = target + np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert r_squared(shifted, target) == pytest.approx(0.7)


def test_bci_synthetic_writes_results(tmp_path):
    result = CliRunner().invoke(
        main, ["run", "bci", "--synthetic", *SMALL, "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "data: synthetic" in result.output
    for name in (
        "summary.json",
        "config.json",
        "adaptation.png",
        "decoded_velocity.png",
    ):
        assert (tmp_path / name).is_file(), name
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["data"]["kind"] == "synthetic"
    row = summary["learners"]["sparse:k=4"]
    assert len(row["r2"]) == 2
    assert all(np.isfinite(row["r2"]))


def test_bci_missing_file_names_it(tmp_path):
    missing = tmp_path / "nope.nwb"
    result = CliRunner().invoke(
        main,
        [
            "run", "bci", *SMALL,
            "--session-a", str(missing),
            "--session-b", str(missing),
            "--out", str(tmp_path / "out"),
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert str(missing) in result.output
    assert "Traceback" not in result.output


def test_bci_on_matrix_files(tmp_path):
    rng = np.random.default_rng(0)
    velocity = rng.normal(size=(300, 2))
    for name, gain in (("a", 1.0), ("b", 1.5)):
        counts = rng.poisson(np.exp(0.5 + gain * velocity @ rng.normal(size=(2, 10))))
        np.savez(tmp_path / f"{name}.npz", counts=counts, velocity=velocity)
    result = CliRunner().invoke(
        main,
        [
            "run", "bci", *SMALL,
            "--session-a", str(tmp_path / "a.npz"),
            "--session-b", str(tmp_path / "b.npz"),
            "--out", str(tmp_path / "out"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["data"]["channels"] == 10


@pytest.mark.skipif(
    not (default_primate_dir() / "chewie_demo.mat").exists(),
    reason="the Chewie demo recording is not present",
)
@pytest.mark.parametrize("drift", ["--drift", "--no-drift"])
def test_bci_on_chewie_demo(tmp_path, drift):
    result = CliRunner().invoke(
        main,
        ["run", "bci", "--source", "demo", drift, *SMALL, "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["data"]["channels"] == 71
    assert summary["data"]["bins_b"] == (1200 if drift == "--drift" else 1818)
