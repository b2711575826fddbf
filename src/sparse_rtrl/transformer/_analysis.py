"""Per-head analysis: how much each attention head's gradient matters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from scipy import stats
from torch.func import functional_call

from ..learners import mse_loss
from ._model import CausalTransformer


@contextmanager
def _kept_heads(model: CausalTransformer, masks: Sequence[torch.Tensor]):
    """Set each layer's gate to ``masks[layer]`` (H,) and restore the old masks."""
    saved = [gate.keep.clone() for gate in model.gates]
    try:
        for gate, mask in zip(model.gates, masks):
            gate.set_keep(mask)
        yield
    finally:
        for gate, mask in zip(model.gates, saved):
            gate.set_keep(mask)


def head_gradient_norms(model: CausalTransformer) -> torch.Tensor:
    """Return the (L, H) norms of each head's parameter gradient in ``.grad``.

    Head h of a layer owns rows ``[h·d/H, (h+1)·d/H)`` of the query, key and value
    thirds of ``qkv`` (weights and biases) and the same columns of ``proj``. A
    parameter without ``.grad`` counts as zero.
    """

    def grad_of(p):
        return torch.zeros_like(p) if p.grad is None else p.grad

    norms = torch.zeros(len(model.blocks), model.heads, dtype=torch.float64)
    for layer, attention in enumerate(model.attentions):
        width, heads, head_width = (
            attention.width,
            attention.heads,
            attention.head_width,
        )
        qkv_weight = grad_of(attention.qkv.weight).view(3, heads, head_width, width)
        qkv_bias = grad_of(attention.qkv.bias).view(3, heads, head_width)
        proj = grad_of(attention.proj.weight).view(width, heads, head_width)
        squares = (
            qkv_weight.pow(2).sum(dim=(0, 2, 3))
            + qkv_bias.pow(2).sum(dim=(0, 2))
            + proj.pow(2).sum(dim=(0, 2))
        )  # (H,)
        norms[layer] = squares.double().sqrt()
    return norms


def analyse_heads(
    model: CausalTransformer,
    window: torch.Tensor,
    target: torch.Tensor,
    lr: float,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = mse_loss,
) -> dict[str, object]:
    """Measure each head's gradient norm and the value of its gradient alone.

    For every layer l and head h, the gradient ``g_lh`` of the loss on ``window`` is
    computed with only head (l, h) passing gradient, so all other heads of every
    layer are dropped. One SGD step is then taken on a copy of the parameters:

        Δ_lh = L(θ − lr · g_lh) − L(θ)

    ``Δ_none`` is the same with no head passing gradient (the MLPs and embeddings
    still learn) and ``Δ_all`` with every head passing it. ``Δ_lh − Δ_none`` is the
    part of the loss change that head (l, h)'s gradient adds. The model and its
    gates are left as they were.

    Args:
      model: the transformer.
      window: (T, m) inputs.
      target: (d,) target of the last position.
      lr: step size of the lookahead.
      loss_fn: per-step loss.

    Returns:
      ``loss`` L(θ); ``grad_norm`` (L, H) per-head gradient norms with every head
      passing gradient; ``delta`` (L, H) Δ_lh; ``delta_none``; ``delta_all``.
    """
    names = [name for name, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    layers, heads = len(model.blocks), model.heads

    def loss_at(values) -> torch.Tensor:
        output = functional_call(model, dict(zip(names, values)), (window,))
        return loss_fn(output[-1], target)

    def gradient(masks) -> list[torch.Tensor]:
        with _kept_heads(model, masks), torch.enable_grad():
            loss = loss_fn(model(window)[-1], target)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]

    def lookahead(grads) -> float:
        with torch.no_grad():
            stepped = [p.detach() - lr * g for p, g in zip(params, grads)]
            return float(loss_at(stepped))

    with torch.no_grad():
        base = float(loss_at([p.detach() for p in params]))

    every = [torch.ones(heads, dtype=torch.bool)] * layers
    none = [torch.zeros(heads, dtype=torch.bool)] * layers
    all_grads = gradient(every)
    saved_grads = [p.grad for p in params]
    for p, g in zip(params, all_grads):
        p.grad = g
    grad_norm = head_gradient_norms(model)
    for p, g in zip(params, saved_grads):
        p.grad = g

    delta = np.zeros((layers, heads))
    for layer in range(layers):
        for head in range(heads):
            masks = [mask.clone() for mask in none]
            masks[layer][head] = True
            delta[layer, head] = lookahead(gradient(masks)) - base
    return {
        "loss": base,
        "grad_norm": grad_norm.numpy(),
        "delta": delta,
        "delta_none": lookahead(gradient(none)) - base,
        "delta_all": lookahead(all_grads) - base,
    }


def summarize_heads(snapshots: Sequence[dict[str, object]]) -> dict[str, object]:
    """Summarize ``analyse_heads`` results taken over time.

    Returns:
      A dict with these entries.

      - ``norm_share`` (L, H): mean over time of each head's share of the total
        gradient norm of its layer.
      - ``gain`` (L, H): mean of ``Δ_none − Δ_lh``, the loss decrease that the
        head's gradient adds. Positive values help.
      - ``rank_stability``: Spearman correlation between the per-head mean gradient
        norms of the first and the second half of the snapshots. It is near 1 when
        the same heads carry the gradient throughout.
      - ``concentration``: the largest ``norm_share`` divided by the uniform 1/H.
      - ``snapshots``: the number of snapshots.
    """
    if not snapshots:
        return {"snapshots": 0}
    norms = np.stack([np.asarray(s["grad_norm"]) for s in snapshots])  # (N, L, H)
    deltas = np.stack([np.asarray(s["delta"]) for s in snapshots])  # (N, L, H)
    none = np.asarray([s["delta_none"] for s in snapshots])  # (N,)
    totals = norms.sum(axis=2, keepdims=True)
    share = np.divide(norms, totals, out=np.zeros_like(norms), where=totals > 0)
    gain = none[:, None, None] - deltas
    heads = norms.shape[2]
    summary = {
        "snapshots": len(snapshots),
        "norm_share": share.mean(axis=0).tolist(),
        "gain": gain.mean(axis=0).tolist(),
        "concentration": float(share.mean(axis=0).max() * heads),
        "rank_stability": float("nan"),
    }
    if len(snapshots) >= 2:
        half = len(snapshots) // 2
        first = norms[:half].mean(axis=0).ravel()
        second = norms[half:].mean(axis=0).ravel()
        summary["rank_stability"] = _spearman(first, second)
    return summary


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    # spearmanr warns and returns NaN on constant input; warnings are errors in tests.
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)
