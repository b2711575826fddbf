"""Online gradient estimators against references computed another way."""

import pytest
import torch
from helpers import bptt_gradients, make_rnn_model, online_gradients, random_sequence

from sparse_rtrl.learners import ExactRTRL, ReadoutOnly, SparseRTRL


@pytest.mark.parametrize("n,m,d,seed", [(2, 1, 1, 0), (5, 3, 2, 1), (16, 4, 3, 2)])
def test_exact_rtrl_matches_bptt(n, m, d, seed):
    model = make_rnn_model(n, m, d, seed)
    x, y = random_sequence(30, m, d, seed)
    expected = bptt_gradients(model, x, y)
    got = online_gradients(ExactRTRL(model), x, y)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("selection", ["random", "resample", "topk", "bottomk"])
def test_sparse_with_all_paths_matches_exact(selection):
    n, m, d = 9, 2, 2
    model = make_rnn_model(n, m, d, seed=3)
    x, y = random_sequence(25, m, d, seed=3)
    exact = online_gradients(ExactRTRL(model), x, y)
    sparse = SparseRTRL(model, k=n, selection=selection)
    got = online_gradients(sparse, x, y)
    for name in exact:
        torch.testing.assert_close(got[name], exact[name], rtol=1e-10, atol=1e-12)


def immediate_only_gradients(model, x, y):
    """Σ_t (∂L_t/∂h_t)ᵀ I_t, with I_t = ∂h_t/∂θ holding h_{t-1} fixed, by autograd."""
    grads = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    state = model.cell.initial_state()
    for xt, yt in zip(x, y):
        model.zero_grad(set_to_none=True)
        new_state = model.cell(state.detach(), xt)
        loss = torch.mean((model.readout(model.cell.output(new_state)) - yt) ** 2)
        loss.backward()
        for name, p in model.named_parameters():
            grads[name] += p.grad
        state = new_state.detach()
    model.zero_grad(set_to_none=True)
    return grads


def test_sparse_with_no_paths_matches_immediate_gradient():
    n, m, d = 7, 3, 2
    model = make_rnn_model(n, m, d, seed=4)
    x, y = random_sequence(20, m, d, seed=4)
    expected = immediate_only_gradients(model, x, y)
    got = online_gradients(SparseRTRL(model, k=0), x, y)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-10, atol=1e-12)


def masked_reference_gradients(model, x, y, masks, scale=1.0):
    """RTRL with the dense product (mask ⊙ J_t) M_{t-1}, one mask per step."""
    cell = model.cell
    influence = torch.zeros(cell.state_size, cell.num_params, dtype=torch.float64)
    state = cell.initial_state()
    total = torch.zeros(cell.num_params, dtype=torch.float64)
    for xt, yt, mask in zip(x, y, masks):
        state_new, jacobian, immediate = cell.step_with_jacobians(state, xt)
        dense_immediate = torch.zeros_like(influence)
        dense_immediate.scatter_(1, cell.immediate_index, immediate)
        influence = (scale * mask * jacobian) @ influence + dense_immediate
        h = state_new.clone().requires_grad_(True)
        loss = torch.mean((model.readout(h) - yt) ** 2)
        (grad_h,) = torch.autograd.grad(loss, [h])
        total += grad_h @ influence
        state = state_new
    return total


@pytest.mark.parametrize(
    "selection,k,keep_self,rescale",
    [
        ("random", 3, False, False),
        ("resample", 2, True, False),
        ("topk", 4, False, True),
        ("bottomk", 1, True, False),
        ("random", 1, False, True),
    ],
)
def test_sparse_matches_dense_masked_reference(selection, k, keep_self, rescale):
    n, m, d = 8, 2, 1
    model = make_rnn_model(n, m, d, seed=5)
    x, y = random_sequence(20, m, d, seed=5)
    learner = SparseRTRL(
        model,
        k=k,
        selection=selection,
        keep_self=keep_self,
        rescale=rescale,
        generator=torch.Generator().manual_seed(0),
    )
    masks = []
    for xt, yt in zip(x, y):
        learner.step(xt, yt)
        masks.append(learner.selector.mask(learner.paths).to(torch.float64))
    total = torch.cat([p.grad.reshape(-1) for p in model.cell.parameters()])
    expected = masked_reference_gradients(
        model, x, y, masks, scale=n / k if rescale else 1.0
    )
    torch.testing.assert_close(total, expected, rtol=1e-10, atol=1e-12)


def test_sparse_differs_from_exact_when_paths_are_dropped():
    n, m, d = 8, 2, 1
    model = make_rnn_model(n, m, d, seed=6)
    x, y = random_sequence(20, m, d, seed=6)
    exact = online_gradients(ExactRTRL(model), x, y)
    sparse = online_gradients(SparseRTRL(model, k=2), x, y)
    assert not torch.allclose(sparse["cell.weight_hh"], exact["cell.weight_hh"])


def test_readout_gradient_is_exact_for_every_learner():
    n, m, d = 6, 2, 2
    model = make_rnn_model(n, m, d, seed=7)
    x, y = random_sequence(15, m, d, seed=7)
    expected = bptt_gradients(model, x, y)
    for learner in (ExactRTRL(model), SparseRTRL(model, k=1), ReadoutOnly(model)):
        got = online_gradients(learner, x, y)
        torch.testing.assert_close(
            got["readout.weight"], expected["readout.weight"], rtol=1e-10, atol=1e-12
        )


def test_readout_learner_leaves_cell_gradients_empty():
    model = make_rnn_model(4, 1, 1, seed=8)
    x, y = random_sequence(5, 1, 1, seed=8)
    learner = ReadoutOnly(model)
    for xt, yt in zip(x, y):
        learner.step(xt, yt)
    assert all(p.grad is None for p in model.cell.parameters())


@pytest.mark.parametrize("k", [9, 16])
def test_dense_path_for_many_paths_matches_reference_kernel(k):
    n, m, d = 16, 2, 1
    model = make_rnn_model(n, m, d, seed=9)
    x, y = random_sequence(15, m, d, seed=9)
    fast = SparseRTRL(model, k=k, generator=torch.Generator().manual_seed(1))
    slow = SparseRTRL(
        model, k=k, generator=torch.Generator().manual_seed(1), backend="reference"
    )
    assert fast.dense
    assert not slow.dense
    got = online_gradients(fast, x, y)
    expected = online_gradients(slow, x, y)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-10, atol=1e-12)
