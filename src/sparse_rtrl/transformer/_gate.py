"""Sparse gradient transport: gradient flows back through a subset of heads only."""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from .._validation import check_int_range


def kept_head_count(heads: int, fraction: float) -> int:
    """Return ``⌊fraction · heads⌋``, the number of heads a kept fraction keeps.

    Raises:
      ValueError: ``heads`` is not a positive integer, ``fraction`` is outside
        (0, 1], or ``fraction`` keeps no head of ``heads``.
    """
    check_int_range("heads", heads, 1, 10**6)
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, numbers.Real)
        or not 0 < fraction <= 1
    ):
        raise ValueError(f"fraction must be in (0, 1]; got fraction={fraction!r}")
    # The tolerance makes float fractions such as 1/3 of 12 heads give 4, not 3.
    count = math.floor(float(fraction) * heads + 1e-9)
    if count == 0:
        raise ValueError(
            f"fraction={float(fraction):.4g} keeps no head of {heads} heads; "
            f"the smallest valid fraction is 1/{heads}"
        )
    return count


class HeadGate(nn.Module):
    """Identity in the forward pass; in the backward pass only kept heads pass gradient.

        forward:   out = x
        backward:  ∂L/∂x[:, h] = keep[h] · ∂L/∂out[:, h]

    It is applied to the per-head attention outputs, before the heads are mixed by
    the output projection, so a dropped head's query, key and value weights get no
    gradient from this step, and nothing upstream gets gradient through that head.
    The forward output is the input tensor itself when every head is kept, and
    ``torch.where(keep, x, x.detach())`` otherwise, which selects the same values,
    so the forward pass is bitwise unchanged.

    Args:
      heads: H, number of attention heads.
      fraction: kept fraction of heads, in (0, 1]; ``⌊fraction · H⌋`` heads are
        kept and that count must be at least 1.
      resample: draw a new subset at every ``resample_heads()`` call (once per time
        step in online training); otherwise the subset drawn at construction stays.
      generator: source of the subset draws.
    """

    def __init__(
        self,
        heads: int,
        fraction: float = 1.0,
        resample: bool = True,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.kept_count = kept_head_count(heads, fraction)
        self.heads = heads
        self.fraction = float(fraction)
        self.resample = resample
        self.generator = generator
        self.register_buffer("keep", torch.ones(heads, dtype=torch.bool), False)
        self.draw()

    def draw(self) -> torch.Tensor:
        """Draw a new subset of ``kept_count`` heads and return the (H,) bool mask."""
        if self.kept_count == self.heads:
            self.keep.fill_(True)
            return self.keep
        chosen = torch.randperm(self.heads, generator=self.generator)[: self.kept_count]
        self.keep.fill_(False)
        self.keep[chosen.to(self.keep.device)] = True
        return self.keep

    def resample_heads(self) -> None:
        """Draw a new subset when ``resample`` is set; a fixed subset stays."""
        if self.resample:
            self.draw()

    def set_keep(self, keep: torch.Tensor) -> None:
        """Keep exactly the heads in ``keep`` (H,) bool until the next draw.

        Any mask is accepted, including none or one head, for the per-head analysis.
        """
        if keep.shape != (self.heads,) or keep.dtype != torch.bool:
            raise ValueError(
                f"keep must be a bool tensor of shape ({self.heads},); got "
                f"{keep.dtype} of shape {tuple(keep.shape)}"
            )
        self.keep.copy_(keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate ``x``: (..., H, T, head_dim), heads on the third axis from the end."""
        if bool(self.keep.all()):
            return x
        mask = self.keep.view(self.heads, 1, 1)
        return torch.where(mask, x, x.detach())

    def extra_repr(self) -> str:
        return f"heads={self.heads}, kept={self.kept_count}, resample={self.resample}"
