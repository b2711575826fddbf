"""Gradient alignment of a learner against an exact RTRL shadow."""

import math
import warnings

import numpy as np
import pytest
import torch
from helpers import make_rnn_model, random_sequence

from sparse_rtrl.experiments._alignment import AlignmentResult, gradient_alignment
from sparse_rtrl.learners import (
    RFLO,
    EProp,
    ExactRTRL,
    ReadoutOnly,
    SnAp1,
    SparseRTRL,
    TruncatedBPTT,
)


def test_exact_aligns_with_itself():
    model = make_rnn_model(5, 2, 2, seed=0)
    x, y = random_sequence(20, 2, 2, seed=0)
    learner = ExactRTRL(model, torch.optim.Adam(model.parameters(), lr=1e-2))
    before = model.cell.weight_hh.detach().clone()
    result = gradient_alignment(learner, x, y)
    np.testing.assert_allclose(result.cosine, 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.norm_ratio, 1.0, rtol=0, atol=1e-12)
    assert result.mean_cosine == pytest.approx(1.0, abs=1e-12)
    assert result.median_norm_ratio == pytest.approx(1.0, abs=1e-12)
    # The learner's own optimizer still trains the shared model.
    assert not torch.equal(model.cell.weight_hh, before)


def test_sparse_with_all_paths_aligns_with_exact():
    model = make_rnn_model(6, 2, 1, seed=1)
    x, y = random_sequence(15, 2, 1, seed=1)
    result = gradient_alignment(SparseRTRL(model, k=6), x, y)
    np.testing.assert_allclose(result.cosine, 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.norm_ratio, 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "make_learner",
    [
        SnAp1,
        EProp,
        RFLO,
        lambda model: TruncatedBPTT(model, horizon=1),
    ],
)
def test_first_step_aligns_then_drifts(make_learner):
    # From fresh traces M_1 = I_1 for these learners, so only later steps differ.
    model = make_rnn_model(6, 2, 1, seed=2)
    x, y = random_sequence(12, 2, 1, seed=2)
    result = gradient_alignment(make_learner(model), x, y)
    assert result.cosine[0] == pytest.approx(1.0, abs=1e-12)
    assert result.norm_ratio[0] == pytest.approx(1.0, abs=1e-12)
    assert np.all(result.cosine[1:] < 1.0 - 1e-9)
    assert np.all(np.abs(result.cosine) <= 1.0 + 1e-12)


def test_readout_learner_has_no_alignment():
    model = make_rnn_model(4, 1, 1, seed=3)
    x, y = random_sequence(5, 1, 1, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = gradient_alignment(ReadoutOnly(model), x, y)
        summary = result.summary()
    assert np.all(np.isnan(result.cosine))
    assert np.all(np.isnan(result.norm_ratio))
    assert math.isnan(summary["mean_cosine"])
    assert math.isnan(summary["median_norm_ratio"])
    assert summary["valid_steps"] == 0
    assert summary["steps"] == 5


class ZeroGradient(ExactRTRL):
    """A learner whose cell gradient is always zero."""

    name = "zero"

    def _cell_gradient(self, grad_state):
        return torch.zeros(self.cell.num_params, dtype=self.dtype)


def test_zero_gradient_gives_nan_cosine_and_zero_ratio():
    model = make_rnn_model(4, 1, 1, seed=4)
    x, y = random_sequence(6, 1, 1, seed=4)
    result = gradient_alignment(ZeroGradient(model), x, y)
    assert np.all(np.isnan(result.cosine))
    np.testing.assert_array_equal(result.norm_ratio, 0.0)
    np.testing.assert_array_equal(result.learner_norm, 0.0)
    assert np.all(result.exact_norm > 0)


def test_masked_steps_are_skipped():
    model = make_rnn_model(4, 2, 1, seed=5)
    x, y = random_sequence(8, 2, 1, seed=5)
    mask = torch.tensor([0, 0, 1, 1, 0, 1, 1, 1], dtype=torch.bool)
    result = gradient_alignment(SnAp1(model), x, y, error_mask=mask)
    assert np.array_equal(np.isfinite(result.cosine), mask.numpy())
    assert result.summary()["valid_steps"] == 5


def test_alignment_matches_direct_cosine():
    model = make_rnn_model(5, 2, 2, seed=6)
    x, y = random_sequence(7, 2, 2, seed=6)
    result = gradient_alignment(EProp(model), x, y)

    exact, eprop = ExactRTRL(model), EProp(model)
    for learner in (exact, eprop):
        learner.shadow = True
        for xt, yt in zip(x, y):
            learner.step(xt, yt)
    a, b = exact.last_cell_gradient, eprop.last_cell_gradient
    expected = float(torch.dot(a, b) / (a.norm() * b.norm()))
    assert result.cosine[-1] == pytest.approx(expected, rel=1e-10)
    assert result.norm_ratio[-1] == pytest.approx(float(b.norm() / a.norm()))


def test_summary_ignores_nan_steps():
    result = AlignmentResult(
        cosine=np.array([np.nan, 0.5, 1.0]),
        norm_ratio=np.array([np.nan, 2.0, 4.0]),
        learner_norm=np.array([np.nan, 1.0, 1.0]),
        exact_norm=np.array([np.nan, 1.0, 1.0]),
    )
    assert result.mean_cosine == pytest.approx(0.75)
    assert result.median_norm_ratio == pytest.approx(3.0)
    assert result.summary()["valid_steps"] == 2


def test_alignment_rejects_mismatched_targets():
    model = make_rnn_model(4, 2, 1, seed=7)
    x, _ = random_sequence(5, 2, 1, seed=7)
    with pytest.raises(ValueError, match="targets must have shape"):
        gradient_alignment(SnAp1(model), x, torch.zeros(4, 1, dtype=torch.float64))
