"""Prior-work baselines against exact RTRL, dense references and hand-worked cases."""

import inspect
import json
import math

import pytest
import torch
from helpers import make_rnn_model, online_gradients, random_sequence
from torch import nn

from sparse_rtrl.cells import CELLS, Cell, LSTMCell, TanhRNNCell
from sparse_rtrl.experiments._baselines import (
    BaselinesConfig,
    format_baselines_table,
    run_baselines,
    trace_bytes,
)
from sparse_rtrl.learners import (
    KFRTRL,
    LEARNERS,
    RFLO,
    UORO,
    EProp,
    ExactRTRL,
    RecurrentModel,
    SnAp1,
    SnAp2,
    SparseRTRL,
    TruncatedBPTT,
)
from sparse_rtrl.learners._snap import influence_pattern

BASELINES = ("snap1", "snap2", "uoro", "kfrtrl", "rflo", "eprop", "tbptt")
# Learner and cell pairs that raise NotImplementedError by design.
UNSUPPORTED = {("kfrtrl", "lstm"), ("kfrtrl", "gru")}


def make_model(cell_name, n, m, d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    cell = CELLS[cell_name](m, n, generator=g, dtype=dtype)
    return RecurrentModel(cell, d, generator=g)


def cell_vector(grads):
    return torch.cat([g.reshape(-1) for name, g in grads.items() if "cell" in name])


def masked_influence_gradients(model, x, y, mask):
    """Σ_t (∂L_t/∂h_t)ᵀ M_t with M_t = mask ⊙ (J_t M_{t-1} + I_t), dense products."""
    cell = model.cell
    influence = torch.zeros(cell.state_size, cell.num_params, dtype=torch.float64)
    state = cell.initial_state()
    total = torch.zeros(cell.num_params, dtype=torch.float64)
    for xt, yt in zip(x, y):
        state, jacobian, immediate = cell.step_with_jacobians(state, xt)
        dense_immediate = torch.zeros_like(influence)
        dense_immediate.scatter_(1, cell.immediate_index, immediate)
        influence = mask * (jacobian @ influence + dense_immediate)
        h = state.clone().requires_grad_(True)
        loss = torch.mean((model.readout(cell.output(h)) - yt) ** 2)
        (grad_h,) = torch.autograd.grad(loss, [h])
        total += grad_h @ influence
    return total


def masked_jacobian_gradients(model, x, y, keep):
    """RTRL with only the ``keep`` (S, S) entries of J_t: M_t = (keep ⊙ J_t) M + I."""
    cell = model.cell
    ones = torch.ones(cell.state_size, cell.num_params, dtype=torch.float64)
    influence = torch.zeros_like(ones)
    state = cell.initial_state()
    total = torch.zeros(cell.num_params, dtype=torch.float64)
    for xt, yt in zip(x, y):
        state, jacobian, immediate = cell.step_with_jacobians(state, xt)
        dense_immediate = torch.zeros_like(influence)
        dense_immediate.scatter_(1, cell.immediate_index, immediate)
        influence = (keep * jacobian) @ influence + dense_immediate
        h = state.clone().requires_grad_(True)
        loss = torch.mean((model.readout(cell.output(h)) - yt) ** 2)
        (grad_h,) = torch.autograd.grad(loss, [h])
        total += grad_h @ influence
    return total


# SnAp


@pytest.mark.parametrize("cell_name", sorted(CELLS))
@pytest.mark.parametrize("learner_cls", [SnAp1, SnAp2])
def test_snap_full_pattern_matches_exact(cell_name, learner_cls):
    n, m, d = 4, 2, 2
    model = make_model(cell_name, n, m, d, seed=1)
    x, y = random_sequence(8, m, d, seed=1)
    exact = online_gradients(ExactRTRL(model), x, y)
    learner = learner_cls(model, pattern_steps=model.cell.state_size)
    assert bool(learner.pattern.any(dim=0).all())
    got = online_gradients(learner, x, y)
    for name in exact:
        torch.testing.assert_close(got[name], exact[name], rtol=1e-10, atol=1e-12)


def test_snap2_on_dense_rnn_is_exact():
    n, m, d = 5, 2, 1
    model = make_rnn_model(n, m, d, seed=2)
    x, y = random_sequence(20, m, d, seed=2)
    exact = online_gradients(ExactRTRL(model), x, y)
    got = online_gradients(SnAp2(model), x, y)
    for name in exact:
        torch.testing.assert_close(got[name], exact[name], rtol=1e-10, atol=1e-12)


def test_snap1_matches_masked_dense_reference():
    n, m, d = 6, 2, 2
    model = make_rnn_model(n, m, d, seed=3)
    x, y = random_sequence(20, m, d, seed=3)
    cell = model.cell
    mask = torch.zeros(n, cell.num_params, dtype=torch.float64)
    mask.scatter_(1, cell.immediate_index, 1.0)
    expected = masked_influence_gradients(model, x, y, mask)
    got = cell_vector(online_gradients(SnAp1(model), x, y))
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    exact = cell_vector(online_gradients(ExactRTRL(model), x, y))
    assert not torch.allclose(got, exact)


def test_snap1_on_rnn_keeps_only_self_paths():
    n, m, d = 5, 1, 1
    model = make_rnn_model(n, m, d, seed=4)
    x, y = random_sequence(12, m, d, seed=4)
    expected = masked_jacobian_gradients(model, x, y, torch.eye(n, dtype=torch.float64))
    got = cell_vector(online_gradients(SnAp1(model), x, y))
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_snap2_on_pruned_rnn_matches_masked_reference():
    n, m, d = 7, 2, 1
    model = make_rnn_model(n, m, d, seed=5)
    cell = model.cell
    keep = torch.rand(n, n, generator=torch.Generator().manual_seed(0)) < 0.3
    with torch.no_grad():
        cell.weight_hh.mul_(keep)
    x, y = random_sequence(20, m, d, seed=5)

    immediate = torch.zeros(n, cell.num_params, dtype=torch.float64)
    immediate.scatter_(1, cell.immediate_index, 1.0)
    structure = (cell.weight_hh != 0).to(torch.float64)
    mask = ((structure @ immediate > 0) | (immediate > 0)).to(torch.float64)
    assert 0 < mask.mean() < 1

    learner = SnAp2(model)
    assert torch.equal(learner.pattern, mask.bool())
    expected = masked_influence_gradients(model, x, y, mask)
    got = cell_vector(online_gradients(learner, x, y))
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_snap_pattern_grows_with_steps_until_full():
    model = make_rnn_model(6, 1, 1, seed=6)
    cell = model.cell
    with torch.no_grad():
        # A ring: unit i feeds only unit i + 1, so reach grows one unit per step.
        ring = torch.roll(torch.eye(6, dtype=torch.float64), 1, dims=0)
        cell.weight_hh.copy_(0.9 * ring)
    counts = [int(influence_pattern(cell, s).sum()) for s in range(1, 8)]
    per_unit = cell.immediate_index.shape[1]
    assert counts[:6] == [per_unit * 6 * s for s in range(1, 7)]
    assert counts[6] == counts[5] == 6 * cell.num_params


def test_snap1_dense_influence_is_zero_off_pattern():
    model = make_model("lstm", 3, 2, 1, seed=7)
    learner = SnAp1(model)
    x, y = random_sequence(5, 2, 1, seed=7)
    for xt, yt in zip(x, y):
        learner.step(xt, yt)
    dense = learner.dense_influence()
    assert bool((dense[~learner.pattern] == 0).all())
    assert bool((dense[learner.pattern] != 0).any())


# UORO and KF-RTRL: unbiased estimators


def lopsided_signs(self, size):
    """A biased coin: +1 with probability 0.9, so E[ν] ≠ 0 and the estimate drifts."""
    draw = torch.rand(size, generator=self.generator)
    return torch.where(draw < 0.9, 1.0, -1.0).to(self.dtype)


class LopsidedUORO(UORO):
    _draw_signs = lopsided_signs


class LopsidedKFRTRL(KFRTRL):
    _draw_signs = lopsided_signs


def estimate_draws(learner_cls, model, x, y, draws):
    """The last-step cell gradient of ``draws`` independent runs: (draws, P)."""
    samples = []
    for draw in range(draws):
        learner = learner_cls(model, generator=torch.Generator().manual_seed(draw))
        learner.shadow = True
        for xt, yt in zip(x, y):
            learner.step(xt, yt)
        samples.append(learner.last_cell_gradient)
    return torch.stack(samples)


def max_standard_error_gap(samples, exact):
    """Max over parameters of |mean − exact| in standard errors of the mean."""
    draws = samples.shape[0]
    standard_error = samples.std(dim=0) / math.sqrt(draws)
    assert bool((standard_error > 0).all())
    return float(((samples.mean(dim=0) - exact).abs() / standard_error).max())


def exact_last_gradient(model, x, y):
    exact = ExactRTRL(model)
    exact.shadow = True
    for xt, yt in zip(x, y):
        exact.step(xt, yt)
    return exact.last_cell_gradient


@pytest.mark.parametrize(
    "learner_cls,biased_cls", [(UORO, LopsidedUORO), (KFRTRL, LopsidedKFRTRL)]
)
def test_random_estimator_is_unbiased(learner_cls, biased_cls):
    model = make_rnn_model(3, 1, 1, seed=0)
    x, y = random_sequence(3, 1, 1, seed=0)
    exact = exact_last_gradient(model, x, y)
    samples = estimate_draws(learner_cls, model, x, y, draws=500)
    assert max_standard_error_gap(samples, exact) < 4.0
    biased = estimate_draws(biased_cls, model, x, y, draws=500)
    assert max_standard_error_gap(biased, exact) > 4.0


@pytest.mark.slow
@pytest.mark.parametrize(
    "learner_cls,biased_cls", [(UORO, LopsidedUORO), (KFRTRL, LopsidedKFRTRL)]
)
def test_random_estimator_is_unbiased_long(learner_cls, biased_cls):
    model = make_rnn_model(4, 2, 2, seed=1)
    x, y = random_sequence(8, 2, 2, seed=1)
    exact = exact_last_gradient(model, x, y)
    samples = estimate_draws(learner_cls, model, x, y, draws=5000)
    assert max_standard_error_gap(samples, exact) < 4.5
    biased = estimate_draws(biased_cls, model, x, y, draws=5000)
    assert max_standard_error_gap(biased, exact) > 4.5


def test_random_estimator_repeats_with_seed():
    model = make_rnn_model(4, 2, 1, seed=2)
    x, y = random_sequence(6, 2, 1, seed=2)
    for cls in (UORO, KFRTRL):
        first = estimate_draws(cls, model, x, y, draws=1)
        second = estimate_draws(cls, model, x, y, draws=1)
        assert torch.equal(first, second)


def test_kfrtrl_first_step_is_exact():
    # M_1 = I_1 is one Kronecker product, so the first estimate has no noise.
    model = make_rnn_model(4, 2, 1, seed=3)
    x, y = random_sequence(1, 2, 1, seed=3)
    exact = exact_last_gradient(model, x, y)
    got = estimate_draws(KFRTRL, model, x, y, draws=1)[0]
    torch.testing.assert_close(got, exact, rtol=1e-10, atol=1e-12)


# Truncated BPTT


@pytest.mark.parametrize("cell_name", sorted(CELLS))
def test_tbptt_with_long_horizon_matches_exact(cell_name):
    n, m, d = 4, 2, 2
    model = make_model(cell_name, n, m, d, seed=8)
    x, y = random_sequence(12, m, d, seed=8)
    exact = online_gradients(ExactRTRL(model), x, y)
    got = online_gradients(TruncatedBPTT(model, horizon=12), x, y)
    for name in exact:
        torch.testing.assert_close(got[name], exact[name], rtol=1e-9, atol=1e-12)


def test_tbptt_with_horizon_one_matches_immediate_term():
    n, m, d = 5, 2, 1
    model = make_rnn_model(n, m, d, seed=9)
    x, y = random_sequence(10, m, d, seed=9)
    expected = online_gradients(SparseRTRL(model, k=0), x, y)
    got = online_gradients(TruncatedBPTT(model, horizon=1), x, y)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-9, atol=1e-12)


def test_tbptt_with_short_horizon_differs_from_exact():
    n, m, d = 5, 2, 1
    model = make_rnn_model(n, m, d, seed=10)
    x, y = random_sequence(12, m, d, seed=10)
    exact = cell_vector(online_gradients(ExactRTRL(model), x, y))
    got = cell_vector(online_gradients(TruncatedBPTT(model, horizon=3), x, y))
    assert not torch.allclose(got, exact)


# RFLO and e-prop: two units, one input, two steps, by hand


def hand_network():
    """h_t = tanh(W h_{t-1} + U x_t + b) with two units and readout y = V h."""
    cell = TanhRNNCell(1, 2, dtype=torch.float64)
    model = RecurrentModel(cell, 1)
    with torch.no_grad():
        cell.weight_hh.copy_(torch.tensor([[0.5, -0.3], [0.2, 0.4]]))
        cell.weight_ih.copy_(torch.tensor([[1.0], [-0.5]]))
        cell.bias.copy_(torch.tensor([0.1, 0.0]))
        model.readout.weight.copy_(torch.tensor([[0.7, -1.2]]))
        model.readout.bias.zero_()
    return model


HAND_W = [[0.5, -0.3], [0.2, 0.4]]
HAND_U = [1.0, -0.5]
HAND_B = [0.1, 0.0]
HAND_V = [0.7, -1.2]
HAND_X = [1.0, -2.0]
HAND_Y = 0.3


def hand_forward():
    """Both steps by hand: h1, h2, the slopes d1, d2 and the output error e2."""
    a1 = [HAND_U[i] * HAND_X[0] + HAND_B[i] for i in range(2)]
    h1 = [math.tanh(a) for a in a1]
    a2 = [
        HAND_W[i][0] * h1[0] + HAND_W[i][1] * h1[1] + HAND_U[i] * HAND_X[1] + HAND_B[i]
        for i in range(2)
    ]
    h2 = [math.tanh(a) for a in a2]
    d1 = [1 - h**2 for h in h1]
    d2 = [1 - h**2 for h in h2]
    # L = (V h2 − y)², so ∂L/∂y = 2 (V h2 − y).
    e2 = 2 * (HAND_V[0] * h2[0] + HAND_V[1] * h2[1] - HAND_Y)
    return h1, d1, d2, e2


def run_hand_case(learner):
    """Step 1 without a target, step 2 with one; return the cell gradients."""
    model = learner.model
    model.zero_grad(set_to_none=True)
    learner.step(torch.tensor([HAND_X[0]], dtype=torch.float64))
    learner.step(
        torch.tensor([HAND_X[1]], dtype=torch.float64),
        torch.tensor([HAND_Y], dtype=torch.float64),
    )
    cell = model.cell
    return cell.weight_hh.grad, cell.weight_ih.grad[:, 0], cell.bias.grad


def test_rflo_two_units_by_hand():
    h1, d1, d2, e2 = hand_forward()
    delta = [HAND_V[i] * e2 for i in range(2)]
    # τ = 2: e_1 = I_1 / 2 and e_2 = e_1 / 2 + I_2 / 2; I_1 has no W part (h_0 = 0).
    w = [[delta[i] * 0.5 * d2[i] * h1[j] for j in range(2)] for i in range(2)]
    u = [
        delta[i] * (0.25 * d1[i] * HAND_X[0] + 0.5 * d2[i] * HAND_X[1]) for i in (0, 1)
    ]
    b = [delta[i] * (0.25 * d1[i] + 0.5 * d2[i]) for i in range(2)]

    grad_w, grad_u, grad_b = run_hand_case(RFLO(hand_network(), tau=2.0))
    torch.testing.assert_close(grad_w, torch.tensor(w, dtype=torch.float64))
    torch.testing.assert_close(grad_u, torch.tensor(u, dtype=torch.float64))
    torch.testing.assert_close(grad_b, torch.tensor(b, dtype=torch.float64))


def test_rflo_random_feedback_by_hand():
    h1, d1, d2, e2 = hand_forward()
    learner = RFLO(
        hand_network(), feedback="random", generator=torch.Generator().manual_seed(0)
    )
    feedback = learner.feedback_matrix[:, 0].tolist()
    delta = [feedback[i] * e2 for i in range(2)]
    # τ = 1: the trace is I_t itself.
    w = [[delta[i] * d2[i] * h1[j] for j in range(2)] for i in range(2)]
    b = [delta[i] * d2[i] for i in range(2)]

    grad_w, _, grad_b = run_hand_case(learner)
    torch.testing.assert_close(grad_w, torch.tensor(w, dtype=torch.float64))
    torch.testing.assert_close(grad_b, torch.tensor(b, dtype=torch.float64))
    exact_w, _, _ = run_hand_case(RFLO(hand_network()))
    assert not torch.allclose(grad_w, exact_w)


def test_eprop_two_units_by_hand():
    h1, d1, d2, e2 = hand_forward()
    delta = [HAND_V[i] * e2 for i in range(2)]
    # e_2 = J_2[i, i] e_1 + I_2 with J_2[i, i] = d2_i W_ii and e_1 = I_1.
    self_path = [d2[i] * HAND_W[i][i] for i in range(2)]
    w = [[delta[i] * d2[i] * h1[j] for j in range(2)] for i in range(2)]
    u = [
        delta[i] * (self_path[i] * d1[i] * HAND_X[0] + d2[i] * HAND_X[1])
        for i in range(2)
    ]
    b = [delta[i] * (self_path[i] * d1[i] + d2[i]) for i in range(2)]

    grad_w, grad_u, grad_b = run_hand_case(EProp(hand_network()))
    torch.testing.assert_close(grad_w, torch.tensor(w, dtype=torch.float64))
    torch.testing.assert_close(grad_u, torch.tensor(u, dtype=torch.float64))
    torch.testing.assert_close(grad_b, torch.tensor(b, dtype=torch.float64))


def test_rflo_with_unit_tau_matches_immediate_term():
    n, m, d = 5, 2, 2
    model = make_rnn_model(n, m, d, seed=11)
    x, y = random_sequence(10, m, d, seed=11)
    expected = online_gradients(SparseRTRL(model, k=0), x, y)
    got = online_gradients(RFLO(model), x, y)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-10, atol=1e-12)


def test_eprop_on_rnn_matches_diagonal_reference():
    n, m, d = 6, 2, 2
    model = make_rnn_model(n, m, d, seed=12)
    x, y = random_sequence(15, m, d, seed=12)
    keep = torch.eye(n, dtype=torch.float64)
    expected = masked_jacobian_gradients(model, x, y, keep)
    got = cell_vector(online_gradients(EProp(model), x, y))
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_eprop_on_lstm_follows_cell_state_diagonal():
    n, m, d = 3, 2, 2
    model = make_model("lstm", n, m, d, seed=13)
    x, y = random_sequence(12, m, d, seed=13)
    keep = torch.zeros(2 * n, 2 * n, dtype=torch.float64)
    units = torch.arange(n)
    keep[units, n + units] = 1.0  # h_i ← c_i
    keep[n + units, n + units] = 1.0  # c_i ← c_i
    expected = masked_jacobian_gradients(model, x, y, keep)
    got = cell_vector(online_gradients(EProp(model), x, y))
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


# Every baseline, every cell


@pytest.mark.parametrize("cell_name", sorted(CELLS))
@pytest.mark.parametrize("name", BASELINES)
def test_baseline_runs_on_every_cell(name, cell_name):
    model = make_model(cell_name, 4, 2, 1, seed=14, dtype=torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    if (name, cell_name) in UNSUPPORTED:
        with pytest.raises(NotImplementedError, match=name):
            LEARNERS[name](model, optimizer)
        return
    learner = LEARNERS[name](model, optimizer)
    x, y = random_sequence(6, 2, 1, seed=14, dtype=torch.float32)
    for xt, yt in zip(x, y):
        loss = learner.step(xt, yt)
        assert torch.isfinite(loss)
    assert learner.last_cell_gradient.shape == (model.cell.num_params,)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert trace_bytes(learner) > 0


def easy_stream(steps):
    """y_t = 0.8 x_{t-1} − 0.3 x_t: one step of memory, learnable by every baseline."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(steps, 1, generator=g)
    previous = torch.cat([torch.zeros(1, 1), x[:-1]])
    return x, 0.8 * previous - 0.3 * x


def build_with_seed(name, model, optimizer):
    cls = LEARNERS[name]
    if "generator" in inspect.signature(cls.__init__).parameters:
        return cls(model, optimizer, generator=torch.Generator().manual_seed(0))
    return cls(model, optimizer)


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_reduces_loss_on_easy_task(name):
    model = make_model("rnn", 8, 1, 1, seed=15, dtype=torch.float32)
    learner = build_with_seed(
        name, model, torch.optim.Adam(model.parameters(), lr=1e-2)
    )
    x, y = easy_stream(300)
    losses = torch.stack([learner.step(xt, yt) for xt, yt in zip(x, y)])
    assert bool(torch.isfinite(losses).all())
    assert losses[-100:].mean() < 0.5 * losses[:100].mean()


def test_reset_repeats_deterministic_baselines():
    model = make_rnn_model(4, 2, 1, seed=16)
    x, y = random_sequence(8, 2, 1, seed=16)
    for cls in (SnAp1, SnAp2, RFLO, EProp, TruncatedBPTT):
        learner = cls(model)
        first = online_gradients(learner, x, y)
        learner.reset()
        second = online_gradients(learner, x, y)
        for name in first:
            assert torch.equal(first[name], second[name]), (cls.name, name)


# Options and unsupported cells


@pytest.mark.parametrize(
    "cls,options,message",
    [
        (SnAp1, {"pattern_steps": 0}, "pattern_steps must be in"),
        (SnAp2, {"pattern_steps": 2.5}, "pattern_steps must be an integer"),
        (UORO, {"epsilon": 0.0}, "epsilon must be a finite number > 0"),
        (KFRTRL, {"epsilon": -1.0}, "epsilon must be a finite number > 0"),
        (RFLO, {"tau": 0.5}, r"tau must be in \[1, inf\); got tau=0.5"),
        (RFLO, {"feedback": "transpose"}, "feedback must be one of"),
        (EProp, {"feedback": "none"}, "feedback must be one of"),
        (TruncatedBPTT, {"horizon": 0}, r"horizon must be in \[1, 1000000\]"),
    ],
)
def test_invalid_option_raises(cls, options, message):
    model = make_rnn_model(3, 1, 1, seed=17)
    with pytest.raises(ValueError, match=message):
        cls(model, **options)


class PairCell(Cell):
    """A stub cell with a two-part state that is not an LSTM."""

    state_multiplier = 2

    def __init__(self):
        super().__init__()
        self.input_size, self.hidden_size, self.state_size = 1, 2, 4
        self.weight = nn.Parameter(torch.zeros(4, 4, dtype=torch.float64))

    def forward(self, state, x):
        return state @ self.weight.T

    def step_with_jacobians(self, state, x):
        raise AssertionError("not reached")

    @property
    def immediate_index(self):
        return torch.zeros(4, 1, dtype=torch.long)


def test_eprop_rejects_unknown_two_part_cell():
    with pytest.raises(NotImplementedError, match="eprop.*PairCell"):
        EProp(RecurrentModel(PairCell(), 1))


def test_kfrtrl_rejects_lstm():
    model = RecurrentModel(LSTMCell(1, 2, dtype=torch.float64), 1)
    with pytest.raises(NotImplementedError, match="kfrtrl.*LSTMCell"):
        KFRTRL(model)


def test_baselines_are_registered_with_source_papers():
    papers = {
        "snap1": "Menick",
        "snap2": "Menick",
        "uoro": "Tallec",
        "kfrtrl": "Mujika",
        "rflo": "Murray",
        "eprop": "Bellec",
        "tbptt": "Williams",
    }
    for name, author in papers.items():
        assert LEARNERS[name].name == name
        assert author in LEARNERS[name].__doc__


# The comparison experiment


def tiny_config(**overrides):
    settings = {
        "sizes": (6,),
        "adapt_steps": (20,),
        "alignment_steps": (8,),
        "seeds": 2,
        "warmup_steps": 5,
        "pretrain_iterations": 3,
        "pretrain_window": 10,
        "pretrain_batch": 4,
        "dtype": "float64",
    }
    settings.update(overrides)
    return BaselinesConfig(**settings)


def test_run_baselines_writes_table(tmp_path):
    config = tiny_config(k=6)
    result = run_baselines(config, tmp_path, progress=False)
    rows = result["sizes"]["6"]
    assert list(rows) == [
        spec.label for spec in config.adaptation_config(0).learner_specs()
    ]
    assert rows["exact"]["recovery_mean"] == pytest.approx(100.0)
    assert rows["exact"]["mean_cosine"] == pytest.approx(1.0)
    assert rows["sparse:k=6"]["mean_cosine"] == pytest.approx(1.0)
    assert math.isnan(rows["frozen"]["mean_cosine"])
    assert rows["frozen"]["trace_bytes"] == 0
    assert rows["exact"]["trace_bytes"] > rows["snap1"]["trace_bytes"] > 0
    for label, row in rows.items():
        assert row["ok_seeds"] == 2, label
    saved = json.loads((tmp_path / "baselines.json").read_text())
    assert set(saved["sizes"]["6"]) == set(rows)
    table = (tmp_path / "baselines.md").read_text()
    assert table.strip() == format_baselines_table(result)
    for label in rows:
        assert f"| {label} |" in table


def test_run_baselines_reuses_stored_runs(tmp_path):
    config = tiny_config(learners=("frozen", "exact", "snap1"), seeds=1)
    first = run_baselines(config, tmp_path, progress=False)
    files = sorted(p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*.json"))
    second = run_baselines(config, tmp_path, progress=False)
    again = sorted(p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*.json"))
    assert files == again
    assert first["sizes"]["6"]["snap1"]["loss_mean"] == pytest.approx(
        second["sizes"]["6"]["snap1"]["loss_mean"]
    )


def test_baselines_config_checks_tuple_lengths():
    with pytest.raises(ValueError, match="adapt_steps must have one entry per size"):
        tiny_config(sizes=(6, 8)).validate()
    with pytest.raises(ValueError, match="sizes must list at least one"):
        tiny_config(sizes=(), adapt_steps=(), alignment_steps=()).validate()


def test_baselines_config_reads_sizes_from_strings():
    config = BaselinesConfig(sizes=("16",), adapt_steps=("10",), alignment_steps=("4",))
    assert config.sizes == (16,)
    assert config.adapt_steps == (10,)
    BaselinesConfig.quick().validate()
