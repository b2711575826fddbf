"""KF-RTRL: an unbiased Kronecker-factored estimate of the tanh RNN's influence."""

from __future__ import annotations

import torch

from .._validation import check_positive
from ..cells import TanhRNNCell
from ._base import Learner, RecurrentModel
from ._uoro import random_signs


class KFRTRL(Learner):
    """Kronecker-factored RTRL (Mujika et al., 2018, "Approximating real-time
    recurrent learning with random Kronecker factors").

    For ``h_t = tanh(W̄ a_t)`` with ``W̄ = [W U b]`` (n × (n+m+1)) and ``a_t =
    [h_{t-1}; x_t; 1]``, the immediate term is the Kronecker product ``I_t = a_tᵀ ⊗
    D_t`` with ``D_t = diag(1 − h_t²)``. The influence is kept as ``M_t ≈ u_t ⊗
    A_t``, ``M_t[k, (i, j)] = u_t[j] A_t[k, i]``:

        c_1, c_2 ∈ {−1, +1}                       (independent random signs)
        p_1 = sqrt(‖J_t A_{t-1}‖ / ‖u_{t-1}‖)     p_2 = sqrt(‖D_t‖ / ‖a_t‖)
        u_t = c_1 p_1 u_{t-1} + c_2 p_2 a_t
        A_t = c_1 J_t A_{t-1} / p_1 + c_2 D_t / p_2
        g_t[(i, j)] = ((∂L_t/∂h_t)ᵀ A_t)[i] · u_t[j]

    ``E[u_t ⊗ A_t] = u_{t-1} ⊗ J_t A_{t-1} + a_t ⊗ D_t`` because ``E[c_1 c_2] = 0``,
    so the estimate is unbiased for a fixed trajectory. The ``p`` constants balance
    the norms of the two factors, which lowers the variance. Each norm gets ``epsilon``
    added, which keeps the first step finite.

    Cost per step ``O(n³)`` (the product ``J_t A_{t-1}``), memory ``O(n² + m)``.
    Only ``TanhRNNCell``: other cells' immediate terms do not factor as one
    Kronecker product.

    Args:
      model: a ``TanhRNNCell`` and readout.
      optimizer: applied at every step; None accumulates gradients in ``.grad``.
      epsilon: added to each norm in p_1 and p_2, > 0.
      generator: source of the random signs.
      loss_fn: per-step loss.

    Raises:
      NotImplementedError: the cell is not a ``TanhRNNCell``.
    """

    name = "kfrtrl"

    def __init__(
        self,
        model: RecurrentModel,
        optimizer=None,
        epsilon: float = 1e-7,
        generator: torch.Generator | None = None,
        loss_fn=None,
    ):
        if not isinstance(model.cell, TanhRNNCell):
            raise NotImplementedError(
                f"learner 'kfrtrl' supports only TanhRNNCell; got "
                f"{type(model.cell).__name__}, whose immediate term is not one "
                "Kronecker product"
            )
        kwargs = {} if loss_fn is None else {"loss_fn": loss_fn}
        super().__init__(model, optimizer, **kwargs)
        self.epsilon = float(check_positive("epsilon", epsilon))
        self.generator = generator
        n, m = self.cell.hidden_size, self.cell.input_size
        self.source_factor = torch.zeros(
            n + m + 1, dtype=self.dtype, device=self.device
        )
        self.unit_factor = torch.zeros(n, n, dtype=self.dtype, device=self.device)
        self._bias_input = torch.ones(1, dtype=self.dtype, device=self.device)

    def trace_nbytes(self) -> int:
        """Bytes of the two factors ``u`` and ``A``."""
        return self.source_factor.nbytes + self.unit_factor.nbytes

    def _draw_signs(self, size: int) -> torch.Tensor:
        return random_signs(size, self.generator, self.dtype, self.device)

    def _reset_traces(self):
        self.source_factor.zero_()
        self.unit_factor.zero_()

    def _advance(self, x):
        previous = self.state.hidden
        hidden, jacobian, _ = self.cell.step_with_jacobians(previous, x)
        derivative = 1.0 - hidden * hidden  # (n,) diagonal of D_t
        source = torch.cat([previous, x, self._bias_input])  # (n + m + 1,) a_t
        propagated = jacobian @ self.unit_factor  # (n, n)
        c1, c2 = self._draw_signs(2)
        eps = self.epsilon
        norm = torch.linalg.vector_norm
        p1 = torch.sqrt((norm(propagated) + eps) / (norm(self.source_factor) + eps))
        p2 = torch.sqrt((norm(derivative) + eps) / (norm(source) + eps))
        self.source_factor = c1 * p1 * self.source_factor + c2 * p2 * source
        self.unit_factor = (c1 / p1) * propagated + torch.diag((c2 / p2) * derivative)
        return hidden

    def _cell_gradient(self, grad_state):
        n, m = self.cell.hidden_size, self.cell.input_size
        outer = torch.outer(grad_state @ self.unit_factor, self.source_factor)
        # Columns of W̄ = [W U b] back to the cell's parameter order W, U, b.
        return torch.cat(
            [
                outer[:, :n].reshape(-1),
                outer[:, n : n + m].reshape(-1),
                outer[:, n + m],
            ]
        )
