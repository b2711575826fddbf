"""Exact RTRL propagation: one dense matrix product per step plus the immediate term."""

from __future__ import annotations

import torch


def exact_propagate(
    jacobian: torch.Tensor,
    influence: torch.Tensor,
    immediate_values: torch.Tensor,
    immediate_index: torch.Tensor,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``out = jacobian @ influence``, then ``out[..., i, immediate_index[i]] +=
    immediate_values[..., i]``.

    Args:
      jacobian: (B?, S, S) ``J_t``.
      influence: (B?, S, P) ``M_{t-1}``.
      immediate_values: (B?, S, r).
      immediate_index: (S, r) int64 parameter columns, fixed per cell.
      out: (B?, S, P) contiguous buffer, must not overlap ``influence`` (learners
        double-buffer). The product is written into it by ``torch.mm``/``torch.bmm``
        with ``out=`` (no temporary, no copy). Allocated when ``None``.

    Returns ``out``. Any floating dtype torch's matmul supports works; all tensors
    must share it and one device.
    """
    if influence.dim() not in (2, 3):
        raise ValueError(
            "influence must have shape (S, P) or (B, S, P); "
            f"got {tuple(influence.shape)}"
        )
    batched = influence.dim() == 3
    S = influence.shape[-2]
    lead = tuple(influence.shape[:-2])
    if tuple(jacobian.shape) != (*lead, S, S):
        raise ValueError(
            f"jacobian must have shape {(*lead, S, S)}; got {tuple(jacobian.shape)}"
        )
    if immediate_index.dim() != 2 or immediate_index.shape[0] != S:
        raise ValueError(
            f"immediate_index must have shape ({S}, r); "
            f"got {tuple(immediate_index.shape)}"
        )
    if immediate_index.dtype != torch.int64:
        raise TypeError(
            f"immediate_index must have dtype torch.int64; got {immediate_index.dtype}"
        )
    r = immediate_index.shape[1]
    if tuple(immediate_values.shape) != (*lead, S, r):
        raise ValueError(
            f"immediate_values must have shape {(*lead, S, r)}; "
            f"got {tuple(immediate_values.shape)}"
        )
    for name, t in (("jacobian", jacobian), ("immediate_values", immediate_values)):
        if t.dtype != influence.dtype:
            raise TypeError(
                f"{name} has dtype {t.dtype} but influence has {influence.dtype}"
            )
    if out is None:
        out = torch.empty_like(influence, memory_format=torch.contiguous_format)
    else:
        if out.shape != influence.shape or out.dtype != influence.dtype:
            raise ValueError(
                "out must match influence "
                f"({tuple(influence.shape)}, {influence.dtype}); "
                f"got ({tuple(out.shape)}, {out.dtype})"
            )
        if not out.is_contiguous():
            raise ValueError(
                "out must be contiguous so that the product is written in place"
            )
        a0, b0 = out.data_ptr(), influence.data_ptr()
        a1 = a0 + out.numel() * out.element_size()
        b1 = b0 + influence.numel() * influence.element_size()
        if out.numel() and influence.numel() and a0 < b1 and b0 < a1:
            raise ValueError("out overlaps influence; pass a separate buffer")
    if batched:
        torch.bmm(jacobian, influence, out=out)
        columns = immediate_index.expand(influence.shape[0], -1, -1)
    else:
        torch.mm(jacobian, influence, out=out)
        columns = immediate_index
    out.scatter_add_(-1, columns, immediate_values)
    return out
