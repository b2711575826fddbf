"""Metric functions against values worked out by hand."""

import math

import numpy as np
import pytest
import torch

from sparse_rtrl.experiments import (
    AdaptationConfig,
    coefficient_of_variation,
    condition_number,
    mean_std,
    recovery,
)
from sparse_rtrl.experiments._adaptation import pretrained_model
from sparse_rtrl.experiments._claims import (
    bootstrap_std,
    cv_estimate,
    evaluation_mask,
    paired_increase,
    recovery_estimate,
    restrict_to_task_mask,
    run_adaptation_unit,
)
from sparse_rtrl.experiments._spectra import cosine, singular_values
from sparse_rtrl.learners import Frozen
from sparse_rtrl.tasks import make_task


@pytest.mark.parametrize(
    "frozen,full,method,expected",
    [
        (2.0, 1.0, 1.5, 50.0),
        (2.0, 1.0, 1.0, 100.0),
        (2.0, 1.0, 2.0, 0.0),
        (2.0, 1.0, 0.8, 120.0),
        (2.0, 1.0, 2.5, -50.0),
        (0.5, 0.3, 0.332, 84.0),
    ],
)
def test_recovery_hand_values(frozen, full, method, expected):
    assert recovery(frozen, full, method) == pytest.approx(expected)


def test_recovery_undefined_without_gap():
    assert math.isnan(recovery(1.0, 1.0, 0.5))
    assert math.isnan(recovery(math.nan, 1.0, 0.5))


def test_mean_std_uses_sample_std():
    mean, std, count = mean_std([1.0, 2.0, 3.0, math.nan])
    assert mean == 2.0
    assert std == 1.0
    assert count == 3


def test_coefficient_of_variation_hand_value():
    # mean 2, sample std √2, so CV = √2 / 2.
    assert coefficient_of_variation([1.0, 3.0]) == pytest.approx(math.sqrt(2) / 2)
    assert math.isnan(coefficient_of_variation([1.0]))


def test_condition_number_hand_values():
    assert condition_number([4.0, 2.0, 0.5]) == 8.0
    assert condition_number([1.0, 0.0]) == math.inf


def test_condition_number_of_matrix():
    rotation = torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=torch.float64)
    matrix = rotation @ torch.diag(torch.tensor([3.0, 1.5], dtype=torch.float64))
    values = singular_values(matrix)
    assert values == pytest.approx([3.0, 1.5])
    assert condition_number(values) == pytest.approx(2.0)


def test_condition_number_of_wide_matrix():
    wide = torch.zeros(2, 5, dtype=torch.float64)
    wide[0, 0], wide[1, 3] = 5.0, 0.5
    assert condition_number(singular_values(wide)) == pytest.approx(10.0)


def test_cosine_hand_values():
    a = torch.tensor([1.0, 0.0])
    assert cosine(a, torch.tensor([2.0, 0.0])) == pytest.approx(1.0)
    assert cosine(a, torch.tensor([0.0, 3.0])) == pytest.approx(0.0)
    assert cosine(a, torch.tensor([-1.0, 1.0])) == pytest.approx(-math.sqrt(0.5))
    assert math.isnan(cosine(a, torch.zeros(2)))


def test_bootstrap_std_deterministic():
    values = [1.0, 2.0, 4.0, 8.0]
    first = bootstrap_std(values, np.mean)
    assert first == bootstrap_std(values, np.mean)
    assert first > 0
    assert bootstrap_std([3.0, 3.0, 3.0], np.mean) == 0.0
    assert math.isnan(bootstrap_std([1.0], np.mean))


def test_bootstrap_std_of_mean_near_analytic():
    values = np.random.default_rng(0).normal(size=200).tolist()
    expected = np.std(values, ddof=1) / math.sqrt(200)
    assert bootstrap_std(values, np.mean) == pytest.approx(expected, rel=0.1)


def _summary(rows):
    return {"conditions": rows}


def test_recovery_estimate_reads_summary():
    row = {
        "learners": {
            "sparse:k=4": {
                "recovery_mean": 84.0,
                "recovery_std": 6.0,
                "recovery_count": 5,
            }
        }
    }
    estimate = recovery_estimate(_summary({"teacher": row}), "teacher", "sparse:k=4")
    assert (estimate.mean, estimate.std, estimate.count) == (84.0, 6.0, 5)
    missing = recovery_estimate(_summary({}), "teacher", "sparse:k=4")
    assert missing.count == 0
    assert not missing.finite


def test_cv_estimate_in_percent():
    row = {"learners": {"exact": {"final_loss": [1.0, 3.0]}}}
    estimate = cv_estimate(_summary({"lorenz": row}), "lorenz", "exact")
    assert estimate.mean == pytest.approx(100 * math.sqrt(2) / 2)
    assert estimate.count == 2
    assert estimate.spread == "se"


def test_paired_increase_pairs_seeds():
    every = {"loss_by_seed": {"exact": {"0": 1.0, "1": 2.0, "2": 5.0}}}
    terminal = {"loss_by_seed": {"exact": {"0": 1.5, "1": 3.0}}}
    summary = _summary({"every": every, "terminal": terminal})
    estimate = paired_increase(summary, "every", "terminal", "exact")
    # Seeds 0 and 1 pair up, both +50%; seed 2 has no partner.
    assert estimate.mean == pytest.approx(50.0)
    assert estimate.std == pytest.approx(0.0)
    assert estimate.count == 2


def test_restrict_to_task_mask():
    curve = [9.0, 9.0, 1.0, 2.0, 3.0, 4.0]  # two warmup steps, four adaptation steps
    records = [{"status": "ok", "curve": curve, "loss": 2.5, "final_loss": 4.0}]
    mask = torch.tensor([False, True, False, True])
    (record,) = restrict_to_task_mask(records, mask, warmup_steps=2)
    assert record["loss"] == pytest.approx(3.0)
    assert record["final_loss"] == pytest.approx(4.0)
    assert record["loss_all_steps"] == 2.5
    unchanged = restrict_to_task_mask([dict(records[0])], None, 2)
    assert unchanged[0]["loss"] == 3.0


def _tiny(task, **fields):
    return AdaptationConfig(
        task=task,
        hidden_size=6,
        pretrain_iterations=2,
        pretrain_window=10,
        pretrain_batch=2,
        warmup_steps=5,
        adapt_steps=25,
        **fields,
    )


def test_evaluation_mask_follows_run_seed_streams(tmp_path):
    """The streams drawn again for the mask are the ones run_seed fed the learners."""
    config = _tiny("delay", learners=("frozen",), task_options={"delay": 3})
    seed = 1
    (record,) = run_adaptation_unit(config, seed, cache_dir=str(tmp_path))

    task = make_task("delay", delay=3)
    model = pretrained_model(config, task, seed, tmp_path / "pretrained")
    data = torch.Generator().manual_seed(20_000 + seed)
    warmup = task.sample("A", config.warmup_steps, data).to(torch.float32)
    adapt = task.sample("B", config.adapt_steps, data).to(torch.float32)
    learner = Frozen(model)
    losses = [
        learner.step(x, y).item()
        for stream in (warmup, adapt)
        for x, y in zip(stream.inputs, stream.targets)
    ]
    np.testing.assert_allclose(record["curve"], losses, rtol=1e-6)

    mask = evaluation_mask(config, seed)
    assert torch.equal(mask, adapt.error_mask)
    expected = np.asarray(losses[config.warmup_steps :])[mask.numpy()].mean()
    assert record["loss"] == pytest.approx(expected, rel=1e-6)


def test_evaluation_mask_none_for_dense_task():
    assert evaluation_mask(_tiny("teacher"), 0) is None
