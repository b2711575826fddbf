"""PyTorch custom ops ``torch.ops.sparse_rtrl.*`` for sparse propagation.

* ``sparse_rtrl::sparse_propagate(influence, path_values, path_index,
  immediate_values, immediate_index) -> Tensor`` allocates its result and is
  differentiable in ``influence``, ``path_values`` and ``immediate_values``.
* ``sparse_rtrl::sparse_propagate_out(..., out) -> ()`` writes into ``out``
  (declared as mutated), for learners that double-buffer.

Both run the fastest kernel for the device: numba on CPU, Triton on CUDA when it is
installed, the torch-ops reference otherwise (and for dtypes the kernels do not
support). Fake (meta) implementations make them traceable by ``torch.compile`` and
``torch.export``.
"""

# No ``from __future__ import annotations``: torch.library reads the annotations.
import torch

from ._reference import sparse_propagate_reference

_NAMESPACE = "sparse_rtrl"


def fast_kernel(device: torch.device, dtype: torch.dtype):
    """The fastest available implementation for ``device`` and ``dtype``."""
    from . import _backend

    name = _backend.resolve_backend("auto", device, dtype)
    return _backend.KERNELS[name]()


@torch.library.custom_op(f"{_NAMESPACE}::sparse_propagate_out", mutates_args=("out",))
def sparse_propagate_out(
    influence: torch.Tensor,
    path_values: torch.Tensor,
    path_index: torch.Tensor,
    immediate_values: torch.Tensor,
    immediate_index: torch.Tensor,
    out: torch.Tensor,
) -> None:
    """Write the sparse propagation of ``influence`` into ``out``."""
    kernel = fast_kernel(influence.device, influence.dtype)
    kernel(influence, path_values, path_index, immediate_values, immediate_index, out)


@sparse_propagate_out.register_fake
def _(influence, path_values, path_index, immediate_values, immediate_index, out):
    return None


@torch.library.custom_op(f"{_NAMESPACE}::sparse_propagate", mutates_args=())
def sparse_propagate_op(
    influence: torch.Tensor,
    path_values: torch.Tensor,
    path_index: torch.Tensor,
    immediate_values: torch.Tensor,
    immediate_index: torch.Tensor,
) -> torch.Tensor:
    """Return the sparse propagation of ``influence`` as a new tensor."""
    out = torch.empty_like(influence, memory_format=torch.contiguous_format)
    kernel = fast_kernel(influence.device, influence.dtype)
    kernel(influence, path_values, path_index, immediate_values, immediate_index, out)
    return out


@sparse_propagate_op.register_fake
def _(influence, path_values, path_index, immediate_values, immediate_index):
    return torch.empty_like(influence, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output):
    influence, path_values, path_index, _immediate_values, immediate_index = inputs
    ctx.save_for_backward(influence, path_values, path_index, immediate_index)


def _backward(ctx, grad):
    """Adjoint of the linear map (influence, path_values, immediate_values) -> out."""
    influence, path_values, path_index, immediate_index = ctx.saved_tensors
    batched = influence.dim() == 3
    S, P = influence.shape[-2:]
    k = path_values.shape[-1]
    grad = grad.contiguous()
    need_m, need_v, need_i = (
        ctx.needs_input_grad[0],
        ctx.needs_input_grad[1],
        (ctx.needs_input_grad[3]),
    )
    grad_m = grad_v = grad_i = None
    if batched:
        B = influence.shape[0]
        index = path_index.expand(B, S, k) if path_index.dim() == 2 else path_index
        offset = (torch.arange(B, device=index.device) * S).view(B, 1, 1)
        flat_index = (index + offset).reshape(B * S, k)
        flat_m = influence.reshape(B * S, P)
        flat_g = grad.reshape(B * S, P)
        flat_v = path_values.reshape(B * S, k)
    else:
        flat_index, flat_m, flat_g, flat_v = path_index, influence, grad, path_values
    if need_m:
        grad_m = torch.zeros_like(flat_m)
        for q in range(k):
            grad_m.index_add_(0, flat_index[:, q], flat_g * flat_v[:, q, None])
        grad_m = grad_m.view_as(influence)
    if need_v:
        cols = [(flat_g * flat_m[flat_index[:, q]]).sum(-1) for q in range(k)]
        grad_v = (
            torch.stack(cols, -1) if cols else flat_v.new_zeros(flat_v.shape)
        ).view_as(path_values)
    if need_i:
        columns = immediate_index
        if batched:
            columns = columns.expand(influence.shape[0], -1, -1)
        grad_i = torch.gather(grad, -1, columns)
    return grad_m, grad_v, None, grad_i, None


sparse_propagate_op.register_autograd(_backward, setup_context=_setup_context)

__all__ = ["sparse_propagate_op", "sparse_propagate_out", "sparse_propagate_reference"]
