"""Truncated backpropagation through time, applied online at every step."""

from __future__ import annotations

from collections import deque

import torch

from .._validation import check_int_range
from ._base import Learner, RecurrentModel

MAX_HORIZON = 1_000_000


class TruncatedBPTT(Learner):
    """Online truncated BPTT with horizon ``h`` (Williams and Peng, 1990, "An
    efficient gradient-based algorithm for on-line training of recurrent network
    trajectories").

        g_t = Σ_{τ = t-h+1}^{t} (∂L_t/∂h_t)ᵀ J_t J_{t-1} ⋯ J_{τ+1} I_τ

    At every step the learner replays the last ``h`` inputs from the stored state
    ``s_{t-h}`` with the cell's differentiable ``forward`` and backpropagates
    ``∂L_t/∂s_t`` into the parameters, treating ``s_{t-h}`` as a constant. With
    ``h`` at least the number of steps since the last reset, nothing is cut and
    ``g_t`` equals exact RTRL's.

    The replay uses the current parameters. With an optimizer that changes them
    between steps, the replayed states can differ slightly from the ones the
    learner ran through, and ``∂L_t/∂s_t`` is taken at the state actually reached.

    Cost per step ``O(h)`` forward and backward cell steps, ``O(h (n² + nm))`` for
    the tanh RNN; memory ``O(h (S + m))`` plus autograd's ``O(h S)`` activations.
    Works on any cell.

    Args:
      model: cell and readout.
      optimizer: applied at every step; None accumulates gradients in ``.grad``.
      horizon: h, the steps to backpropagate through, in ``[1, 1_000_000]``.
      loss_fn: per-step loss.
    """

    name = "tbptt"

    def __init__(
        self,
        model: RecurrentModel,
        optimizer=None,
        horizon: int = 16,
        loss_fn=None,
    ):
        kwargs = {} if loss_fn is None else {"loss_fn": loss_fn}
        super().__init__(model, optimizer, **kwargs)
        self.horizon = check_int_range("horizon", horizon, 1, MAX_HORIZON)
        # Pairs (s_{τ-1}, x_τ) of the last h steps, oldest first.
        self._window: deque[tuple[torch.Tensor, torch.Tensor]] = deque(
            maxlen=self.horizon
        )

    def trace_nbytes(self) -> int:
        """Bytes of the stored states and inputs."""
        return sum(s.nbytes + x.nbytes for s, x in self._window)

    def _reset_traces(self):
        self._window.clear()

    def _advance(self, x):
        previous = self.state.hidden
        with torch.no_grad():
            hidden = self.cell(previous, x)
        self._window.append((previous, x.detach().clone()))
        return hidden

    def _cell_gradient(self, grad_state):
        with torch.enable_grad():
            state = self._window[0][0]
            for _, x in self._window:
                state = self.cell(state, x)
            grads = torch.autograd.grad(
                state, self._params, grad_outputs=grad_state, allow_unused=True
            )
        return torch.cat(
            [
                torch.zeros(p.numel(), dtype=self.dtype, device=self.device)
                if g is None
                else g.reshape(-1)
                for p, g in zip(self._params, grads)
            ]
        )
