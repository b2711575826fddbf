"""GPU kernel for sparse influence propagation (Triton).

Two launches on the tensors' stream:

1. ``_paths_kernel``, grid (S, ceil(P / BLOCK), B): program (i, t, b) writes
   ``out[b, i, t·BLOCK : (t+1)·BLOCK] = Σ_q v[b, i, q] · M[b, idx[b|0, i, q], ...]``.
   Row programs vary fastest, so the programs running together share one column
   block of M in L2; every block of M comes from HBM about once and every output
   block is written once, with coalesced, vectorised loads and stores.
2. ``_immediate_kernel``, grid (S, ceil(r / RBLOCK), B): adds the immediate term,
   ``out[b, i, iidx[i, :]] += ival[b, i, :]`` (no two programs touch one element:
   columns are distinct within a row). Launch order on one stream orders it after 1.

Triton is an optional dependency (``pip install sparse-rtrl[gpu]``); this module
imports it lazily so that the package works without it. With ``TRITON_INTERPRET=1``
set before triton is first imported, Triton's interpreter runs the same kernels on
CPU tensors (slowly): the tests use that to check the kernels' logic without a GPU.
Index ranges are not checked on the GPU (a check would need a device sync); the
dispatcher checks them only in the interpreter. Out-of-range indices on a GPU read
or write outside the buffers, as with any unchecked CUDA gather.
"""

from __future__ import annotations

import functools
import os

import torch

from ._checks import check_contiguous, check_propagate_args

BLOCK = 1024
RBLOCK = 128


def interpreting() -> bool:
    """True when Triton's CPU interpreter is switched on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _launch_options() -> dict:
    """Round a*x + y as the reference does (two roundings, no fused multiply-add).
    The interpreter takes no such option; it computes with numpy, which never fuses."""
    return {} if interpreting() else {"enable_fp_fusion": False}


@functools.cache
def _import_error() -> str | None:
    try:
        import triton  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install raising anything else
        return f"{type(exc).__name__}: {exc}"
    return None


def triton_available() -> bool:
    """True when ``import triton`` works (whether a GPU exists is not checked)."""
    return _import_error() is None


@functools.cache
def _kernels():
    """Compile-on-first-use: define the @triton.jit kernels (import triton here)."""
    import triton
    import triton.language as tl

    @triton.jit
    def _paths_kernel(
        m_ptr,
        v_ptr,
        idx_ptr,
        out_ptr,
        S,
        P,
        K,
        idx_batch_stride,
        BLOCK: tl.constexpr,
    ):
        i = tl.program_id(0).to(tl.int64)
        t = tl.program_id(1)
        b = tl.program_id(2).to(tl.int64)
        cols = t * BLOCK + tl.arange(0, BLOCK)
        mask = cols < P
        m_base = m_ptr + b * S * P
        row_base = b * S * K + i * K
        idx_base = b * idx_batch_stride + i * K
        acc = tl.zeros((BLOCK,), dtype=out_ptr.dtype.element_ty)
        for q in range(0, K):
            a = tl.load(v_ptr + row_base + q)
            j = tl.load(idx_ptr + idx_base + q)
            src = tl.load(m_base + j * P + cols, mask=mask, other=0.0)
            # mul then add, as the reference rounds (no fused multiply-add).
            term = a * src
            acc = acc + term
        tl.store(out_ptr + b * S * P + i * P + cols, acc, mask=mask)

    @triton.jit
    def _immediate_kernel(out_ptr, ival_ptr, iidx_ptr, S, P, R, RBLOCK: tl.constexpr):
        i = tl.program_id(0).to(tl.int64)
        t = tl.program_id(1)
        b = tl.program_id(2).to(tl.int64)
        offs = t * RBLOCK + tl.arange(0, RBLOCK)
        mask = offs < R
        cols = tl.load(iidx_ptr + i * R + offs, mask=mask, other=0)
        vals = tl.load(ival_ptr + b * S * R + i * R + offs, mask=mask, other=0.0)
        ptrs = out_ptr + b * S * P + i * P + cols
        cur = tl.load(ptrs, mask=mask, other=0.0)
        tl.store(ptrs, cur + vals, mask=mask)

    return _paths_kernel, _immediate_kernel


def sparse_propagate_triton(
    influence: torch.Tensor,
    path_values: torch.Tensor,
    path_index: torch.Tensor,
    immediate_values: torch.Tensor,
    immediate_index: torch.Tensor,
    out: torch.Tensor | None = None,
    *,
    block: int = BLOCK,
) -> torch.Tensor:
    """Sparse propagation with the Triton kernels (CUDA tensors; CPU tensors only
    under ``TRITON_INTERPRET=1``).

    Same signature and result as :func:`sparse_propagate_reference`; float32 and
    float64 only (``TypeError`` otherwise). ``influence`` and ``out`` must be
    contiguous; the small operands are made contiguous (O(S·k + S·r) copies). The
    first call per dtype and block size JIT-compiles (seconds); Triton caches the
    binaries in ``~/.triton/cache``.
    """
    error = _import_error()
    if error is not None:
        raise RuntimeError(
            f"the triton backend needs the triton package ({error}); "
            "install it with `pip install sparse-rtrl[gpu]`"
        )
    shapes = check_propagate_args(
        influence, path_values, path_index, immediate_values, immediate_index, out
    )
    if influence.device.type != "cuda" and not interpreting():
        raise ValueError(
            f"the triton backend runs on CUDA tensors; got device {influence.device}. "
            "Use backend='numba' or 'reference' on CPU (or set TRITON_INTERPRET=1 "
            "before importing triton to run the interpreter)"
        )
    if block < 16 or block & (block - 1):
        raise ValueError(f"block must be a power of two >= 16; got block={block}")
    if out is None:
        out = torch.empty_like(influence, memory_format=torch.contiguous_format)
    check_contiguous("influence", influence)
    check_contiguous("out", out)
    batch, S, P, k, r = (
        shapes.batch,
        shapes.state_size,
        shapes.num_params,
        shapes.k,
        shapes.r,
    )
    v = path_values.contiguous()
    idx = path_index.contiguous()
    ival = immediate_values.contiguous()
    iidx = immediate_index.contiguous()
    if interpreting():
        _check_indices_host(idx, iidx, S, P)
    idx_batch_stride = 0 if shapes.shared_index else S * k
    paths_kernel, immediate_kernel = _kernels()
    if S == 0 or P == 0 or batch == 0:
        return out
    paths_kernel[(S, triton_cdiv(P, block), batch)](
        influence,
        v,
        idx,
        out,
        S,
        P,
        k,
        idx_batch_stride,
        BLOCK=block,
        **_launch_options(),
    )
    if r:
        immediate_kernel[(S, triton_cdiv(r, RBLOCK), batch)](
            out, ival, iidx, S, P, r, RBLOCK=RBLOCK, **_launch_options()
        )
    return out


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _check_indices_host(idx: torch.Tensor, iidx: torch.Tensor, S: int, P: int) -> None:
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= S):
        raise IndexError(f"path_index has entries outside [0, {S})")
    if iidx.numel() and (int(iidx.min()) < 0 or int(iidx.max()) >= P):
        raise IndexError(f"immediate_index has entries outside [0, {P})")
