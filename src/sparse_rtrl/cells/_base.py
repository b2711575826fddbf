"""The interface every recurrent cell implements for online learning."""

from __future__ import annotations

import abc

import torch
from torch import nn


class Cell(nn.Module, abc.ABC):
    """A recurrent cell ``s_t = F(s_{t-1}, x_t; θ)`` with explicit derivatives.

    The state ``s`` has ``state_size`` entries (``S``); the readout sees the rows
    ``output_rows`` of it (``h``, of size ``hidden_size``). The parameters ``θ`` are
    the cell's ``nn.Parameter`` objects in registration order, each flattened
    row-major, giving ``num_params`` (``P``) columns of the influence matrix.

    Subclasses implement ``forward`` (differentiable, for BPTT) and
    ``step_with_jacobians`` (no autograd, for the online step), and build
    ``immediate_index``: the ``r`` parameter columns that the immediate term can touch
    in each state row.
    """

    input_size: int
    hidden_size: int
    state_size: int
    # State rows per unit: 1 for a cell whose state is h, 2 for (h, c).
    state_multiplier: int = 1

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def output_rows(self) -> slice:
        """State rows that form the hidden vector ``h`` fed to the readout."""
        return slice(0, self.hidden_size)

    def initial_state(self, batch: int | None = None) -> torch.Tensor:
        """Return the zero state, (S,) or (batch, S)."""
        p = next(self.parameters())
        shape = (self.state_size,) if batch is None else (batch, self.state_size)
        return torch.zeros(shape, dtype=p.dtype, device=p.device)

    def output(self, state: torch.Tensor) -> torch.Tensor:
        """Return ``h`` from ``state``: (..., S) -> (..., hidden_size)."""
        return state[..., self.output_rows]

    @abc.abstractmethod
    def forward(self, state: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Advance differentiably: state (..., S), x (..., m) -> (..., S)."""

    @abc.abstractmethod
    def step_with_jacobians(
        self, state: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Advance one step and return the derivatives RTRL needs.

        Args:
          state: (S,) previous state ``s_{t-1}``.
          x: (m,) input ``x_t``.

        Returns:
          new_state: (S,) ``s_t``.
          jacobian: (S, S) ``J_t = ∂s_t/∂s_{t-1}``.
          immediate_values: (S, r) entries of ``I_t = ∂s_t/∂θ`` at the columns
            ``immediate_index``; all other entries of ``I_t`` are zero.
        """

    @property
    @abc.abstractmethod
    def immediate_index(self) -> torch.Tensor:
        """(S, r) int64 parameter columns of the nonzero entries of ``I_t``."""

    def unflatten(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Split a (P,) vector into tensors shaped like the parameters, in order."""
        pieces = []
        offset = 0
        for p in self.parameters():
            pieces.append(flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
        return pieces

    def flat_parameters(self) -> torch.Tensor:
        """Return the (P,) concatenation of the flattened parameters."""
        return torch.cat([p.detach().reshape(-1) for p in self.parameters()])
