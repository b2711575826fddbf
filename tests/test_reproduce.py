"""Verdict rules, failing units, the experiment configs and ``sparse-rtrl
reproduce`` end to end."""

import json
import math
from dataclasses import dataclass

import pytest
from click.testing import CliRunner

from sparse_rtrl.cli import main
from sparse_rtrl.experiments import (
    EXPERIMENTS,
    VERDICTS,
    AllIncrease,
    Estimate,
    Experiment,
    InRange,
    KSweepConfig,
    Less,
    Measurement,
    ResultStore,
    Similar,
    Step,
    Within,
    run_units,
)
from sparse_rtrl.experiments._backends import Job, execute_unit


def measured(*pairs, count=5, spread="std"):
    return Measurement(
        tuple(Estimate(f"e{i}", m, s, count, spread) for i, (m, s) in enumerate(pairs))
    )


NAN = math.nan


@pytest.mark.parametrize(
    "rule,measurement,expected",
    [
        # within: |published − mean| ≤ max(2σ, margin); inconclusive if 2σ > 3 margin
        (Within(84, 10), measured((80, 3)), "consistent"),
        (Within(84, 10), measured((70, 3)), "not reproduced"),
        (Within(84, 10), measured((60, 12.5)), "consistent"),
        (Within(84, 10), measured((59, 12.4)), "not reproduced"),
        (Within(84, 10), measured((80, 16)), "inconclusive"),
        (Within(84, 10), measured((-230, 418)), "inconclusive"),
        (Within(84, 10, max_spread=50), measured((60, 20)), "consistent"),
        (Within(84, 0), measured((84, 0)), "consistent"),
        (Within(84, 10), measured((NAN, NAN)), "no data"),
        (Within(84, 10), Measurement(), "no data"),
        (Within(84, 10), measured((84, 1), count=0), "no data"),
        # range: mean ± 2σ/√seeds overlaps [low, high]
        (InRange(2.6, 6.5), measured((4.0, 0.1)), "consistent"),
        (InRange(2.6, 6.5), measured((7.0, 1.0)), "consistent"),
        (InRange(2.6, 6.5), measured((7.0, 0.3)), "not reproduced"),
        (InRange(2.6, 6.5), measured((7.0, 0.3), spread="se"), "consistent"),
        (InRange(2.6, 6.5), measured((1.0, 0.5)), "not reproduced"),
        (InRange(2.6, 6.5), measured((2746.0, 1489.0)), "not reproduced"),
        # step: R(k=0) near zero and R(k=1) above the midpoint
        (Step(10), measured((3, 4), (90, 5)), "consistent"),
        (Step(10), measured((3, 4), (50, 5)), "not reproduced"),
        (Step(10), measured((40, 4), (95, 5)), "not reproduced"),
        (Step(10), measured((90.5, 5), (90.3, 5.4)), "not reproduced"),
        (Step(10), measured((-15, 10), (80, 5)), "consistent"),
        (Step(10), measured((3, 20), (90, 5)), "inconclusive"),
        (Step(10), measured((3, 4), (NAN, NAN)), "no data"),
        # similar: max − min ≤ max(2σ_max, margin)
        (Similar(10), measured((80, 3), (84, 3), (76, 2)), "consistent"),
        (Similar(10), measured((80, 3), (95, 3)), "not reproduced"),
        (Similar(10), measured((80, 9), (95, 3)), "consistent"),
        (Similar(10), measured((80, 20), (95, 3)), "inconclusive"),
        # all increase: every mean > 2σ/√seeds; not reproduced when one is ≤ 0
        (AllIncrease(), measured((10, 5), (20, 5)), "consistent"),
        (AllIncrease(), measured((10, 5), (-1, 5)), "not reproduced"),
        (AllIncrease(), measured((10, 5), (0, 5)), "not reproduced"),
        (AllIncrease(), measured((4, 5)), "inconclusive"),
        (AllIncrease(), measured((10, 5), count=1), "no data"),
        # less: second − first > 2 √(σ₁² + σ₂²); not reproduced when ≤ 0
        (Less(), measured((13, 3), (88, 20), spread="se"), "consistent"),
        (Less(), measured((13, 30), (88, 30), spread="se"), "inconclusive"),
        (Less(), measured((88, 1), (13, 1)), "not reproduced"),
        (Less(), measured((55.5, 21.1), (27.7, 10.2), spread="se"), "not reproduced"),
    ],
)
def test_verdict_rules(rule, measurement, expected):
    assert rule.verdict(measurement) == expected


@pytest.mark.parametrize(
    "rule", [Within(84, 10), InRange(2.6, 6.5), Step(10), Similar(5), AllIncrease()]
)
def test_rules_describe_themselves(rule):
    text = rule.describe()
    assert "consistent when" in text


def test_rule_needs_enough_estimates():
    with pytest.raises(ValueError, match="needs 2 estimates"):
        Step(10).verdict(measured((1, 1)))


def test_measurement_text():
    measurement = Measurement((Estimate("", 84.04, 6.0, 5),), note="n=64, 5 seeds")
    assert measurement.text() == "84.0 ± 6.0% (n=64, 5 seeds)"
    cv = Estimate("exact", 88.0, 20.0, 5, "se")
    assert cv.text() == "exact: 88.0 ± 20.0% (SE)"
    assert Measurement().text() == "not run"


@dataclass
class FailConfig:
    fail_seed: int


def failing_unit(config: FailConfig, seed: int) -> list[dict]:
    if seed == config.fail_seed:
        raise FloatingPointError(f"loss diverged at seed {seed}")
    return [{"seed": seed, "status": "ok"}]


def wrong_return_unit(config, seed):
    return {"not": "a list"}


def _failing_experiment():
    return Experiment(
        name="failing",
        title="failing",
        description="seed 1 fails",
        configs=lambda scale: {"only": FailConfig(fail_seed=1)},
        run=failing_unit,
        summarize=lambda results: {},
    )


def test_failing_unit_does_not_stop_the_rest(tmp_path):
    experiment = _failing_experiment()
    units = experiment.units("tiny", seeds=4)
    outcome = run_units(units, {"failing": experiment}, tmp_path, progress=False)
    assert outcome.ran == {"failing": 4}
    assert [(f[0], f[2]) for f in outcome.failed] == [("failing", 1)]
    assert "loss diverged at seed 1" in outcome.failed[0][3]
    stored = {r["seed"]: r for r in ResultStore(tmp_path).records("failing")}
    assert sorted(stored) == [0, 1, 2, 3]
    assert stored[1]["status"] == "failed"
    assert "FloatingPointError" in stored[1]["error"]
    assert all(stored[s]["status"] == "ok" for s in (0, 2, 3))

    again = run_units(units, {"failing": experiment}, tmp_path, progress=False)
    assert again.skipped == 4
    assert again.ran == {}
    retried = run_units(
        units, {"failing": experiment}, tmp_path, progress=False, retry_failed=True
    )
    assert retried.ran == {"failing": 1}


def test_unit_returning_wrong_type_fails():
    result = execute_unit(Job(wrong_return_unit, None, 0), single_thread=False)
    assert result["status"] == "failed"
    assert "must return a list of dicts" in result["error"]


BUILTIN = (
    "k-sweep",
    "scaling",
    "selection",
    "spectra",
    "lorenz-stability",
    "error-density",
    "optimizer",
)


def test_builtin_experiments_registered():
    assert set(BUILTIN) <= set(EXPERIMENTS)
    for name in BUILTIN:
        experiment = EXPERIMENTS[name]
        assert experiment.claims, name
        for scale in ("tiny", "quick", "default"):
            for config in experiment.configs(scale).values():
                validate = getattr(config, "validate", None)
                if validate is not None:
                    validate()


def test_published_scale_settings():
    ksweep = EXPERIMENTS["k-sweep"].configs("default")
    assert set(ksweep) == {"teacher", "delay"}
    teacher = ksweep["teacher"]
    assert teacher.hidden_size == 64
    assert teacher.learners == (
        "frozen",
        *(f"sparse:k={k}" for k in (0, 1, 2, 4, 8, 16)),
        "exact",
    )
    sizes = [c.hidden_size for c in EXPERIMENTS["scaling"].configs("default").values()]
    assert sizes == [64, 128, 256]
    assert EXPERIMENTS["k-sweep"].seed_count("default") == 5


def test_experiment_name_validated():
    with pytest.raises(ValueError, match="lowercase letters, digits and hyphens"):
        Experiment(
            name="Bad Name",
            title="",
            description="",
            configs=lambda scale: {},
            run=failing_unit,
            summarize=lambda results: {},
        )


def test_config_runs_alone(tmp_path):
    config = KSweepConfig.for_scale("tiny")
    config.tasks = ("delay",)
    config.ks = (0, 4)
    summary = config.run(tmp_path, seeds=1, progress=False)
    learners = summary["conditions"]["delay"]["learners"]
    assert list(learners) == ["frozen", "sparse:k=0", "sparse:k=4", "exact"]
    assert learners["exact"]["recovery_mean"] == pytest.approx(100.0)
    assert learners["frozen"]["recovery_mean"] == pytest.approx(0.0)
    assert len(ResultStore(tmp_path).records("k-sweep")) == 1


def _invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_reproduce_tiny_subset(tmp_path):
    out = tmp_path / "out"
    args = ["reproduce", "--tiny", "--only", "k-sweep,lorenz-stability"]
    args += ["--out", str(out), "--workers", "1", "--quiet"]
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    assert "6 runs done, 0 reused, 0 failed" in result.output
    report = (out / "report.md").read_text()
    assert "| claim | published | measured | verdict |" in report
    command = (
        f"sparse-rtrl reproduce --tiny --only k-sweep,lorenz-stability --out {out}"
    )
    assert f"- Command: `{command} --workers 1 --backend local`" in report
    assert (out / "k-sweep.png").stat().st_size > 0
    assert (out / "lorenz-stability.png").stat().st_size > 0
    assert not (out / "scaling.png").exists()
    manifest = json.loads((out / "reproduce.json").read_text())
    assert manifest["scale"] == "tiny"
    assert manifest["only"] == ["k-sweep", "lorenz-stability"]

    again = _invoke(args)
    assert again.exit_code == 0, again.output
    assert "0 runs done, 6 reused, 0 failed" in again.output

    (out / "report.md").unlink()
    rebuilt = _invoke(["report", str(out)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (out / "report.md").read_text().count("| **no data**") >= 4


def test_reproduce_rejects_unknown_experiment(tmp_path):
    result = CliRunner().invoke(
        main, ["reproduce", "--tiny", "--only", "nope", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "experiment must be one of" in result.output


def test_reproduce_address_needs_ray(tmp_path):
    result = CliRunner().invoke(
        main, ["reproduce", "--tiny", "--address", "auto", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "--address needs --backend ray" in result.output


@pytest.mark.slow
def test_reproduce_tiny_everything(tmp_path):
    out = tmp_path / "out"
    result = _invoke(["reproduce", "--tiny", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    for name in BUILTIN:
        assert (out / f"{name}.png").stat().st_size > 0, name
    report = (out / "report.md").read_text()
    for name in EXPERIMENTS:
        assert f"experiment `{name}`" in report
    summary = json.loads((out / "summary.json").read_text())
    verdicts = {row["key"]: row["verdict"] for row in summary["claims"]}
    assert "k4-n64" in verdicts
    assert set(verdicts.values()) <= set(VERDICTS)
