"""Sparse influence propagation written with torch ops: the reference every fast
kernel is tested against."""

from __future__ import annotations

import torch


def sparse_propagate_reference(
    influence: torch.Tensor,
    path_values: torch.Tensor,
    path_index: torch.Tensor,
    immediate_values: torch.Tensor,
    immediate_index: torch.Tensor,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Propagate an influence matrix through k paths per row and add the immediate term.

    out[..., i, :] = Σ_q path_values[..., i, q]
                         · influence[..., path_index[..., i, q], :]
    out[..., i, immediate_index[i, r]] += immediate_values[..., i, r]

    Args:
      influence: (B?, S, P) previous influence matrix ``M_{t-1}``.
      path_values: (B?, S, k) Jacobian entries ``J_t[i, j]`` of the kept paths.
      path_index: (B?, S, k) or (S, k) source rows ``j`` of the kept paths.
      immediate_values: (B?, S, r) nonzero entries of the immediate term ``I_t``.
      immediate_index: (S, r) parameter columns of those entries, fixed per cell.
      out: (B?, S, P) buffer for the result; must not alias ``influence``.

    Returns:
      (B?, S, P) the new influence matrix ``M_t``.
    """
    if out is None:
        out = torch.empty_like(influence)
    batched = influence.dim() == 3
    k = path_values.shape[-1]
    if k == 0:
        out.zero_()
    for q in range(k):
        index = path_index[..., q]  # (B?, S) or (S,)
        if batched and index.dim() == 1:
            rows = influence[:, index]
        elif batched:
            rows = torch.gather(
                influence, 1, index.unsqueeze(-1).expand(-1, -1, influence.shape[-1])
            )
        else:
            rows = influence[index]
        term = path_values[..., q].unsqueeze(-1) * rows
        if q == 0:
            out.copy_(term)
        else:
            out.add_(term)
    columns = immediate_index
    if batched:
        columns = columns.expand(influence.shape[0], -1, -1)
    out.scatter_add_(-1, columns, immediate_values)
    return out
