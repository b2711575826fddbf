"""Seeds run as one batch against the same seeds run one by one."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import SMALL_ADAPTATION_ARGS

from sparse_rtrl._validation import NonFiniteError
from sparse_rtrl.cli import main
from sparse_rtrl.experiments import _adaptation
from sparse_rtrl.experiments._adaptation import (
    AdaptationConfig,
    batchable,
    run_seeds,
)
from sparse_rtrl.experiments._learner_specs import LearnerSpec
from sparse_rtrl.learners._batched import BatchedRTRL

LEARNERS = ("frozen", "sparse:k=2", "sparse:k=3,rescale=true,decay=0.9", "exact")


def tiny_config(**changes) -> AdaptationConfig:
    config = AdaptationConfig(
        hidden_size=6,
        seeds=3,
        learners=LEARNERS,
        dtype="float64",
        pretrain_iterations=3,
        pretrain_batch=2,
        pretrain_window=10,
        warmup_steps=5,
        adapt_steps=30,
    )
    return dataclasses.replace(config, **changes)


def by_run(records):
    return {(r["seed"], r["learner"]): r for r in records}


def test_batched_seeds_match_seed_by_seed(tmp_path):
    single_config = tiny_config(record_predictions=True)
    single = by_run(run_seeds(single_config, tmp_path / "a", progress=False))
    config = tiny_config(batch_seeds=True, record_predictions=True)
    batched = by_run(run_seeds(config, tmp_path / "b", progress=False))
    assert batched.keys() == single.keys()
    assert len(batched) == 3 * len(LEARNERS)
    for run, record in batched.items():
        assert record["status"] == "ok"
        assert record["key"] == single[run]["key"]
        np.testing.assert_allclose(
            record["curve"], single[run]["curve"], rtol=1e-9, atol=1e-12
        )
        assert record["loss"] == pytest.approx(single[run]["loss"], rel=1e-9)
        if run[1] == "frozen":
            assert "batch" not in record
        else:
            assert record["batch"] == 3
        assert len(record["predictions"]) == 30
        np.testing.assert_allclose(
            record["predictions"], single[run]["predictions"], rtol=1e-9, atol=1e-12
        )


def test_batched_run_reuses_stored_runs(tmp_path, monkeypatch):
    run_seeds(tiny_config(), tmp_path, progress=False)

    def fail(*args, **kwargs):
        raise AssertionError("a stored run was computed again")

    monkeypatch.setattr(_adaptation, "_run_batch", fail)
    records = run_seeds(tiny_config(batch_seeds=True), tmp_path, progress=False)
    assert len(records) == 3 * len(LEARNERS)


def test_error_masks_split_batches(tmp_path, monkeypatch):
    streams = _adaptation.adaptation_streams

    def masked(config, task, seed):
        warmup, adapt = streams(config, task, seed)
        if seed == 1:
            mask = adapt.error_mask.clone()
            mask[::2] = False
            adapt = dataclasses.replace(adapt, error_mask=mask)
        return warmup, adapt

    monkeypatch.setattr(_adaptation, "adaptation_streams", masked)
    sizes = []
    run_batch = _adaptation._run_batch

    def record_size(config, spec, group, *args):
        sizes.append(len(group))
        return run_batch(config, spec, group, *args)

    monkeypatch.setattr(_adaptation, "_run_batch", record_size)
    config = tiny_config(batch_seeds=True, learners=("exact",))
    batched = by_run(run_seeds(config, tmp_path / "b", progress=False))
    assert sorted(sizes) == [1, 2]
    single = by_run(run_seeds(tiny_config(learners=("exact",)), tmp_path / "a"))
    for run, record in batched.items():
        np.testing.assert_allclose(
            record["curve"], single[run]["curve"], rtol=1e-9, atol=1e-12
        )


def test_failed_batch_reruns_seeds(tmp_path, monkeypatch):
    def blow_up(self, x, y, learn=True):
        raise NonFiniteError("batched: state became NaN or Inf at step 0")

    monkeypatch.setattr(BatchedRTRL, "step", blow_up)
    config = tiny_config(batch_seeds=True, learners=("sparse:k=2",))
    records = run_seeds(config, tmp_path, progress=False)
    assert len(records) == 3
    for record in records:
        assert record["status"] == "ok"
        assert "batch" not in record


def test_batchable_learners():
    config = tiny_config()
    assert batchable(config, LearnerSpec.parse("exact"))
    assert batchable(config, LearnerSpec.parse("sparse:k=2,selection=topk"))
    assert not batchable(config, LearnerSpec.parse("frozen"))
    assert not batchable(config, LearnerSpec.parse("uoro"))
    lstm = dataclasses.replace(config, cell="lstm")
    assert not batchable(lstm, LearnerSpec.parse("exact"))


def test_batch_seeds_rejects_other_cells():
    config = tiny_config(cell="lstm", batch_seeds=True)
    with pytest.raises(ValueError, match="batch_seeds runs tanh RNNs only"):
        config.validate()


def test_batch_seeds_cli_flag(tmp_path):
    out = tmp_path / "out"
    args = [
        "run",
        "adaptation",
        *SMALL_ADAPTATION_ARGS,
        "--workers",
        "2",
        "--batch-seeds",
        "--quiet",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["batch_seeds"] is True
    runs = [json.loads(p.read_text()) for p in (out / "runs").rglob("*.json")]
    batched = [r for r in runs if r.get("batch") == 2]
    assert {r["learner"] for r in batched} == {"sparse:k=0", "sparse:k=2", "exact"}
