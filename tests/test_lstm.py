"""The LSTM cell: its derivatives, RTRL on it, and the LSTM experiment."""

import json

import pytest
import torch
from helpers import bptt_gradients, online_gradients, random_sequence

from sparse_rtrl.cells import CELLS, LSTMCell
from sparse_rtrl.experiments._lstm import LSTMExperimentConfig, run_lstm_experiment
from sparse_rtrl.learners import ExactRTRL, RecurrentModel, SparseRTRL
from sparse_rtrl.paths import SELECTIONS


def make_lstm_model(n, m, d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    cell = LSTMCell(m, n, gain=1.2, generator=g, dtype=dtype)
    with torch.no_grad():
        cell.bias.add_(0.3 * torch.randn(4 * n, generator=g, dtype=torch.float64))
    return RecurrentModel(cell, d, generator=g)


def dense_immediate(cell, immediate):
    dense = torch.zeros(cell.state_size, cell.num_params, dtype=immediate.dtype)
    return dense.scatter_add_(1, cell.immediate_index, immediate)


def autograd_immediate(cell, state, x):
    """(S, P) ∂s_t/∂θ with s_{t-1} held fixed, by autograd."""
    names = [name for name, _ in cell.named_parameters()]
    values = tuple(p.detach() for p in cell.parameters())

    def step(*params):
        return torch.func.functional_call(cell, dict(zip(names, params)), (state, x))

    pieces = torch.autograd.functional.jacobian(step, values)
    return torch.cat([p.reshape(cell.state_size, -1) for p in pieces], dim=1)


@pytest.mark.parametrize("n,m", [(1, 1), (3, 2), (6, 4)])
def test_lstm_derivatives_match_autograd(n, m):
    model = make_lstm_model(n, m, 1, seed=n)
    cell = model.cell
    g = torch.Generator().manual_seed(5)
    state = torch.randn(2 * n, generator=g, dtype=torch.float64)
    x = torch.randn(m, generator=g, dtype=torch.float64)

    new_state, jacobian, immediate = cell.step_with_jacobians(state, x)
    expected_jacobian = torch.autograd.functional.jacobian(lambda s: cell(s, x), state)

    torch.testing.assert_close(new_state, cell(state, x).detach(), rtol=0, atol=0)
    torch.testing.assert_close(jacobian, expected_jacobian, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(
        dense_immediate(cell, immediate),
        autograd_immediate(cell, state, x),
        rtol=1e-12,
        atol=1e-14,
    )


def test_lstm_immediate_index_touches_own_unit():
    n, m = 4, 3
    cell = LSTMCell(m, n, dtype=torch.float64)
    index = cell.immediate_index
    row_width = n + m + 1
    assert index.shape == (2 * n, 4 * row_width)
    assert index.dtype == torch.int64
    for unit in range(n):
        columns = set(index[unit].tolist())
        assert columns == set(index[n + unit].tolist())
        assert len(columns) == 4 * row_width
        gate_rows = [q * n + unit for q in range(4)]
        expected = set()
        for row in gate_rows:
            expected.update(range(row * n, row * n + n))
            expected.update(range(4 * n * n + row * m, 4 * n * n + row * m + m))
            expected.add(4 * n * (n + m) + row)
        assert columns == expected


@pytest.mark.parametrize("n,m,d,seed", [(2, 1, 1, 0), (5, 3, 2, 1), (8, 4, 3, 2)])
def test_lstm_exact_rtrl_matches_bptt(n, m, d, seed):
    model = make_lstm_model(n, m, d, seed)
    x, y = random_sequence(30, m, d, seed)
    expected = bptt_gradients(model, x, y)
    got = online_gradients(ExactRTRL(model), x, y)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("selection", SELECTIONS)
def test_lstm_sparse_all_paths_equals_exact(selection):
    n, m, d = 5, 2, 2
    model = make_lstm_model(n, m, d, seed=3)
    x, y = random_sequence(25, m, d, seed=3)
    exact = online_gradients(ExactRTRL(model), x, y)
    generator = torch.Generator().manual_seed(0)
    sparse = SparseRTRL(model, k=2 * n, selection=selection, generator=generator)
    got = online_gradients(sparse, x, y)
    for name in exact:
        torch.testing.assert_close(got[name], exact[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("selection", ["random", "topk"])
def test_lstm_sparse_k4_matches_masked_reference(selection):
    n, m, d, k = 5, 2, 2, 4
    model = make_lstm_model(n, m, d, seed=6)
    cell = model.cell
    x, y = random_sequence(20, m, d, seed=6)
    generator = torch.Generator().manual_seed(1)
    learner = SparseRTRL(model, k=k, selection=selection, generator=generator)

    influence = torch.zeros(cell.state_size, cell.num_params, dtype=torch.float64)
    state = cell.initial_state()
    for xt in x:
        learner.step(xt)
        state, jacobian, immediate = cell.step_with_jacobians(state, xt)
        mask = learner.selector.mask(learner.paths)
        influence = (mask * jacobian) @ influence + dense_immediate(cell, immediate)

    assert learner.paths.shape == (2 * n, k)
    torch.testing.assert_close(learner.influence, influence, rtol=1e-12, atol=1e-14)


def test_lstm_readout_sees_only_h():
    model = make_lstm_model(3, 2, 1, seed=0)
    cell = model.cell
    state = torch.arange(6, dtype=torch.float64)
    assert cell.state_multiplier == 2
    assert cell.state_size == 6
    torch.testing.assert_close(cell.output(state), state[:3])


def test_lstm_forget_bias_starts_at_one():
    n = 4
    cell = LSTMCell(2, n)
    bias = cell.bias.detach()
    assert torch.all(bias[n : 2 * n] == 1)
    assert torch.all(bias[:n] == 0)
    assert torch.all(bias[2 * n :] == 0)


def test_lstm_registered():
    assert CELLS["lstm"] is LSTMCell


@pytest.mark.parametrize(
    "input_size,hidden_size", [(0, 4), (3, 0), (-1, 4), (3, 2.5), (True, 4)]
)
def test_lstm_invalid_sizes_raise(input_size, hidden_size):
    with pytest.raises(ValueError, match="must be"):
        LSTMCell(input_size, hidden_size)


def test_lstm_experiment_smoke_run(tmp_path):
    config = LSTMExperimentConfig.quick(
        hidden_size=4,
        seeds=1,
        pretrain_iterations=2,
        pretrain_window=10,
        pretrain_batch=2,
        warmup_steps=5,
        adapt_steps=20,
    )
    summary = run_lstm_experiment(config, tmp_path, progress=False)

    assert set(summary["learners"]) == set(config.learners)
    for row in summary["learners"].values():
        assert row["seeds"] == [0]
        assert len(row["loss"]) == 1
    exact = summary["learners"]["exact"]
    assert exact["recovery_mean"] == pytest.approx(100.0)
    runs = list((tmp_path / "runs" / "lstm").glob("*.json"))
    assert len(runs) == len(config.learners)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["cell"] == "lstm"
