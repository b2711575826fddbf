"""FunctionalCell: derivatives from torch.func against hand-derived cells and BPTT."""

import pytest
import torch
from helpers import bptt_gradients, make_rnn_model, online_gradients, random_sequence
from torch import nn

from sparse_rtrl.cells import CELLS, FunctionalCell, LSTMCell, gru_cell
from sparse_rtrl.learners import ExactRTRL, RecurrentModel, SparseRTRL
from sparse_rtrl.paths import SELECTIONS


def tanh_rnn_step(state, x, params):
    return torch.tanh(
        params["weight_hh"] @ state + params["weight_ih"] @ x + params["bias"]
    )


def lstm_step(state, x, params):
    weight_hh, weight_ih, bias = params
    n = weight_hh.shape[1]
    h, c = state[:n], state[n:]
    i, f, g, o = (weight_hh @ h + weight_ih @ x + bias).split(n)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.cat([torch.sigmoid(o) * torch.tanh(c_new), c_new])


def copy_as_functional(cell, function, as_dict=True, mode="auto"):
    named = {name: p.detach() for name, p in cell.named_parameters()}
    params = named if as_dict else tuple(named.values())
    return FunctionalCell(
        function,
        params,
        cell.input_size,
        cell.state_size,
        cell.hidden_size,
        mode=mode,
    )


def dense_immediate(cell, immediate):
    dense = torch.zeros(cell.state_size, cell.num_params, dtype=immediate.dtype)
    return dense.scatter_add_(1, cell.immediate_index, immediate)


def random_state_input(cell, seed):
    g = torch.Generator().manual_seed(seed)
    state = torch.randn(cell.state_size, generator=g, dtype=torch.float64)
    x = torch.randn(cell.input_size, generator=g, dtype=torch.float64)
    return state, x


def assert_same_derivatives(hand, auto, seed):
    state, x = random_state_input(hand, seed)
    hand_state, hand_jacobian, hand_immediate = hand.step_with_jacobians(state, x)
    auto_state, auto_jacobian, auto_immediate = auto.step_with_jacobians(state, x)
    assert auto_immediate.shape == (hand.state_size, hand.num_params)
    torch.testing.assert_close(auto_state, hand_state, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(auto_jacobian, hand_jacobian, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(
        dense_immediate(auto, auto_immediate),
        dense_immediate(hand, hand_immediate),
        rtol=1e-12,
        atol=1e-14,
    )


@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("n,m", [(1, 1), (4, 3), (9, 2)])
def test_functional_rnn_matches_hand_derived(n, m, mode):
    hand = make_rnn_model(n, m, 1, seed=n).cell
    auto = copy_as_functional(hand, tanh_rnn_step, mode=mode)
    assert auto.mode == mode
    assert auto.num_params == hand.num_params
    assert_same_derivatives(hand, auto, seed=n)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("n,m", [(1, 1), (3, 2), (6, 4)])
def test_functional_lstm_matches_hand_derived(n, m, mode):
    g = torch.Generator().manual_seed(n)
    hand = LSTMCell(m, n, gain=1.3, generator=g, dtype=torch.float64)
    with torch.no_grad():
        hand.bias.add_(0.3 * torch.randn(4 * n, generator=g, dtype=torch.float64))
    auto = copy_as_functional(hand, lstm_step, as_dict=False, mode=mode)
    assert auto.state_multiplier == 2
    assert auto.output_rows == hand.output_rows
    assert_same_derivatives(hand, auto, seed=n + 10)


class TanhRNNModule(nn.Module):
    def __init__(self, n, m):
        super().__init__()
        self.recurrent = nn.Linear(n, n, bias=False, dtype=torch.float64)
        self.input = nn.Linear(m, n, dtype=torch.float64)

    def forward(self, state, x):
        return torch.tanh(self.recurrent(state) + self.input(x))


def test_module_cell_matches_hand_derived():
    n, m = 5, 3
    hand = make_rnn_model(n, m, 1, seed=2).cell
    module = TanhRNNModule(n, m)
    with torch.no_grad():
        module.recurrent.weight.copy_(hand.weight_hh)
        module.input.weight.copy_(hand.weight_ih)
        module.input.bias.copy_(hand.bias)
    auto = FunctionalCell.from_module(module, m, n)
    assert [name for name, _ in auto.named_parameters()] == [
        "module.recurrent.weight",
        "module.input.weight",
        "module.input.bias",
    ]
    assert_same_derivatives(hand, auto, seed=3)


def test_module_cell_exact_rtrl_matches_bptt():
    n, m, d = 4, 2, 2
    torch.manual_seed(0)
    cell = FunctionalCell.from_module(TanhRNNModule(n, m), m, n)
    model = RecurrentModel(cell, d, generator=torch.Generator().manual_seed(0))
    x, y = random_sequence(20, m, d, seed=1)
    expected = bptt_gradients(model, x, y)
    got = online_gradients(ExactRTRL(model), x, y)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-8, atol=1e-12)


def make_gru_model(n, m, d, seed, mode="auto"):
    g = torch.Generator().manual_seed(seed)
    cell = gru_cell(m, n, gain=1.2, generator=g, dtype=torch.float64, mode=mode)
    with torch.no_grad():
        cell.params["bias"].copy_(
            0.3 * torch.randn(3 * n, generator=g, dtype=torch.float64)
        )
    return RecurrentModel(cell, d, generator=g)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("n,m,d,seed", [(2, 1, 1, 0), (6, 3, 2, 1)])
def test_gru_exact_rtrl_matches_bptt(n, m, d, seed, mode):
    model = make_gru_model(n, m, d, seed, mode)
    x, y = random_sequence(30, m, d, seed)
    expected = bptt_gradients(model, x, y)
    got = online_gradients(ExactRTRL(model), x, y)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("selection", SELECTIONS)
def test_gru_sparse_all_paths_equals_exact(selection):
    n, m, d = 5, 2, 2
    model = make_gru_model(n, m, d, seed=4)
    x, y = random_sequence(15, m, d, seed=4)
    exact = online_gradients(ExactRTRL(model), x, y)
    generator = torch.Generator().manual_seed(0)
    sparse = SparseRTRL(model, k=n, selection=selection, generator=generator)
    got = online_gradients(sparse, x, y)
    for name in exact:
        torch.testing.assert_close(got[name], exact[name], rtol=1e-10, atol=1e-12)


def test_gru_registered_and_sized():
    cell = CELLS["gru"](3, 4, generator=torch.Generator().manual_seed(0))
    assert isinstance(cell, FunctionalCell)
    assert cell.num_params == 3 * 4 * (4 + 3 + 1)
    assert cell.state_size == 4
    assert cell.immediate_index.shape == (4, cell.num_params)
    assert cell.mode == "reverse"


def test_batched_forward_matches_per_sample():
    cell = make_gru_model(4, 3, 1, seed=5).cell
    g = torch.Generator().manual_seed(6)
    states = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    inputs = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    batched = cell(states, inputs)
    assert batched.shape == (2, 5, 4)
    for a in range(2):
        for b in range(5):
            torch.testing.assert_close(
                batched[a, b], cell(states[a, b], inputs[a, b]), rtol=0, atol=1e-15
            )


def test_auto_mode_follows_shapes():
    few = FunctionalCell(
        lambda s, x, p: torch.tanh(p[0] * s + x.sum()), (torch.ones(8),), 2, 8
    )
    rnn = make_rnn_model(3, 2, 1, seed=0).cell
    many = FunctionalCell(tanh_rnn_step, dict(rnn.named_parameters()), 2, 3)
    assert few.mode == "forward"
    assert many.mode == "reverse"


def rnn_params(n=3, m=2):
    return {
        "weight_hh": torch.zeros(n, n),
        "weight_ih": torch.zeros(n, m),
        "bias": torch.zeros(n),
    }


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"input_size": 0}, "input_size must be in"),
        ({"state_size": 0}, "state_size must be in"),
        ({"hidden_size": 4}, "hidden_size must be in"),
        ({"hidden_size": 2}, "multiple of hidden_size"),
        ({"state_size": 4}, "step function failed"),
        ({"mode": "backward"}, "mode must be one of"),
    ],
)
def test_invalid_sizes_raise(kwargs, message):
    arguments = {"input_size": 2, "state_size": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        FunctionalCell(tanh_rnn_step, rnn_params(), **arguments)


def test_wrong_output_shape_raises():
    with pytest.raises(ValueError, match="must return a state of shape \\(3,\\)"):
        FunctionalCell(lambda s, x, p: p[0] * s[:2], (torch.ones(2),), 2, 3)


def test_invalid_parameters_raise():
    with pytest.raises(ValueError, match="at least one parameter"):
        FunctionalCell(lambda s, x, p: s, {}, 2, 3)
    with pytest.raises(ValueError, match="floating point"):
        FunctionalCell(lambda s, x, p: s, (torch.zeros(3, dtype=torch.int64),), 2, 3)
    mixed = {**rnn_params(), "bias": torch.zeros(3, dtype=torch.float64)}
    with pytest.raises(ValueError, match="share one dtype"):
        FunctionalCell(tanh_rnn_step, mixed, 2, 3)


def test_gru_invalid_sizes_raise():
    with pytest.raises(ValueError, match="hidden_size must be in"):
        gru_cell(3, 0)
    with pytest.raises(ValueError, match="input_size must be in"):
        gru_cell(0, 3)
