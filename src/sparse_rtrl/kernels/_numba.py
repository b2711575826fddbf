"""Fused CPU kernel for sparse influence propagation (numba, one parallel region).

The kernel computes, for every stream b, row i and column c,

    out[b, i, c] = Σ_q v[b, i, q] · M[b, idx[b|0, i, q], c]   (then += immediate)

in a single ``prange`` over (stream, block of rows) jobs. Each job walks the columns
in tiles: for a tile [c0, c1) it writes ``out[b, i, c0:c1]`` for its rows, reading
the k source row segments ``M[b, j, c0:c1]``. A tile of M (S rows × TILE columns,
about 8 MiB) stays in the shared L3 cache while the row blocks of one stream walk it
together, so each block of M comes from memory about once and each output block is
written once; the inner loops run over contiguous columns and vectorise (AVX-512
here). With k <= 1 there is no reuse to gain and whole rows are streamed. Each job
then adds the immediate terms of its own rows (r scattered adds per row), so no two
jobs touch one output element and the whole call is one parallel region: on a
loaded 2-core machine every extra region can cost a scheduler tick.

Measured alternatives (docs/performance.md): tiles of 1024-4096 columns (4-16 KiB
row segments) ran ~1.7x slower than row streaming even for a plain copy (probably
the hardware prefetchers restarting at every segment), so tiles are wide and sit
in L3 rather than L2; one parallel region per tile was far worse on a shared
machine.

The summation order is the reference's (q = 0, 1, ..., k-1, then the immediate
term) and no fast-math flag is used, so results match
:func:`sparse_propagate_reference` to the last bit in practice.

Compilation: there are two compiled variants, a serial one for small problems
(fewer than ``SERIAL_WORK`` multiply-adds, where waking the thread pool costs more
than it saves) and the parallel one. The first call of each variant for each dtype
compiles it: measured 2-3 s (serial) and 3.5 s (parallel) on this 2-core machine,
so about 6 s per dtype in all. ``cache=True`` stores the machine code in
``__pycache__`` (or ``NUMBA_CACHE_DIR``): in later processes the first call loads it
in about 0.5 s and further calls cost the kernel time plus ~16 µs of Python checks
and dispatch.
"""

from __future__ import annotations

import os

import numba
import numpy as np
import torch
from numba import njit, prange

from ._checks import check_contiguous, check_propagate_args

#: Bytes of M (all S rows × TILE columns) one column tile should span. A tile of
#: 8 MiB stays in the shared L3 while every output row reads its k source rows from
#: it; many paths per row (k >= 16) want a tile closer to the L2 size. Tuned on the
#: 2-core EPYC of docs/performance.md; override with SPARSE_RTRL_TILE_BYTES.
TILE_BYTES = int(os.environ.get("SPARSE_RTRL_TILE_BYTES", str(8 << 20)))
TILE_BYTES_MANY_PATHS = TILE_BYTES // 4
_MIN_TILE = 1024  # shorter row segments defeat the hardware prefetchers (measured)
_MAX_TILE = 16384


@njit(cache=True, nogil=True)
def _first_bad_index(idx, iidx, S, P):  # pragma: no cover - jitted
    """-1 when every index is in range, else the first bad flat position (path
    indices first, then immediate ones offset by ``idx.size``)."""
    nidx, _, k = idx.shape
    r = iidx.shape[1]
    for b in range(nidx):
        for i in range(S):
            for q in range(k):
                j = idx[b, i, q]
                if j < 0 or j >= S:
                    return (b * S + i) * k + q
    for i in range(S):
        for q in range(r):
            c = iidx[i, q]
            if c < 0 or c >= P:
                return nidx * S * k + i * r + q
    return -1


@njit(cache=True, nogil=True)
def _rows_job(M, v, idx, ival, iidx, out, tile, b, i0, i1):  # pragma: no cover
    """Rows [i0, i1) of stream b: all column tiles, then their immediate terms."""
    P = M.shape[2]
    k = v.shape[2]
    r = iidx.shape[1]
    bi = b if idx.shape[0] > 1 else 0
    ntiles = (P + tile - 1) // tile
    for t in range(ntiles):
        c0 = t * tile
        c1 = min(c0 + tile, P)
        w = c1 - c0
        # Slices keep loop indices provably >= 0, so LLVM vectorises the loops
        # (with c0 + c it cannot rule out negative-index wraparound).
        for i in range(i0, i1):
            o = out[b, i, c0:c1]
            if k == 0:
                for c in range(w):
                    o[c] = 0.0
                continue
            a0 = v[b, i, 0]
            s0 = M[b, idx[bi, i, 0], c0:c1]
            q = 1
            if k >= 4:
                # The first four paths fused: one pass over the row segment.
                a1 = v[b, i, 1]
                a2 = v[b, i, 2]
                a3 = v[b, i, 3]
                s1 = M[b, idx[bi, i, 1], c0:c1]
                s2 = M[b, idx[bi, i, 2], c0:c1]
                s3 = M[b, idx[bi, i, 3], c0:c1]
                for c in range(w):
                    o[c] = ((a0 * s0[c] + a1 * s1[c]) + a2 * s2[c]) + a3 * s3[c]
                q = 4
            elif k >= 2:
                a1 = v[b, i, 1]
                s1 = M[b, idx[bi, i, 1], c0:c1]
                for c in range(w):
                    o[c] = a0 * s0[c] + a1 * s1[c]
                q = 2
            else:
                for c in range(w):
                    o[c] = a0 * s0[c]
            # Remaining paths four at a time, in the reference's left-to-right
            # summation order: ((o + t0) + t1) + ...
            while q + 4 <= k:
                a0 = v[b, i, q]
                a1 = v[b, i, q + 1]
                a2 = v[b, i, q + 2]
                a3 = v[b, i, q + 3]
                s0 = M[b, idx[bi, i, q], c0:c1]
                s1 = M[b, idx[bi, i, q + 1], c0:c1]
                s2 = M[b, idx[bi, i, q + 2], c0:c1]
                s3 = M[b, idx[bi, i, q + 3], c0:c1]
                for c in range(w):
                    acc = (o[c] + a0 * s0[c]) + a1 * s1[c]
                    o[c] = (acc + a2 * s2[c]) + a3 * s3[c]
                q += 4
            while q < k:
                a0 = v[b, i, q]
                s0 = M[b, idx[bi, i, q], c0:c1]
                for c in range(w):
                    o[c] = o[c] + a0 * s0[c]
                q += 1
    # Immediate term: r scattered adds per row; this job owns these rows.
    for i in range(i0, i1):
        for q in range(r):
            out[b, i, iidx[i, q]] += ival[b, i, q]


@njit(parallel=True, cache=True, nogil=True)
def _propagate_parallel(M, v, idx, ival, iidx, out, tile, nrb):  # pragma: no cover
    """Fused sparse propagation + immediate term, one parallel region.

    M, out: (B, S, P); v: (B, S, k); idx: (B or 1, S, k); ival: (B, S, r);
    iidx: (S, r); tile: columns per tile; nrb: row blocks per stream. Returns -1
    after writing ``out``, or the first bad index position without writing.
    """
    B, S, P = M.shape
    bad = _first_bad_index(idx, iidx, S, P)
    if bad >= 0:
        return bad
    # Each job owns a block of rows of one stream; the jobs of one stream walk the
    # column tiles together, so the tile is shared in L3.
    for job in prange(B * nrb):
        b = job // nrb
        rb = job - b * nrb
        i0 = rb * S // nrb
        i1 = (rb + 1) * S // nrb
        _rows_job(M, v, idx, ival, iidx, out, tile, b, i0, i1)
    return -1


@njit(cache=True, nogil=True)
def _propagate_serial(M, v, idx, ival, iidx, out, tile):  # pragma: no cover
    """The same on the calling thread (small problems: no pool wake-up)."""
    B, S, P = M.shape
    bad = _first_bad_index(idx, iidx, S, P)
    if bad >= 0:
        return bad
    for b in range(B):
        _rows_job(M, v, idx, ival, iidx, out, tile, b, 0, S)
    return -1


#: Below this many multiply-adds (B·S·P·max(k, 1)) one thread is faster than
#: waking the pool (measured: docs/performance.md).
SERIAL_WORK = int(os.environ.get("SPARSE_RTRL_SERIAL_WORK", str(1 << 22)))


def _as3d(t: torch.Tensor, batched: bool) -> np.ndarray:
    """A numpy view of ``t`` with a leading batch axis (no copy)."""
    a = (t.detach() if t.requires_grad else t).numpy()
    return a if batched else a[None]


def choose_tile(state_size: int, num_params: int, k: int, itemsize: int) -> int:
    """Columns per tile for the kernel.

    k <= 1 streams whole rows (each source row is read about once, no reuse to
    gain); otherwise the tile spans ``TILE_BYTES`` of M (a quarter of that for
    k >= 16), clamped to [1024, 16384] columns and rounded to 64 columns.
    """
    if k <= 1:
        return max(num_params, 1)
    budget = TILE_BYTES if k < 16 else TILE_BYTES_MANY_PATHS
    tile = budget // (state_size * itemsize)
    tile = min(max(tile, _MIN_TILE), _MAX_TILE) // 64 * 64
    return max(1, min(tile, num_params))


def choose_row_blocks(state_size: int, batch: int) -> int:
    """Row blocks per stream: enough jobs for every numba thread."""
    threads = numba.get_num_threads()
    return max(1, min(state_size, -(-threads // batch)))


def sparse_propagate_numba(
    influence: torch.Tensor,
    path_values: torch.Tensor,
    path_index: torch.Tensor,
    immediate_values: torch.Tensor,
    immediate_index: torch.Tensor,
    out: torch.Tensor | None = None,
    *,
    tile: int | None = None,
) -> torch.Tensor:
    """Sparse propagation on CPU with the fused numba kernel.

    Same signature and result as :func:`sparse_propagate_reference`. ``influence``
    and ``out`` must be contiguous CPU tensors of dtype float32 or float64 (other
    dtypes raise ``TypeError``; nothing is cast). The small tensors (paths,
    immediates) are made contiguous if needed: that copies O(S·k + S·r) elements,
    which is negligible next to the O(S·P) work. Indices out of range raise
    ``IndexError`` before anything is written.

    First-call cost: compiling takes about 6 s per dtype in a process without a
    cache, about 0.5 s when the on-disk cache exists (see the module docstring).
    """
    shapes = check_propagate_args(
        influence, path_values, path_index, immediate_values, immediate_index, out
    )
    if influence.device.type != "cpu":
        raise ValueError(
            f"the numba backend runs on CPU tensors; got device {influence.device}. "
            "Use backend='triton' or 'reference' for GPU tensors"
        )
    if out is None:
        out = torch.empty_like(influence, memory_format=torch.contiguous_format)
    check_contiguous("influence", influence)
    check_contiguous("out", out)
    batched = shapes.batched
    # Small operands: a contiguous copy costs O(S·k) and the kernel needs unit strides.
    v = _as3d(path_values.contiguous(), batched)
    idx = path_index.contiguous().numpy()
    idx = idx[None] if idx.ndim == 2 else idx
    ival = _as3d(immediate_values.contiguous(), batched)
    iidx = immediate_index.contiguous().numpy()
    M = _as3d(influence, batched)
    o = _as3d(out, batched)
    if tile is None:
        tile = choose_tile(shapes.state_size, shapes.num_params, shapes.k, M.itemsize)
    elif tile < 1:
        raise ValueError(f"tile must be >= 1; got tile={tile}")
    work = shapes.batch * shapes.state_size * shapes.num_params * max(shapes.k, 1)
    if work < SERIAL_WORK or numba.get_num_threads() == 1:
        bad = _propagate_serial(M, v, idx, ival, iidx, o, int(tile))
    else:
        nrb = choose_row_blocks(shapes.state_size, shapes.batch)
        bad = _propagate_parallel(M, v, idx, ival, iidx, o, int(tile), nrb)
    if bad >= 0:
        npath = idx.size
        if bad < npath:
            b, rest = divmod(bad, shapes.state_size * shapes.k)
            i, q = divmod(rest, shapes.k)
            where = f"[{b}, {i}, {q}]" if idx.shape[0] > 1 else f"[{i}, {q}]"
            raise IndexError(
                f"path_index{where} = {int(idx.flat[bad])} is out of range "
                f"[0, {shapes.state_size})"
            )
        i, q = divmod(bad - npath, shapes.r)
        raise IndexError(
            f"immediate_index[{i}, {q}] = {int(iidx[i, q])} is out of range "
            f"[0, {shapes.num_params})"
        )
    return out
