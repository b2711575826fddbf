"""LSTM cell with a hand-derived Jacobian and immediate term."""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validation import check_int_range
from ._base import Cell


class LSTMCell(Cell):
    """LSTM with state ``s = (h, c)`` and gates in the order ``i, f, g, o``.

        z_t = W h_{t-1} + U x_t + b                  (4n,)
        i, f, o = σ(z_i), σ(z_f), σ(z_o)    g = tanh(z_g)
        c_t = f ⊙ c_{t-1} + i ⊙ g                    h_t = o ⊙ tanh(c_t)

    Derivatives, with the gate slopes ``a_i = g i(1 - i)``, ``a_f = c_{t-1} f(1 - f)``,
    ``a_g = i (1 - g²)``, ``a_o = tanh(c_t) o(1 - o)`` and ``e = o (1 - tanh²(c_t))``:

        ∂c/∂h = diag(a_i) W_i + diag(a_f) W_f + diag(a_g) W_g    ∂c/∂c = diag(f)
        ∂h/∂h = diag(a_o) W_o + diag(e) ∂c/∂h                    ∂h/∂c = diag(e f)

    where ``W_q`` are the n rows of W for gate q. Rows ``h_i`` and ``c_i`` of the
    immediate term touch only the gate rows ``q·n + i`` of unit i, with ``[W|U|b]``
    row ``q·n + i`` written as ``θ_qi``:

        ∂c_i/∂θ_qi = a_q[i] (h_{t-1}, x_t, 1)          q ∈ {i, f, g}, zero for o
        ∂h_i/∂θ_qi = e[i] a_q[i] (h_{t-1}, x_t, 1)     q ∈ {i, f, g}
        ∂h_i/∂θ_oi = a_o[i] (h_{t-1}, x_t, 1)

    Parameters in influence-column order: ``weight_hh`` W (4n, n), ``weight_ih``
    U (4n, m), ``bias`` b (4n,), so ``P = 4n(n + m + 1)``, ``S = 2n`` and
    ``r = 4(n + m + 1)``.

    Args:
      input_size: m, size of ``x_t``.
      hidden_size: n, number of units; the state has 2n rows.
      gain: scale of the initial W (entries ~ N(0, gain²/n)).
      forget_bias: initial bias of the forget gate; 1 keeps c from fading at the
        start of training.
      generator: source of the initial weights.
      dtype: float32 (default) or float64.
      device: any torch device; CPU by default.
    """

    state_multiplier = 2

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        gain: float = 1.0,
        forget_bias: float = 1.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        super().__init__()
        check_int_range("input_size", input_size, 1, 10**6)
        check_int_range("hidden_size", hidden_size, 1, 10**5)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.state_size = 2 * hidden_size
        n, m = hidden_size, input_size
        w = torch.randn(4 * n, n, generator=generator, dtype=torch.float64) * gain
        u = torch.randn(4 * n, m, generator=generator, dtype=torch.float64)
        b = torch.zeros(4 * n, dtype=torch.float64)
        b[n : 2 * n] = forget_bias
        self.weight_hh = nn.Parameter((w / math.sqrt(n)).to(dtype=dtype, device=device))
        self.weight_ih = nn.Parameter((u / math.sqrt(m)).to(dtype=dtype, device=device))
        self.bias = nn.Parameter(b.to(dtype=dtype, device=device))
        self.register_buffer(
            "_immediate_index", self._build_immediate_index(n, m, device), False
        )

    @staticmethod
    def _build_immediate_index(n: int, m: int, device) -> torch.Tensor:
        units = torch.arange(n, device=device)
        gate_rows = torch.arange(4, device=device) * n + units.unsqueeze(1)  # (n, 4)
        gate_rows = gate_rows.unsqueeze(2)  # (n, 4, 1)
        w_cols = gate_rows * n + torch.arange(n, device=device)  # (n, 4, n)
        u_cols = 4 * n * n + gate_rows * m + torch.arange(m, device=device)  # (n, 4, m)
        b_cols = 4 * n * (n + m) + gate_rows  # (n, 4, 1)
        per_unit = torch.cat([w_cols, u_cols, b_cols], dim=2).reshape(n, -1)
        # Rows h_i and c_i depend on the same gate rows of unit i.
        return torch.cat([per_unit, per_unit], dim=0)  # (2n, 4(n + m + 1))

    @property
    def immediate_index(self) -> torch.Tensor:
        return self._immediate_index

    def forward(self, state, x):
        n = self.hidden_size
        h, c = state[..., :n], state[..., n:]
        z = h @ self.weight_hh.T + x @ self.weight_ih.T + self.bias
        i, f, g, o = z.split(n, dim=-1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        return torch.cat([h_new, c_new], dim=-1)

    @torch.no_grad()
    def step_with_jacobians(self, state, x):
        n = self.hidden_size
        h, c = state[:n], state[n:]
        z = torch.addmv(torch.mv(self.weight_ih, x), self.weight_hh, h) + self.bias
        i = torch.sigmoid(z[:n])
        f = torch.sigmoid(z[n : 2 * n])
        g = torch.tanh(z[2 * n : 3 * n])
        o = torch.sigmoid(z[3 * n :])
        c_new = f * c + i * g
        tanh_c = torch.tanh(c_new)
        h_new = o * tanh_c

        slope_i = g * i * (1 - i)
        slope_f = c * f * (1 - f)
        slope_g = i * (1 - g * g)
        slope_o = tanh_c * o * (1 - o)
        out_gain = o * (1 - tanh_c * tanh_c)  # e = ∂h_t/∂c_t, (n,)

        w = self.weight_hh.view(4, n, n)
        dc_dh = (
            slope_i.unsqueeze(1) * w[0]
            + slope_f.unsqueeze(1) * w[1]
            + slope_g.unsqueeze(1) * w[2]
        )  # (n, n)
        dh_dh = slope_o.unsqueeze(1) * w[3] + out_gain.unsqueeze(1) * dc_dh
        jacobian = torch.cat(
            [
                torch.cat([dh_dh, torch.diag(out_gain * f)], dim=1),
                torch.cat([dc_dh, torch.diag(f)], dim=1),
            ],
            dim=0,
        )  # (2n, 2n)

        zero = torch.zeros_like(slope_o)
        c_slopes = torch.stack([slope_i, slope_f, slope_g, zero], dim=1)  # (n, 4)
        h_slopes = out_gain.unsqueeze(1) * c_slopes
        h_slopes[:, 3] = slope_o
        slopes = torch.cat([h_slopes, c_slopes], dim=0)  # (2n, 4)
        one = torch.ones(1, dtype=h.dtype, device=h.device)
        source = torch.cat([h, x, one])  # (n + m + 1,)
        immediate = slopes.unsqueeze(2) * source  # (2n, 4, n + m + 1)
        return torch.cat([h_new, c_new]), jacobian, immediate.reshape(2 * n, -1)
