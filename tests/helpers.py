"""Reference computations shared by the tests."""

from __future__ import annotations

import torch

from sparse_rtrl.learners import Learner, RecurrentModel, mse_loss

#: Flags of a seconds-long ``sparse-rtrl run adaptation`` (two seeds, n = 6).
SMALL_ADAPTATION_ARGS = [
    "--hidden-size", "6",
    "--k", "2",
    "--seeds", "2",
    "--pretrain-iterations", "3",
    "--pretrain-batch", "2",
    "--pretrain-window", "10",
    "--warmup-steps", "5",
    "--adapt-steps", "30",
]  # fmt: skip


def make_rnn_model(n, m, d, seed, dtype=torch.float64, gain=1.2):
    from sparse_rtrl.cells import TanhRNNCell

    g = torch.Generator().manual_seed(seed)
    cell = TanhRNNCell(m, n, gain=gain, generator=g, dtype=dtype)
    with torch.no_grad():
        cell.bias.copy_(0.1 * torch.randn(n, generator=g, dtype=torch.float64))
    return RecurrentModel(cell, d, generator=g)


def random_sequence(steps, m, d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed + 7)
    x = torch.randn(steps, m, generator=g, dtype=torch.float64).to(dtype)
    y = torch.randn(steps, d, generator=g, dtype=torch.float64).to(dtype)
    return x, y


def bptt_gradients(model: RecurrentModel, x, y, state=None):
    """Gradient of Σ_t L_t over the window by autograd, parameters held fixed."""
    model.zero_grad(set_to_none=True)
    outputs, _ = model(x, state)
    loss = sum(mse_loss(o, t) for o, t in zip(outputs, y))
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return grads


def online_gradients(learner: Learner, x, y):
    """Accumulated online gradient Σ_t g_t of a learner built with optimizer=None."""
    learner.model.zero_grad(set_to_none=True)
    for xt, yt in zip(x, y):
        learner.step(xt, yt)
    grads = {}
    for name, p in learner.model.named_parameters():
        grads[name] = torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
    learner.model.zero_grad(set_to_none=True)
    return grads
