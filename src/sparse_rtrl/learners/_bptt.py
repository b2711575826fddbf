"""Offline training by backpropagation through time, used for pretraining."""

from __future__ import annotations

import logging

import torch
from tqdm.auto import tqdm

from .._validation import check_int_range, check_positive
from ..tasks import Task
from ._base import RecurrentModel

log = logging.getLogger(__name__)


def pretrain_bptt(
    model: RecurrentModel,
    task: Task,
    iterations: int,
    window: int = 100,
    batch_size: int = 32,
    lr: float = 3e-3,
    regime: str = "A",
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> list[float]:
    """Train ``model`` on ``task`` by BPTT with Adam and return the loss per iteration.

    Each iteration draws ``batch_size`` independent windows of ``window`` steps from
    ``regime``, starts them from the zero state, and takes one Adam step on the mean
    per-step loss. Gradients are clipped to norm 1 for stability at the start.

    Args:
      model: the model to train in place.
      task: the data source.
      iterations: number of optimizer steps.
      window: steps per sequence.
      batch_size: sequences per step.
      lr: Adam learning rate.
      regime: the task regime to train on.
      generator: source of the data.
      progress: show a progress bar.
    """
    check_int_range("iterations", iterations, 0, 10**8)
    check_int_range("window", window, 1, 10**6)
    check_int_range("batch_size", batch_size, 1, 10**6)
    check_positive("lr", lr)
    p = next(model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    bar = tqdm(
        range(iterations), desc="pretrain (BPTT)", disable=not progress, leave=False
    )
    for _ in bar:
        streams = task.sample_batch(regime, window, batch_size, generator)
        inputs = torch.stack([s.inputs for s in streams], dim=1)  # (T, B, m)
        targets = torch.stack([s.targets for s in streams], dim=1)  # (T, B, d)
        masks = torch.stack([s.error_mask for s in streams], dim=1)  # (T, B)
        inputs = inputs.to(dtype=p.dtype, device=p.device)
        targets = targets.to(dtype=p.dtype, device=p.device)
        masks = masks.to(device=p.device)
        outputs, _ = model(inputs)
        per_step = ((outputs - targets) ** 2).mean(-1)  # (T, B)
        loss = (per_step * masks).sum() / masks.sum().clamp(min=1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if progress:
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
    model.zero_grad(set_to_none=True)
    if losses:
        log.info("pretraining finished: final loss %.4g", losses[-1])
    return losses
