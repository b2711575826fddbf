"""A small causal transformer trained online with sparse gradient transport."""

from ._analysis import analyse_heads, head_gradient_norms, summarize_heads
from ._gate import HeadGate, kept_head_count
from ._model import (
    POSITIONS,
    Block,
    CausalSelfAttention,
    CausalTransformer,
    sinusoidal_positions,
)
from ._online import OnlineTransformer, pretrain_transformer

__all__ = [
    "POSITIONS",
    "Block",
    "CausalSelfAttention",
    "CausalTransformer",
    "HeadGate",
    "OnlineTransformer",
    "analyse_heads",
    "head_gradient_norms",
    "kept_head_count",
    "pretrain_transformer",
    "sinusoidal_positions",
    "summarize_heads",
]
