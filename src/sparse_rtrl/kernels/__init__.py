"""Hot loops of influence propagation.

* :func:`sparse_propagate` — sparse RTRL step ``M_t = (J ∘ paths) M_{t-1} + I_t``,
  dispatched to a backend: ``"auto"`` (numba on CPU, Triton on CUDA when installed,
  else the torch reference), ``"reference"``, ``"numba"`` (CPU), ``"triton"`` (GPU).
* :func:`exact_propagate` — exact RTRL step ``M_t = J M_{t-1} + I_t`` (one matmul into
  a preallocated buffer, then the immediate scatter-add).
* ``torch.ops.sparse_rtrl.sparse_propagate`` / ``sparse_propagate_out`` — the same
  as PyTorch custom ops (traceable, and differentiable for the functional one).
* :func:`estimate_influence_memory`, :func:`check_memory` — size a run before it
  allocates.

Speed and the measured numbers are in docs/performance.md.
"""

from __future__ import annotations

import torch

from ._backend import (
    BACKENDS,
    KERNELS,
    BackendUnavailableError,
    available_backends,
    check_backend_name,
    limit_kernel_threads,
    resolve_backend,
)
from ._checks import SUPPORTED_DTYPES
from ._exact import exact_propagate
from ._memory import available_memory, check_memory, estimate_influence_memory
from ._ops import sparse_propagate_op, sparse_propagate_out
from ._reference import sparse_propagate_reference

__all__ = [
    "limit_kernel_threads",
    "BACKENDS",
    "SUPPORTED_DTYPES",
    "BackendUnavailableError",
    "available_backends",
    "available_memory",
    "check_memory",
    "estimate_influence_memory",
    "exact_propagate",
    "resolve_backend",
    "sparse_propagate",
    "sparse_propagate_op",
    "sparse_propagate_out",
    "sparse_propagate_reference",
]

# (backend, device type, dtype) -> kernel; saves the resolution on every step.
_resolved: dict[tuple[str, str, torch.dtype], object] = {}


def sparse_propagate(
    influence: torch.Tensor,
    path_values: torch.Tensor,
    path_index: torch.Tensor,
    immediate_values: torch.Tensor,
    immediate_index: torch.Tensor,
    out: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """One sparse RTRL step on a backend; see :func:`sparse_propagate_reference`
    for the shapes and the exact semantics every backend reproduces.

    ``backend``: one of :data:`BACKENDS`. ``"auto"`` picks the fastest available
    for the tensors' device and dtype. An unknown name raises ``ValueError``; a
    backend that cannot run on the device (or is not installed) raises
    :class:`BackendUnavailableError`; the fast kernels raise ``TypeError`` for
    dtypes other than float32/float64 (nothing is cast silently).

    ``out`` (same shape as ``influence``, must not overlap it) receives the result
    and is returned; a new tensor is allocated when it is ``None``. Under
    ``torch.compile`` the call goes through the ``sparse_rtrl`` custom op.

    The numba kernel compiles on its first call in a process that has no cache
    yet (a few seconds, once per dtype); see ``sparse_rtrl.kernels._numba``.
    """
    if torch.compiler.is_compiling():
        # Traced as one opaque custom op (it runs the fastest kernel for the device).
        check_backend_name(backend)
        if out is None:
            return sparse_propagate_op(
                influence, path_values, path_index, immediate_values, immediate_index
            )
        sparse_propagate_out(
            influence, path_values, path_index, immediate_values, immediate_index, out
        )
        return out
    key = (backend, influence.device.type, influence.dtype)
    kernel = _resolved.get(key)
    if kernel is None:
        name = resolve_backend(backend, influence.device, influence.dtype)
        kernel = KERNELS[name]()
        _resolved[key] = kernel
    return kernel(
        influence, path_values, path_index, immediate_values, immediate_index, out
    )
