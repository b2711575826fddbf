"""Hot loops of influence propagation."""

import torch

from ._reference import sparse_propagate_reference

__all__ = ["exact_propagate", "sparse_propagate", "sparse_propagate_reference"]


def sparse_propagate(*args, backend: str = "auto", **kwargs):
    """Dispatch sparse propagation to a kernel backend (only ``reference`` for now)."""
    if backend not in ("auto", "reference"):
        raise ValueError(
            f"backend must be one of ['auto', 'reference']; got backend={backend!r}"
        )
    return sparse_propagate_reference(*args, **kwargs)


def exact_propagate(jacobian, influence, immediate_values, immediate_index, out):
    """``out = J M + I``: one matrix product into ``out``, then the immediate term."""
    torch.mm(jacobian, influence, out=out)
    out.scatter_add_(1, immediate_index, immediate_values)
    return out
