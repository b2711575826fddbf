"""Online training of the transformer: one optimizer step per time step."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._validation import NonFiniteError, check_shape
from ..learners import mse_loss
from ..tasks import Task
from ._model import CausalTransformer


class OnlineTransformer:
    """Predict ``y_t`` from the last ``context`` inputs and learn from each step.

        ŷ_t = model(x_{t-C+1..t})[-1]        L_t = loss(ŷ_t, y_t)
        θ ← optimizer step on ∂L_t/∂θ, with gradient through the kept heads only

    Before each backward pass every gate draws its kept heads (when it resamples),
    so the subset changes once per time step. Until ``context`` inputs have arrived
    the window is shorter.

    Args:
      model: the transformer; trained in place.
      optimizer: a ``torch.optim`` optimizer over ``model``'s parameters, or None
        for a frozen model that only predicts.
      loss_fn: ``loss_fn(prediction (d,), target (d,)) -> scalar``; MSE by default.
    """

    def __init__(
        self,
        model: CausalTransformer,
        optimizer: torch.optim.Optimizer | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = mse_loss,
    ):
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        p = next(model.parameters())
        self.window = torch.zeros(0, model.input_size, dtype=p.dtype, device=p.device)
        self.steps = 0

    def reset(self) -> None:
        """Empty the window."""
        self.window = self.window[:0]
        self.steps = 0

    def push(self, x: torch.Tensor) -> torch.Tensor:
        """Append ``x`` (m,) to the window and return the window (T, m), T ≤ C."""
        check_shape("x", x, (self.model.input_size,))
        window = torch.cat([self.window, x.unsqueeze(0)])
        self.window = window[-self.model.context :]
        self.steps += 1
        return self.window

    def step(
        self, x: torch.Tensor, y: torch.Tensor | None = None, learn: bool = True
    ) -> torch.Tensor | None:
        """Push ``x``, predict ``y_t``, learn from it when ``learn``; return ``L_t``.

        Args:
          x: (m,) input ``x_t``.
          y: (d,) target ``y_t``; None when there is none at this step.
          learn: whether this step's error updates the model.

        Returns:
          The detached scalar loss, or None when ``y`` is None.

        Raises:
          NonFiniteError: a NaN or Inf in the loss.
        """
        window = self.push(x)
        if y is None:
            return None
        check_shape("y", y, (self.model.output_size,))
        learn = learn and self.optimizer is not None
        if learn:
            self.model.resample_heads()
        with torch.set_grad_enabled(learn):
            loss = self.loss_fn(self.model(window)[-1], y)
        if not torch.isfinite(loss):
            raise NonFiniteError(f"loss is NaN or Inf at step {self.steps - 1}")
        if learn:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return loss.detach()


def pretrain_transformer(
    model: CausalTransformer,
    task: Task,
    iterations: int,
    batch_size: int = 32,
    lr: float = 3e-3,
    regime: str = "A",
    generator: torch.Generator | None = None,
) -> list[float]:
    """Train ``model`` offline on full windows of ``regime`` with Adam.

    Each iteration draws ``batch_size`` streams of ``2 · context`` steps and trains
    on the last ``context`` steps, so the task's own state has run for ``context``
    steps before the window starts, as it has in a long online stream. The loss
    is the mean over all positions of the window. Gradients are clipped to norm 1.

    Returns:
      The loss of each iteration.
    """
    p = next(model.parameters())
    context = model.context
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(iterations):
        streams = task.sample_batch(regime, 2 * context, batch_size, generator)
        inputs = torch.stack([s.inputs[-context:] for s in streams])  # (B, C, m)
        targets = torch.stack([s.targets[-context:] for s in streams])  # (B, C, d)
        inputs = inputs.to(dtype=p.dtype, device=p.device)
        targets = targets.to(dtype=p.dtype, device=p.device)
        loss = ((model(inputs) - targets) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    model.zero_grad(set_to_none=True)
    return losses
