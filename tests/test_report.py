"""``report.md`` built from synthetic stored records."""

import json
from dataclasses import dataclass

import pytest
import torch

from sparse_rtrl.experiments import (
    EXPERIMENTS,
    Claim,
    Estimate,
    Experiment,
    Measurement,
    ResultStore,
    Within,
)
from sparse_rtrl.experiments._reproduce import machine_info, write_manifest
from sparse_rtrl.report import build_report

# Per-seed adaptation losses; frozen 2.0 and exact 1.0 make recovery 100 (2 − L).
LOSSES = {
    "frozen": [2.0, 2.0],
    "sparse:k=0": [1.95, 1.95],
    "sparse:k=1": [1.2, 1.2],
    "sparse:k=2": [1.15, 1.15],
    "sparse:k=4": [1.2, 1.12],
    "exact": [1.0, 1.0],
}


def store_units(out, experiment, records_for, scale="tiny", status="ok"):
    store = ResultStore(out)
    for unit in experiment.units(scale):
        store.put(
            experiment.name,
            unit.key,
            {
                "experiment": experiment.name,
                "condition": unit.condition,
                "key": unit.key,
                "seed": unit.seed,
                "config": unit.config.__dict__ | {},
                "status": status,
                "error": None if status == "ok" else "Traceback\nValueError: boom",
                "records": records_for(unit),
            },
        )


def adaptation_records(unit):
    return [
        {
            "seed": unit.seed,
            "learner": learner,
            "status": "ok",
            "loss": losses[unit.seed],
            "final_loss": losses[unit.seed],
            "seconds_per_step": 1e-3,
            "curve": [losses[unit.seed]] * 40,
        }
        for learner, losses in LOSSES.items()
    ]


@pytest.fixture
def ksweep_dir(tmp_path):
    experiment = EXPERIMENTS["k-sweep"]
    store_units(tmp_path, experiment, adaptation_records)
    write_manifest(
        tmp_path,
        {
            "command": "sparse-rtrl reproduce --tiny",
            "scale": "tiny",
            "seeds": None,
            "backend": "local",
            "workers": 2,
            "machine": machine_info(),
            "started": "2026-01-01T00:00:00+00:00",
            "finished": "2026-01-01T00:01:00+00:00",
        },
    )
    return tmp_path


def test_report_header(ksweep_dir):
    text = build_report(ksweep_dir, experiments=[EXPERIMENTS["k-sweep"]]).read_text()
    assert "- Command: `sparse-rtrl reproduce --tiny`" in text
    assert f"torch {torch.__version__}" in text
    assert f"{machine_info()['cpu_count']} CPUs" in text
    assert "- Scale: `tiny`; seeds 0–1 (2 per experiment)" in text
    assert "started 2026-01-01T00:00:00+00:00" in text
    assert "- Backend: local; workers: 2" in text


def test_report_claims_from_records(ksweep_dir):
    path = build_report(ksweep_dir, experiments=[EXPERIMENTS["k-sweep"]])
    text = path.read_text()
    # Recovery of k=4: seeds 80% and 88%, mean 84, sample std 5.66.
    headline = (
        "| k=4 paths per unit of n=64 recovers most of exact RTRL [teacher task] "
        "| 84 ± 6% recovery | 84.0 ± 5.7% (n=8, 2 seeds) | **consistent** (within) |"
    )
    assert headline in text
    assert "k=0: 5.0 ± 0.0%; k=1: 80.0 ± 0.0% (teacher, 2 seeds)" in text
    assert "| **consistent** (step) |" in text
    assert "- within (margin 10): consistent when the published value lies" in text
    assert "![k-sweep](k-sweep.png)" in text
    assert (ksweep_dir / "k-sweep.png").stat().st_size > 0
    summary = json.loads((ksweep_dir / "summary.json").read_text())
    verdicts = {row["key"]: row["verdict"] for row in summary["claims"]}
    assert verdicts["k4-n64"] == "consistent"
    assert verdicts["transformer-heads"] == "no data"


def test_report_no_data_without_runs(tmp_path):
    text = build_report(tmp_path, scale="tiny").read_text()
    assert "| **consistent**" not in text
    assert "| **not reproduced**" not in text
    assert text.count("| **no data**") >= len(EXPERIMENTS)
    assert "Stored units: 0 of" in text


@dataclass
class ValueConfig:
    target: float


def never_run(config, seed):
    raise AssertionError("the report must not run units")


def _measure_value(summary):
    values = summary["values"]
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return Measurement((Estimate("", mean, std, len(values)),), unit="")


def _custom_experiment(published):
    return Experiment(
        name="custom",
        title="Custom experiment",
        description="A synthetic experiment.",
        configs=lambda scale: {"only": ValueConfig(1.0)},
        run=never_run,
        summarize=lambda results: {
            "values": [r["value"] for u in results["only"] for r in u["records"]]
        },
        claims=(
            Claim(
                "custom",
                "the value is near the published one",
                str(published),
                _measure_value,
                Within(published, 1.0),
            ),
        ),
        seeds={"tiny": 3, "quick": 3, "default": 3},
    )


@pytest.mark.parametrize(
    "published,verdict", [(10.0, "consistent"), (20.0, "not reproduced")]
)
def test_custom_experiment_verdict(tmp_path, published, verdict):
    experiment = _custom_experiment(published)
    store_units(
        tmp_path,
        experiment,
        lambda unit: [{"value": [9.0, 10.0, 11.0][unit.seed]}],
    )
    text = build_report(tmp_path, scale="tiny", experiments=[experiment]).read_text()
    assert f"| 10.0 ± 1.0 | **{verdict}** (within) |" in text
    assert "Stored units: 3 of 3 (0 failed), experiment `custom`." in text


def test_failed_units_listed(tmp_path):
    experiment = _custom_experiment(10.0)
    store_units(tmp_path, experiment, lambda unit: [], status="failed")
    text = build_report(tmp_path, scale="tiny", experiments=[experiment]).read_text()
    assert "(3 failed)" in text
    assert "- only, seed 0: ValueError: boom" in text
