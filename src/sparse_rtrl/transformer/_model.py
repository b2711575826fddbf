"""A small causal transformer for next-step prediction of a vector time series."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from .._validation import check_choice, check_int_range
from ._gate import HeadGate

POSITIONS = ("learned", "sinusoidal")


def sinusoidal_positions(length: int, width: int) -> torch.Tensor:
    """Return the (length, width) sine and cosine position table of Vaswani et al.

    Column ``2i`` is ``sin(p / 10000^(2i/width))`` and column ``2i + 1`` the cosine.
    """
    position = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    rate = torch.exp(
        torch.arange(0, width, 2, dtype=torch.float64) * (-math.log(10000.0) / width)
    )
    table = torch.zeros(length, width, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate)[:, : width // 2]
    return table


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention whose per-head outputs pass a ``HeadGate``.

    Args:
      width: model width d; ``heads`` must divide it.
      heads: H, number of heads, each of width d / H.
      gate: the gate applied to the (B, H, T, d/H) head outputs.
      dtype: parameter dtype.
    """

    def __init__(self, width: int, heads: int, gate: HeadGate, dtype=torch.float32):
        super().__init__()
        self.width = width
        self.heads = heads
        self.head_width = width // heads
        # Rows [h·d/H, (h+1)·d/H) of each third of qkv belong to head h.
        self.qkv = nn.Linear(width, 3 * width, dtype=dtype)
        self.proj = nn.Linear(width, width, dtype=dtype)
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend causally: x (B, T, d) -> (B, T, d)."""
        batch, steps, _ = x.shape
        q, k, v = self.qkv(x).split(self.width, dim=-1)
        shape = (batch, steps, self.heads, self.head_width)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))  # (B, H, T, dh)
        heads = functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        heads = self.gate(heads)
        return self.proj(heads.transpose(1, 2).reshape(batch, steps, self.width))


class Block(nn.Module):
    """Pre-LN transformer block: ``x + attn(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, width, heads, mlp_ratio, gate, dtype=torch.float32):
        super().__init__()
        self.norm_attention = nn.LayerNorm(width, dtype=dtype)
        self.attention = CausalSelfAttention(width, heads, gate, dtype)
        self.norm_mlp = nn.LayerNorm(width, dtype=dtype)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width, dtype=dtype),
            nn.GELU(),
            nn.Linear(mlp_ratio * width, width, dtype=dtype),
        )

    def forward(self, x):
        x = x + self.attention(self.norm_attention(x))
        return x + self.mlp(self.norm_mlp(x))


class CausalTransformer(nn.Module):
    """Map a window of inputs to a prediction at every position, causally.

    ``forward`` takes a window ``x_{t-T+1..t}`` (T ≤ context) and returns a
    prediction at each position from the inputs up to that position. Online
    training uses the last one, the prediction of ``y_t``. Positions are aligned to
    the right, so the newest input always has position ``context - 1``.

    Args:
      input_size: m, channels of ``x_t``.
      output_size: d_out, channels of the prediction.
      width: model width d.
      heads: H, attention heads per layer; must divide ``width``.
      layers: number of blocks.
      context: maximum window length, in steps.
      mlp_ratio: hidden width of the MLP as a multiple of d.
      positions: ``learned`` (a trained table) or ``sinusoidal`` (fixed).
      fraction: kept fraction of heads in the backward pass, in (0, 1].
      resample: draw new kept heads at each ``resample_heads()``; else fixed.
      generator: source of the initial weights and of the head draws.
      dtype: float32 (default) or float64.

    Raises:
      ValueError: a size outside its range, ``heads`` not dividing ``width``, or a
        fraction that is outside (0, 1] or keeps no head.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        width: int = 48,
        heads: int = 12,
        layers: int = 2,
        context: int = 32,
        mlp_ratio: int = 2,
        positions: str = "learned",
        fraction: float = 1.0,
        resample: bool = True,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        check_int_range("input_size", input_size, 1, 10**6)
        check_int_range("output_size", output_size, 1, 10**6)
        check_int_range("width", width, 1, 10**5)
        check_int_range("heads", heads, 1, width, f"for width={width}")
        if width % heads:
            raise ValueError(
                f"heads must divide width; got heads={heads}, width={width}"
            )
        check_int_range("layers", layers, 1, 1000)
        check_int_range("context", context, 1, 10**6)
        check_int_range("mlp_ratio", mlp_ratio, 1, 64)
        check_choice("positions", positions, POSITIONS)
        self.input_size = input_size
        self.output_size = output_size
        self.width = width
        self.heads = heads
        self.context = context
        self.positions = positions

        self.embed = nn.Linear(input_size, width, dtype=dtype)
        if positions == "learned":
            self.position_table = nn.Parameter(torch.zeros(context, width, dtype=dtype))
        else:
            self.register_buffer(
                "position_table", sinusoidal_positions(context, width).to(dtype)
            )
        self.blocks = nn.ModuleList(
            Block(width, heads, mlp_ratio, HeadGate(heads), dtype)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(width, dtype=dtype)
        self.head = nn.Linear(width, output_size, dtype=dtype)
        self._initialize(generator)
        self.set_gradient_heads(fraction, resample, generator)

    def _initialize(self, generator):
        # N(0, 0.02²) weights and zero biases, the GPT-2 convention, drawn from the
        # generator so a seed fixes the model.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                weight = torch.randn(
                    module.weight.shape, generator=generator, dtype=torch.float64
                )
                with torch.no_grad():
                    module.weight.copy_(0.02 * weight)
                    module.bias.zero_()
        if self.positions == "learned":
            table = torch.randn(
                self.position_table.shape, generator=generator, dtype=torch.float64
            )
            with torch.no_grad():
                self.position_table.copy_(0.02 * table)

    @property
    def gates(self) -> list[HeadGate]:
        """The head gates, one per layer, in layer order."""
        return [block.attention.gate for block in self.blocks]

    @property
    def attentions(self) -> list[CausalSelfAttention]:
        return [block.attention for block in self.blocks]

    def set_gradient_heads(
        self,
        fraction: float,
        resample: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        """Replace every layer's gate with a new ``HeadGate(heads, fraction, ...)``."""
        for block in self.blocks:
            gate = HeadGate(self.heads, fraction, resample, generator)
            block.attention.gate = gate.to(self.head.weight.device)

    def resample_heads(self) -> None:
        """Draw new kept heads in every layer whose gate resamples."""
        for gate in self.gates:
            gate.resample_heads()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict at every position: x (B, T, m) -> (B, T, d_out), or unbatched."""
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(0)
        steps = x.shape[1]
        if steps > self.context:
            raise ValueError(
                f"window must have at most context={self.context} steps; got {steps}"
            )
        hidden = self.embed(x) + self.position_table[self.context - steps :]
        for block in self.blocks:
            hidden = block(hidden)
        out = self.head(self.norm(hidden))
        return out[0] if unbatched else out
