"""The learner interface shared by every online gradient estimator."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .._validation import NonFiniteError, check_shape
from ..cells import Cell


def mse_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the output dimensions of one step."""
    return torch.mean((prediction - target) ** 2)


class RecurrentModel(nn.Module):
    """A cell followed by a readout: ``y_t = readout(h_t)``.

    Args:
      cell: the recurrent cell.
      output_size: d, size of ``y_t``; the readout is ``nn.Linear(hidden_size, d)``.
    """

    def __init__(self, cell: Cell, output_size: int, generator=None):
        super().__init__()
        self.cell = cell
        p = next(cell.parameters())
        self.readout = nn.Linear(
            cell.hidden_size, output_size, dtype=p.dtype, device=p.device
        )
        if generator is not None:
            bound = 1.0 / cell.hidden_size**0.5
            with torch.no_grad():
                self.readout.weight.copy_(
                    (
                        torch.rand(output_size, cell.hidden_size, generator=generator)
                        * 2
                        - 1
                    )
                    * bound
                )
                self.readout.bias.zero_()

    @property
    def input_size(self) -> int:
        return self.cell.input_size

    @property
    def output_size(self) -> int:
        return self.readout.out_features

    def forward(self, inputs: torch.Tensor, state: torch.Tensor | None = None):
        """Run a sequence differentiably.

        Args:
          inputs: (T, B, m) or (T, m).
          state: (B, S) or (S,) initial state; zero when omitted.

        Returns:
          outputs (T, B, d) or (T, d), and the final state.
        """
        if state is None:
            batch = inputs.shape[1] if inputs.dim() == 3 else None
            state = self.cell.initial_state(batch)
        outputs = []
        for x in inputs:
            state = self.cell(state, x)
            outputs.append(self.readout(self.cell.output(state)))
        return torch.stack(outputs), state


@dataclass
class LearnerState:
    """Running state of an online learner.

    Attributes:
      hidden: (S,) current cell state ``s_t``.
      step: number of steps taken.
    """

    hidden: torch.Tensor
    step: int = 0


class Learner(abc.ABC):
    """Online learner: ``step(x_t, y_t) -> L_t`` advances the state and learns.

    At each step the learner advances the cell, computes ``L_t`` and, when ``learn``
    is true, the gradient of ``L_t`` for every parameter it trains. The readout's
    gradient is always exact (autograd through the readout alone); the cell's
    gradient is ``(∂L_t/∂h_t)ᵀ M_t`` with the learner's own influence estimate
    ``M_t``. With an optimizer the gradient is applied at once; with ``optimizer=None``
    gradients accumulate in ``.grad`` and parameters stay fixed, which is how the
    tests compare estimators.

    Args:
      model: the cell and readout to train.
      optimizer: any ``torch.optim`` optimizer over (some of) ``model``'s parameters,
        or None to accumulate gradients without updating.
      loss_fn: ``loss_fn(prediction (d,), target (d,)) -> scalar``; MSE by default.
    """

    name: ClassVar[str]
    trains_cell: ClassVar[bool] = True
    trains_readout: ClassVar[bool] = True

    def __init__(
        self,
        model: RecurrentModel,
        optimizer: torch.optim.Optimizer | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = mse_loss,
    ):
        self.model = model
        self.cell = model.cell
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.state = LearnerState(self.cell.initial_state())
        # A shadow learner computes gradients (``last_cell_gradient``) but never
        # writes ``.grad`` or steps, so it can run beside another learner that
        # shares the model, as the reference of a gradient-alignment diagnostic.
        self.shadow = False
        self.last_cell_gradient: torch.Tensor | None = None
        self.last_prediction: torch.Tensor | None = None
        self._params = list(self.cell.parameters())
        p = self._params[0]
        self.dtype = p.dtype
        self.device = p.device

    def reset(self, hidden: torch.Tensor | None = None) -> None:
        """Restart the state (and the learner's traces) from ``hidden`` or zero."""
        start = self.cell.initial_state() if hidden is None else hidden.clone()
        self.state = LearnerState(start)
        self._reset_traces()

    def _reset_traces(self) -> None:  # noqa: B027 (optional hook)
        """Zero the influence estimate or other traces; no-op when there are none."""

    @abc.abstractmethod
    def _advance(self, x: torch.Tensor) -> torch.Tensor:
        """Advance the cell and the learner's traces; return the new (S,) state."""

    def _cell_gradient(self, grad_state: torch.Tensor) -> torch.Tensor | None:
        """Return the (P,) cell gradient from ``grad_state`` (S,) = ∂L_t/∂s_t."""
        return None

    def step(
        self, x: torch.Tensor, y: torch.Tensor | None = None, learn: bool = True
    ) -> torch.Tensor | None:
        """Advance one step, learn from ``y`` when ``learn``, and return ``L_t``.

        Args:
          x: (m,) input ``x_t``.
          y: (d,) target ``y_t``; None when no target exists at this step.
          learn: whether the error of this step reaches the parameters.

        Returns:
          The detached scalar loss, or None when ``y`` is None.

        Raises:
          NonFiniteError: a NaN or Inf in ``x``, ``y``, the state or the gradient.
        """
        step = self.state.step
        self._check_tensor("x", x)
        check_shape("x", x, (self.cell.input_size,))
        if not torch.isfinite(x).all():
            raise NonFiniteError(
                f"{self.name}: input x contains NaN or Inf at step {step}"
            )
        hidden = self._advance(x)
        if not torch.isfinite(hidden).all():
            raise NonFiniteError(f"{self.name}: state became NaN or Inf at step {step}")
        self.state.hidden = hidden
        self.state.step = step + 1
        if y is None:
            return None
        self._check_tensor("y", y)
        check_shape("y", y, (self.model.output_size,))
        if not torch.isfinite(y).all():
            raise NonFiniteError(
                f"{self.name}: target y contains NaN or Inf at step {step}"
            )

        with torch.enable_grad():
            state = hidden.detach().requires_grad_(True)
            prediction = self.model.readout(self.cell.output(state))
            loss = self.loss_fn(prediction, y)
        self.last_prediction = prediction.detach()
        if not torch.isfinite(loss):
            raise NonFiniteError(f"{self.name}: loss is NaN or Inf at step {step}")
        if learn and (self.trains_cell or self.trains_readout):
            self._learn(loss, state)
        return loss.detach()

    def _check_tensor(self, name: str, value) -> None:
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor; got {type(value).__name__} "
                "(convert with torch.as_tensor)"
            )
        if value.dtype != self.dtype:
            raise ValueError(
                f"{name} must have the model's dtype {self.dtype}; got {value.dtype} "
                f"(convert with {name}.to({self.dtype}) or build the cell with "
                f"dtype={value.dtype})"
            )

    def _learn(self, loss: torch.Tensor, state: torch.Tensor) -> None:
        readout = list(self.model.readout.parameters()) if self.trains_readout else []
        grads = torch.autograd.grad(loss, [state, *readout])
        grad_state, readout_grads = grads[0], grads[1:]
        flat = self._cell_gradient(grad_state) if self.trains_cell else None
        if flat is not None and not torch.isfinite(flat).all():
            step = self.state.step - 1
            raise NonFiniteError(f"{self.name}: gradient is NaN or Inf at step {step}")
        self.last_cell_gradient = flat
        if self.shadow:
            return
        for p, g in zip(readout, readout_grads):
            p.grad = g if p.grad is None else p.grad + g
        if flat is not None:
            for p, g in zip(self._params, self.cell.unflatten(flat)):
                p.grad = g.clone() if p.grad is None else p.grad + g
        if self.optimizer is not None:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
