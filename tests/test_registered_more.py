"""The lstm, transformer, bci and baselines experiments in ``sparse-rtrl
reproduce``, and the ``sparse-rtrl run lstm|transformer|baselines`` commands."""

import json
import math
from dataclasses import replace

import pytest
from click.testing import CliRunner

from sparse_rtrl.cli import main
from sparse_rtrl.data import default_primate_dir
from sparse_rtrl.experiments import (
    EXPERIMENTS,
    PUBLISHED,
    SCALES,
    VERDICTS,
    ResultStore,
    reproduce,
)
from sparse_rtrl.experiments._claims_more import describe_bci_data
from sparse_rtrl.experiments._lstm import LSTM_LEARNERS

MORE = ("lstm", "transformer", "bci", "baselines")
HAS_DEMO = (default_primate_dir() / "chewie_demo.mat").exists()


def run_tiny(out, name, seeds=None):
    outcome = reproduce(
        out, names=[name], scale="tiny", seeds=seeds, workers=1, progress=False
    )
    summary = json.loads((out / "summary.json").read_text())
    claims = {row["key"]: row for row in summary["claims"]}
    return outcome, summary["experiments"][name], claims, outcome.report.read_text()


def claim(name, key):
    return next(c for c in EXPERIMENTS[name].claims if c.key == key)


def verdict(name, key, summary):
    found = claim(name, key)
    return found.rule.verdict(found.measure(summary))


# Registration and settings


def test_more_experiments_registered():
    for name in MORE:
        assert name in EXPERIMENTS
    keys = {name: {c.key for c in EXPERIMENTS[name].claims} for name in MORE}
    assert keys["lstm"] == {"lstm-k4"}
    assert keys["transformer"] == {"transformer-heads/half", "transformer-heads/third"}
    assert keys["bci"] == {"neural-drift-k4", "neural-drift-k0"}
    assert keys["baselines"] == set()
    published = {key for key, _, _ in PUBLISHED}
    for name in MORE:
        for key in keys[name]:
            assert key.split("/")[0] in published, key


@pytest.mark.parametrize("name", MORE)
@pytest.mark.parametrize("scale", SCALES)
def test_more_configs_validate(name, scale):
    configs = EXPERIMENTS[name].configs(scale)
    assert configs
    for config in configs.values():
        if name == "bci" and scale == "default":
            # 0 adapts over all of session B, resolved inside the unit.
            assert config.adapt_steps == 0
            config = replace(config, adapt_steps=1)
        config.validate()


def test_more_published_scale_settings():
    (lstm,) = EXPERIMENTS["lstm"].configs("default").values()
    assert lstm.cell == "lstm"
    assert lstm.hidden_size == 32
    assert lstm.learners == LSTM_LEARNERS
    assert lstm.adapt_steps == 2000

    (transformer,) = EXPERIMENTS["transformer"].configs("default").values()
    assert transformer.fractions == ("1", "1/2", "1/3", "1/4")
    assert transformer.frozen

    bci = EXPERIMENTS["bci"].configs("default")
    assert {label: c.dtype for label, c in bci.items()} == {
        "float32": "float32",
        "float64": "float64",
    }
    for config in bci.values():
        assert config.optimizer == "adam"
        assert config.drift
        assert config.source == ("demo" if HAS_DEMO else "synthetic")

    baselines = EXPERIMENTS["baselines"].configs("default")
    assert list(baselines) == ["n=64", "n=256"]
    assert baselines["n=64"].adapt_steps == (2000,)
    assert baselines["n=256"].adapt_steps == (500,)
    assert baselines["n=256"].alignment_steps == (100,)
    assert "tbptt" in baselines["n=64"].learners


def test_bci_source_follows_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSE_RTRL_PRIMATE_DIR", str(tmp_path))
    for config in EXPERIMENTS["bci"].configs("tiny").values():
        assert config.source == "synthetic"
    (tmp_path / "chewie_demo.mat").write_bytes(b"")
    for config in EXPERIMENTS["bci"].configs("tiny").values():
        assert config.source == "demo"


# Claim measurements on hand-made summaries


def transformer_summary(half, third):
    def row(values):
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        return {
            "recovery": values,
            "recovery_mean": mean,
            "recovery_std": std,
            "recovery_count": len(values),
        }

    learners = {"heads=1/2": row(half), "heads=1/3": row(third)}
    return {"conditions": {"teacher": {"learners": learners}}}


@pytest.mark.parametrize(
    "half,expected",
    [
        ([120.0, 130.0], "consistent"),  # +25 ± 7.1, standard error 5
        ([95.0, 99.0], "not reproduced"),
        ([90.0, 130.0], "inconclusive"),  # +10 ± 28.3
    ],
)
def test_transformer_half_claim(half, expected):
    summary = transformer_summary(half, [100.0, 102.0])
    assert verdict("transformer", "transformer-heads/half", summary) == expected


@pytest.mark.parametrize(
    "third,expected",
    [
        ([95.0, 101.0], "consistent"),
        ([60.0, 70.0], "not reproduced"),
        ([40.0, 140.0], "inconclusive"),
    ],
)
def test_transformer_third_claim(third, expected):
    summary = transformer_summary([120.0, 130.0], third)
    assert verdict("transformer", "transformer-heads/third", summary) == expected


def adaptation_summary(condition, learner, mean, std, count=5, **row):
    entry = {"recovery_mean": mean, "recovery_std": std, "recovery_count": count}
    return {"conditions": {condition: {"learners": {learner: entry}, **row}}}


def test_lstm_claim_reads_k4():
    summary = adaptation_summary("teacher", "sparse:k=4", 95.0, 4.0, hidden_size=32)
    measurement = claim("lstm", "lstm-k4").measure(summary)
    assert measurement.text() == "95.0 ± 4.0% (n=32 LSTM units, 64 state rows, 5 seeds)"
    assert verdict("lstm", "lstm-k4", summary) == "consistent"
    far = adaptation_summary("teacher", "sparse:k=4", 60.0, 4.0, hidden_size=32)
    assert verdict("lstm", "lstm-k4", far) == "not reproduced"


def test_bci_claims_read_their_condition():
    data = {"source": "synthetic", "demo": None, "drift": True}
    k4 = adaptation_summary("float32", "sparse:k=4", 75.0, 9.0, data=data)
    measurement = claim("bci", "neural-drift-k4").measure(k4)
    assert (
        measurement.text() == "75.0 ± 9.0% (synthetic + drift, Adam float32, 5 seeds)"
    )
    assert verdict("bci", "neural-drift-k4", k4) == "consistent"
    # The k=0 claim reads the float64 condition only.
    assert verdict("bci", "neural-drift-k0", k4) == "no data"
    k0 = adaptation_summary("float64", "sparse:k=0", 97.0, 2.0)
    assert verdict("bci", "neural-drift-k0", k0) == "consistent"


def test_describe_bci_data():
    demo = {
        "source": "demo",
        "demo": "chewie",
        "drift": True,
        "channels": 71,
        "bins_a": 1200,
        "bins_b": 1200,
        "adapt_steps": 500,
    }
    assert describe_bci_data(demo) == (
        "Data: the Chewie demo recording, 71 channels; session A 1200 bins, "
        "session B (session A with simulated drift) 1200 bins, of which 500 adapt."
    )
    synthetic = {**demo, "source": "synthetic", "demo": None, "drift": False}
    assert describe_bci_data(synthetic).startswith("Data: synthetic sessions, 71")
    assert "a second, undrifted session" in describe_bci_data(synthetic)
    assert describe_bci_data(None) == "Data: no stored run."


# Tiny reproduce runs through the registry


def test_lstm_reproduce_tiny(tmp_path):
    outcome, summary, claims, report = run_tiny(tmp_path, "lstm")
    assert outcome.ok
    assert outcome.ran == {"lstm": 2}
    learners = summary["conditions"]["teacher"]["learners"]
    assert list(learners) == list(LSTM_LEARNERS)
    assert learners["exact"]["recovery_mean"] == pytest.approx(100.0)
    assert learners["frozen"]["recovery_mean"] == pytest.approx(0.0)
    assert claims["lstm-k4"]["experiment"] == "lstm"
    assert claims["lstm-k4"]["verdict"] in set(VERDICTS) - {"no data"}
    assert "(n=8 LSTM units, 16 state rows, 2 seeds)" in claims["lstm-k4"]["measured"]
    assert "Stored units: 2 of 2 (0 failed), experiment `lstm`." in report
    assert "![lstm](lstm.png)" in report
    assert (tmp_path / "lstm.png").stat().st_size > 0

    again = reproduce(tmp_path, names=["lstm"], scale="tiny", progress=False)
    assert again.skipped == 2
    assert again.ran == {}


def test_transformer_reproduce_tiny(tmp_path):
    outcome, summary, claims, report = run_tiny(tmp_path, "transformer")
    assert outcome.ok
    row = summary["conditions"]["teacher"]
    labels = ["heads=1", "heads=1/2", "heads=1/3", "heads=1/4", "frozen"]
    assert list(row["learners"]) == labels
    assert row["learners"]["heads=1"]["recovery_mean"] == pytest.approx(100.0)
    assert set(row["heads"]) == {"0", "1"}
    for key in ("transformer-heads/half", "transformer-heads/third"):
        assert claims[key]["verdict"] in set(VERDICTS) - {"no data"}, key
    assert "recovery − 100 at 1/2" in claims["transformer-heads/half"]["measured"]
    assert "Per-head analysis of the dense run (2 seeds)" in report
    assert "| layer | h0 | h1 |" in report
    assert (tmp_path / "transformer.png").stat().st_size > 0
    # Per-run records are cached beside the units: 5 runs × 2 seeds.
    assert len(ResultStore(tmp_path / "cache").records("transformer")) == 10


def test_bci_reproduce_synthetic_without_demo(tmp_path, monkeypatch):
    empty = tmp_path / "primate"
    empty.mkdir()
    monkeypatch.setenv("SPARSE_RTRL_PRIMATE_DIR", str(empty))
    outcome, summary, claims, report = run_tiny(tmp_path / "out", "bci", seeds=1)
    assert outcome.ok
    assert outcome.ran == {"bci": 2}
    assert summary["data"]["source"] == "synthetic"
    assert summary["data"]["adapt_steps"] == 30
    assert "Data: synthetic sessions, 64 channels" in report
    for key, condition in (
        ("neural-drift-k4", "float32"),
        ("neural-drift-k0", "float64"),
    ):
        assert (
            f"(synthetic + drift, Adam {condition}, 1 seed)" in claims[key]["measured"]
        )
        assert claims[key]["verdict"] != "no data"
    for condition in ("float32", "float64"):
        row = summary["conditions"][condition]
        assert row["dtype"] == condition
        assert math.isfinite(row["learners"]["sparse:k=4"]["r2_mean"])
    units = ResultStore(tmp_path / "out").records("bci")
    assert {unit["config"]["source"] for unit in units} == {"synthetic"}
    assert all("predictions" not in r for u in units for r in u["records"])


@pytest.mark.skipif(not HAS_DEMO, reason="the Chewie demo recording is not present")
def test_bci_reproduce_on_chewie(tmp_path):
    outcome, summary, claims, report = run_tiny(tmp_path, "bci", seeds=1)
    assert outcome.ok
    assert summary["data"]["source"] == "demo"
    assert "Data: the Chewie demo recording, 71 channels" in report
    assert (
        "(Chewie + drift, Adam float32, 1 seed)"
        in claims["neural-drift-k4"]["measured"]
    )


def test_baselines_reproduce_tiny(tmp_path):
    outcome, summary, claims, report = run_tiny(tmp_path, "baselines", seeds=1)
    assert outcome.ok
    assert outcome.ran == {"baselines": 2}
    assert list(summary["sizes"]) == ["8", "16"]
    for size, rows in summary["sizes"].items():
        assert rows["exact"]["recovery_mean"] == pytest.approx(100.0), size
        assert rows["exact"]["mean_cosine"] == pytest.approx(1.0), size
        assert rows["exact"]["trace_bytes"] > rows["snap1"]["trace_bytes"] > 0, size
        assert "tbptt" in rows
        assert f"n = {size}\n\n| learner | loss | recovery % |" in report
    assert "| rflo:feedback=random |" in report
    assert all(row["experiment"] != "baselines" for row in claims.values())


@pytest.mark.slow
def test_reproduce_tiny_more_through_cli(tmp_path):
    args = ["reproduce", "--tiny", "--only", ",".join(MORE)]
    args += ["--out", str(tmp_path), "--workers", "2", "--quiet"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "12 runs done, 0 reused, 0 failed" in result.output
    report = (tmp_path / "report.md").read_text()
    for name in MORE:
        assert f"experiment `{name}`" in report


# sparse-rtrl run lstm|transformer|baselines


def invoke(args):
    return CliRunner().invoke(main, args)


LSTM_TINY = [
    "run", "lstm",
    "--hidden-size", "4",
    "--seeds", "2",
    "--pretrain-iterations", "2",
    "--pretrain-window", "10",
    "--pretrain-batch", "2",
    "--warmup-steps", "5",
    "--adapt-steps", "20",
    "--workers", "1",
    "--quiet",
]  # fmt: skip


def test_run_lstm_command(tmp_path):
    result = invoke([*LSTM_TINY, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "sparse:k=4" in result.output
    assert "recovery" in result.output
    for name in ("config.json", "summary.json", "curves.npz", "adaptation.png"):
        assert (tmp_path / name).is_file(), name
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["cell"] == "lstm"
    assert config["hidden_size"] == 4
    assert len(list((tmp_path / "runs" / "lstm").glob("*.json"))) == 10


def test_run_lstm_quick_preset_and_overrides(tmp_path):
    args = ["run", "lstm", "--quick", "--hidden-size", "4", "--seeds", "1"]
    args += ["--pretrain-iterations", "1", "--warmup-steps", "2"]
    args += ["--adapt-steps", "5", "--learner", "frozen", "--learner", "exact"]
    result = invoke([*args, "--workers", "1", "--quiet", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "config.json").read_text())
    # From the preset, not the class defaults (100 and 32).
    assert config["pretrain_window"] == 60
    assert config["pretrain_batch"] == 16
    # From the command line, over the preset.
    assert config["hidden_size"] == 4
    assert config["adapt_steps"] == 5


def test_run_lstm_rejects_invalid_k(tmp_path):
    result = invoke(["run", "lstm", "--k", "70", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "k must be in [0, 64]; got k=70" in result.output


TRANSFORMER_TINY = [
    "run", "transformer",
    "--width", "8",
    "--heads", "4",
    "--layers", "1",
    "--context", "6",
    "--fraction", "1",
    "--fraction", "1/2",
    "--fraction", "1/4",
    "--seeds", "2",
    "--pretrain-iterations", "3",
    "--pretrain-batch", "4",
    "--warmup-steps", "5",
    "--adapt-steps", "12",
    "--analysis-every", "5",
    "--quiet",
]  # fmt: skip


def test_run_transformer_command(tmp_path):
    result = invoke([*TRANSFORMER_TINY, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "heads=1/2" in result.output
    assert "frozen" in result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["learners"]) == ["heads=1", "heads=1/2", "heads=1/4", "frozen"]
    assert summary["config"]["fractions"] == ["1", "1/2", "1/4"]
    assert set(summary["heads"]) == {"0", "1"}


def test_run_transformer_rejects_fraction_without_heads(tmp_path):
    args = ["run", "transformer", "--width", "8", "--heads", "4"]
    result = invoke([*args, "--fraction", "1/8", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "keeps no head of 4 heads" in result.output


BASELINES_TINY = [
    "run", "baselines",
    "--size", "6",
    "--adapt-step", "20",
    "--alignment-step", "8",
    "--learner", "frozen",
    "--learner", "sparse:k=0",
    "--learner", "exact",
    "--learner", "snap1",
    "--seeds", "2",
    "--warmup-steps", "5",
    "--pretrain-iterations", "3",
    "--pretrain-window", "10",
    "--pretrain-batch", "4",
    "--workers", "1",
    "--quiet",
]  # fmt: skip


def test_run_baselines_command(tmp_path):
    result = invoke([*BASELINES_TINY, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "n = 6" in result.output
    assert "| snap1 |" in result.output
    table = (tmp_path / "baselines.md").read_text()
    assert "| cosine to exact |" in table
    saved = json.loads((tmp_path / "baselines.json").read_text())
    assert list(saved["sizes"]["6"]) == ["frozen", "sparse:k=0", "exact", "snap1"]


def test_run_baselines_needs_steps_per_size(tmp_path):
    args = ["run", "baselines", "--size", "6", "--size", "8", "--adapt-step", "20"]
    result = invoke([*args, "--alignment-step", "4", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "adapt_steps must have one entry per size (2); got 1" in result.output


def test_run_baselines_exits_1_on_failed_run(tmp_path, monkeypatch):
    def failed_run(config, out, workers, progress):
        row = {"failures": [{"seed": 0, "error": "learner uoro, seed 0: NaN"}]}
        return {"sizes": {"6": {"uoro": row}}}

    monkeypatch.setattr("sparse_rtrl.cli.run_baselines", failed_run)
    monkeypatch.setattr("sparse_rtrl.cli.format_baselines_table", lambda result: "")
    result = invoke([*BASELINES_TINY, "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "failed: learner uoro, seed 0: NaN" in result.output


@pytest.mark.parametrize(
    "command,flags",
    [
        (
            "lstm",
            ("--hidden-size", "--k", "--learner", "--quick", "--out", "--workers"),
        ),
        ("transformer", ("--fraction", "--heads", "--width", "--quick", "--out")),
        ("baselines", ("--size", "--adapt-step", "--alignment-step", "--workers")),
    ],
)
def test_run_command_help(command, flags):
    result = invoke(["run", command, "--help"])
    assert result.exit_code == 0
    for flag in flags:
        assert flag in result.output, flag
    assert "[default:" in result.output
