"""Tanh RNN cell with a hand-derived Jacobian and immediate term."""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validation import check_int_range
from ._base import Cell


class TanhRNNCell(Cell):
    """``h_t = tanh(W h_{t-1} + U x_t + b)``.

    Derivatives, with ``d_t = 1 - h_t²``:

        J_t = diag(d_t) W
        ∂h_i/∂W_ij = d_i h_{t-1,j}    ∂h_i/∂U_ij = d_i x_j    ∂h_i/∂b_i = d_i

    Parameters in influence-column order: ``weight_hh`` W (n, n), ``weight_ih``
    U (n, m), ``bias`` b (n,), so ``P = n² + nm + n`` and ``r = n + m + 1``.

    Args:
      input_size: m, size of ``x_t``.
      hidden_size: n, number of units.
      gain: spectral scale of the initial W (entries ~ N(0, gain²/n)).
      generator: source of the initial weights.
      dtype: float32 (default) or float64.
      device: any torch device; CPU by default.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        gain: float = 0.9,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        super().__init__()
        check_int_range("input_size", input_size, 1, 10**6)
        check_int_range("hidden_size", hidden_size, 1, 10**5)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.state_size = hidden_size
        n, m = hidden_size, input_size
        w = torch.randn(n, n, generator=generator, dtype=torch.float64) * gain
        u = torch.randn(n, m, generator=generator, dtype=torch.float64)
        self.weight_hh = nn.Parameter((w / math.sqrt(n)).to(dtype=dtype, device=device))
        self.weight_ih = nn.Parameter((u / math.sqrt(m)).to(dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(n, dtype=dtype, device=device))
        self.register_buffer(
            "_immediate_index", self._build_immediate_index(n, m, device), False
        )

    @staticmethod
    def _build_immediate_index(n: int, m: int, device) -> torch.Tensor:
        rows = torch.arange(n, device=device).unsqueeze(1)
        w_cols = rows * n + torch.arange(n, device=device)  # (n, n)
        u_cols = n * n + rows * m + torch.arange(m, device=device)  # (n, m)
        b_cols = n * n + n * m + rows  # (n, 1)
        return torch.cat([w_cols, u_cols, b_cols], dim=1)  # (n, n + m + 1)

    @property
    def immediate_index(self) -> torch.Tensor:
        return self._immediate_index

    def forward(self, state, x):
        return torch.tanh(state @ self.weight_hh.T + x @ self.weight_ih.T + self.bias)

    @torch.no_grad()
    def step_with_jacobians(self, state, x):
        h = torch.tanh(
            torch.addmv(torch.mv(self.weight_ih, x), self.weight_hh, state) + self.bias
        )
        d = 1.0 - h * h  # (n,)
        jacobian = d.unsqueeze(1) * self.weight_hh  # (n, n)
        one = torch.ones(1, dtype=h.dtype, device=h.device)
        source = torch.cat([state, x, one])  # (n + m + 1,)
        immediate = d.unsqueeze(1) * source  # (n, n + m + 1)
        return h, jacobian, immediate
