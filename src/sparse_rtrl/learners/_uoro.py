"""UORO: an unbiased rank-one estimate of the influence matrix."""

from __future__ import annotations

import torch

from .._validation import check_positive
from ._base import Learner, RecurrentModel


def random_signs(
    size: int, generator: torch.Generator | None, dtype: torch.dtype, device
) -> torch.Tensor:
    """Draw ``size`` independent signs ±1 with probability 1/2 each."""
    bits = torch.randint(0, 2, (size,), generator=generator)
    return (2 * bits - 1).to(dtype=dtype, device=device)


class UORO(Learner):
    """Unbiased Online Recurrent Optimization (Tallec and Ollivier, 2018,
    "Unbiased online recurrent optimization").

        ν_t ∈ {−1, +1}^S                      (independent random signs)
        ρ_0 = sqrt(‖θ̃_{t-1}‖ / ‖J_t s̃_{t-1}‖)   ρ_1 = sqrt(‖ν_tᵀ I_t‖ / ‖ν_t‖)
        s̃_t = ρ_0 J_t s̃_{t-1} + ρ_1 ν_t
        θ̃_t = θ̃_{t-1} / ρ_0 + ν_tᵀ I_t / ρ_1
        M_t ≈ s̃_t θ̃_tᵀ,   g_t = ((∂L_t/∂h_t)ᵀ s̃_t) θ̃_t

    ``E[s̃_t θ̃_tᵀ] = M_t`` for a fixed trajectory: the cross terms vanish because
    ``E[ν_t] = 0`` and ``ρ_1`` is the same for ``ν_t`` and ``−ν_t``, and ``ρ_0`` cancels
    in the product. The ρ scalings only reduce the variance. Each norm gets
    ``epsilon`` added (numerator and denominator), which keeps the first step (zero
    ``s̃`` and ``θ̃``) finite and leaves the estimate unbiased.

    Cost per step ``O(S² + S r + P)`` (``O(n²)`` for the tanh RNN), memory
    ``O(S + P)``. Works on any cell.

    Args:
      model: cell and readout.
      optimizer: applied at every step; None accumulates gradients in ``.grad``.
      epsilon: added to each norm in ρ_0 and ρ_1, > 0.
      generator: source of the random signs.
      loss_fn: per-step loss.
    """

    name = "uoro"

    def __init__(
        self,
        model: RecurrentModel,
        optimizer=None,
        epsilon: float = 1e-7,
        generator: torch.Generator | None = None,
        loss_fn=None,
    ):
        kwargs = {} if loss_fn is None else {"loss_fn": loss_fn}
        super().__init__(model, optimizer, **kwargs)
        self.epsilon = float(check_positive("epsilon", epsilon))
        self.generator = generator
        self.state_tilde = torch.zeros(
            self.cell.state_size, dtype=self.dtype, device=self.device
        )
        self.param_tilde = torch.zeros(
            self.cell.num_params, dtype=self.dtype, device=self.device
        )

    def trace_nbytes(self) -> int:
        """Bytes of the two factors ``s̃`` and ``θ̃``."""
        return self.state_tilde.nbytes + self.param_tilde.nbytes

    def _draw_signs(self, size: int) -> torch.Tensor:
        return random_signs(size, self.generator, self.dtype, self.device)

    def _reset_traces(self):
        self.state_tilde.zero_()
        self.param_tilde.zero_()

    def _advance(self, x):
        hidden, jacobian, immediate = self.cell.step_with_jacobians(
            self.state.hidden, x
        )
        signs = self._draw_signs(self.cell.state_size)  # (S,)
        forward = jacobian @ self.state_tilde  # (S,)
        projected = torch.zeros_like(self.param_tilde)
        projected.index_add_(
            0,
            self.cell.immediate_index.reshape(-1),
            (signs.unsqueeze(1) * immediate).reshape(-1),
        )  # (P,) ν_tᵀ I_t
        eps = self.epsilon
        rho0 = torch.sqrt(
            (torch.linalg.vector_norm(self.param_tilde) + eps)
            / (torch.linalg.vector_norm(forward) + eps)
        )
        rho1 = torch.sqrt(
            (torch.linalg.vector_norm(projected) + eps)
            / (torch.linalg.vector_norm(signs) + eps)
        )
        self.state_tilde = rho0 * forward + rho1 * signs
        self.param_tilde = self.param_tilde / rho0 + projected / rho1
        return hidden

    def _cell_gradient(self, grad_state):
        rows = self.cell.output_rows
        return (grad_state[rows] @ self.state_tilde[rows]) * self.param_tilde
