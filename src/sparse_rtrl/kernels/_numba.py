"""Fused CPU kernel for sparse influence propagation (numba, one parallel region).

The kernel computes, for every stream b, row i and column c,

    out[b, i, c] = Σ_q v[b, i, q] · M[b, idx[b|0, i, q], c]   (then += immediate)

in a single ``prange`` over (stream, block of rows) jobs. Each job walks the columns
in tiles: for a tile [c0, c1) it writes ``out[b, i, c0:c1]`` for its rows, reading
the k source row segments ``M[b, j, c0:c1]``. A tile of M (S rows × TILE columns,
about 8 MiB) stays in the shared L3 cache while the row blocks of one stream walk it
together, so each block of M comes from memory about once. With k <= 1 there is no
reuse to gain and whole rows are streamed.

The inner loop over a row segment is generated as LLVM IR (``_fold_vectors``):
64-byte vectors, the k paths summed in registers, one store per vector. When the
output is larger than the L3 (``STREAM_BYTES``), those stores are non-temporal: a
line is written without first being read from memory, and the output does not
evict the tile of M. That is the difference between ~1.6x and ~1.2x the copy floor
at n = 256, k = 4 (docs/performance.md): an ordinary store costs a read and a
write of memory, a non-temporal one a write.

Immediate terms: when each row's immediate columns are ascending (as for the
cells here), a job adds them to a row segment right after writing it, walking the
row's immediates with a cursor. The columns around them are then written with
ordinary stores, so the adds hit the cache. Unsorted immediate indices are added
after all tiles (one scattered add each). Either way each job owns its rows, so
no two jobs touch one output element and the whole call is one parallel region:
on a loaded 2-core machine every extra region can cost a scheduler tick.

Measured alternatives (docs/performance.md): row segments summed through a small
buffer and copied out with non-temporal stores (1.4-1.6x the copy floor); column
tiles sized for the 1 MiB L2, one tile per job (1.6-2.5x); software prefetch of the
next row's sources (slower). Numba array slices in the inner loop cost an
atomic reference-count update each; the kernel indexes flat arrays with unsigned
offsets instead (with signed ones numba adds a negative-index test that stops
LLVM from vectorising).

The summation order is the reference's (q = 0, 1, ..., k-1, then the immediate
term) and no fast-math flag is used, so results match
:func:`sparse_propagate_reference` to the last bit in practice.

Compilation: there are two compiled variants, a serial one for small problems
(fewer than ``SERIAL_WORK`` multiply-adds, where waking the thread pool costs more
than it saves) and the parallel one. The first call of each variant for each dtype
compiles it: measured 3-4 s (serial) and 4 s (parallel) on this 2-core machine,
so about 7-8 s per dtype in all. ``cache=True``
stores the machine code in ``__pycache__`` (or ``NUMBA_CACHE_DIR``): in later
processes the first call loads it in about 0.5 s and further calls cost the
kernel time plus ~16 µs of Python checks and dispatch.
"""

from __future__ import annotations

import os
import platform

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import njit, prange, types, uint64
from numba.core import cgutils
from numba.extending import intrinsic

from ._checks import check_contiguous, check_propagate_args

#: Bytes of M (all S rows × TILE columns) one column tile should span. A tile of
#: 8 MiB stays in the shared L3 while every output row reads its k source rows from
#: it; with k >= 16 a quarter of that. Tuned on the 2-core EPYC of
#: docs/performance.md; override with SPARSE_RTRL_TILE_BYTES.
TILE_BYTES = int(os.environ.get("SPARSE_RTRL_TILE_BYTES", str(8 << 20)))
TILE_BYTES_MANY_PATHS = TILE_BYTES // 4
_MIN_TILE = 1024  # shorter row segments add per-segment overhead (measured)
_MAX_TILE = 16384

#: Outputs of at least this many bytes are written with non-temporal stores,
#: because they cannot stay in L3 until the next step reads them. Smaller outputs
#: use ordinary stores so the next step finds them in the cache. Override with
#: SPARSE_RTRL_STREAM_BYTES.
STREAM_BYTES = int(os.environ.get("SPARSE_RTRL_STREAM_BYTES", str(32 << 20)))
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "i386", "x86")
_VEC_BYTES = 64  # one cache line: the unit of a vector load and store
#: Immediate columns closer than this many elements are written as one cached span.
_MERGE_GAP = 64
#: Vectors per block when paths beyond the fourth are looped over: each path's
#: offset and coefficient are then loaded once per block instead of per vector.
_BLOCK = 4


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


def _emit_fold(context, builder, arrays, o0, k, nvec, fixed, loop_rest, nontemporal):
    """Emit the loop of :func:`_fold_vectors` for one case: ``fixed`` (0-4) paths
    unrolled with their coefficients broadcast once, then, with ``loop_rest``,
    the paths ``fixed..k-1`` in a loop over blocks of ``_BLOCK`` vectors (each
    path's offset and coefficient loaded once per block). ``fixed = 0`` writes
    zeros."""
    out_t, out_a, m_a, src_t, src_a, coef_a = arrays
    intp = types.intp
    size = out_t.dtype.bitwidth // 8
    lanes = _VEC_BYTES // size
    vec = ir.VectorType(context.get_data_type(out_t.dtype), lanes)
    i32 = ir.IntType(32)
    word = context.get_value_type(intp)

    def splat(x):
        first_lane = builder.insert_element(ir.Constant(vec, ir.Undefined), x, i32(0))
        mask = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
        return builder.shuffle_vector(first_lane, ir.Constant(vec, ir.Undefined), mask)

    def path(q):
        start = builder.load(builder.gep(src_a.data, [q]))
        start = context.cast(builder, start, src_t.dtype, intp)
        return start, builder.load(builder.gep(coef_a.data, [q]))

    def load(start, offset):
        ptr = builder.gep(m_a.data, [builder.add(start, offset)])
        return builder.load(builder.bitcast(ptr, vec.as_pointer()), align=size)

    hoisted = [path(word(q)) for q in range(fixed)]
    hoisted = [(start, splat(c)) for start, c in hoisted]
    acc_ptrs = [cgutils.alloca_once(builder, vec) for _ in range(_BLOCK)]
    meta = builder.module.add_metadata([i32(1)])

    def vectors(first, count):
        offsets = [
            builder.mul(builder.add(first, word(u)), word(lanes)) for u in range(count)
        ]
        accs = []
        for offset in offsets:
            if fixed == 0:
                acc = ir.Constant(vec, None)
            else:
                acc = builder.fmul(hoisted[0][1], load(hoisted[0][0], offset))
                for start, c in hoisted[1:]:
                    acc = builder.fadd(acc, builder.fmul(c, load(start, offset)))
            accs.append(acc)
        if loop_rest:
            for acc, ptr in zip(accs, acc_ptrs, strict=False):
                builder.store(acc, ptr)
            rest = cgutils.for_range_slice(builder, word(fixed), k, word(1), intp=word)
            with rest as (q, _):
                start, c = path(q)
                c = splat(c)
                for offset, ptr in zip(offsets, acc_ptrs, strict=False):
                    term = builder.fmul(c, load(start, offset))
                    builder.store(builder.fadd(builder.load(ptr), term), ptr)
            accs = [builder.load(ptr) for ptr in acc_ptrs[:count]]
        for offset, acc in zip(offsets, accs, strict=True):
            dst = builder.gep(out_a.data, [builder.add(o0, offset)])
            dst = builder.bitcast(dst, vec.as_pointer())
            if nontemporal:
                store = builder.store(acc, dst, align=_VEC_BYTES)
                store.set_metadata("nontemporal", meta)
            else:
                builder.store(acc, dst, align=size)

    block = _BLOCK if loop_rest else 1
    blocks = builder.udiv(nvec, word(block))
    with cgutils.for_range(builder, blocks) as loop:
        vectors(builder.mul(loop.index, word(block)), block)
    if block > 1:
        done = builder.mul(blocks, word(block))
        rest = cgutils.for_range_slice(builder, done, nvec, word(1), intp=word)
        with rest as (j, _):
            vectors(j, 1)


@intrinsic
def _fold_vectors(typingctx, out, o0, M, src, coef, k, nvec, nontemporal):
    """Write ``nvec`` 64-byte vectors of one output row: for j < nvec and every
    lane c,

        out[o0 + jL + c] = (((coef[0]·M[src[0] + jL + c] + coef[1]·M[src[1] + ...])
                            + coef[2]·...) + ... + coef[k-1]·M[src[k-1] + jL + c]

    (L = 64 / itemsize), summed left to right like the reference, in registers.
    k = 0 writes zeros. The generated code has one loop per k in 0-4 and one for
    k > 4. With ``nontemporal`` the stores bypass the caches, and ``out + o0``
    must then be 64-byte aligned: writing a line does not first read it from
    memory, and does not evict the tile of M that later rows read.
    """
    arrays = (out, M, src, coef)
    if not all(isinstance(a, types.Array) for a in arrays):
        return None
    if out.dtype not in (types.float32, types.float64) or M.dtype != out.dtype:
        return None
    if coef.dtype != out.dtype or not isinstance(src.dtype, types.Integer):
        return None
    if not isinstance(nontemporal, types.Boolean):
        return None

    def codegen(context, builder, sig, args):
        out_t, o0_t, m_t, src_t, coef_t, k_t, nvec_t, nt_t = sig.args
        arrays = (
            out_t,
            context.make_array(out_t)(context, builder, args[0]),
            context.make_array(m_t)(context, builder, args[2]),
            src_t,
            context.make_array(src_t)(context, builder, args[3]),
            context.make_array(coef_t)(context, builder, args[4]),
        )
        intp = types.intp
        o0 = context.cast(builder, args[1], o0_t, intp)
        k = context.cast(builder, args[5], k_t, intp)
        nvec = context.cast(builder, args[6], nvec_t, intp)
        streaming = context.cast(builder, args[7], nt_t, types.boolean)
        word = context.get_value_type(intp)

        # One block per k in 0-4, the default block for k > 4.
        end = builder.append_basic_block("fold.end")
        many = builder.append_basic_block("fold.many")
        switch = builder.switch(k, many)

        cases = [(fixed, False) for fixed in range(5)] + [(4, True)]
        for fixed, loop_rest in cases:
            if loop_rest:
                block = many
            else:
                block = builder.append_basic_block(f"fold.k{fixed}")
                switch.add_case(word(fixed), block)
            builder.position_at_end(block)
            with builder.if_else(streaming) as (then, otherwise):
                for nt, branch in ((True, then), (False, otherwise)):
                    with branch:
                        _emit_fold(
                            context, builder, arrays, o0, k, nvec, fixed, loop_rest, nt
                        )
            builder.branch(end)
        builder.position_at_end(end)
        return context.get_dummy_value()

    return types.void(out, o0, M, src, coef, k, nvec, nontemporal), codegen


@intrinsic
def _store_fence(typingctx):
    """Order the non-temporal stores before every later store and load.

    Emits ``sfence`` on x86 (the fence the x86 manuals give for non-temporal
    stores) and a sequentially consistent fence on other CPUs.
    """

    def codegen(context, builder, sig, args):
        if _X86:
            fnty = ir.FunctionType(ir.VoidType(), [])
            fn = cgutils.get_or_insert_function(
                builder.module, fnty, "llvm.x86.sse.sfence"
            )
            builder.call(fn, [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@njit(cache=True, nogil=True)
def _fold_scalar(of, o, Mf, src, coef, k, c):  # pragma: no cover - jitted
    """Set ``of[o] = Σ_q coef[q] · Mf[src[q] + c]``, summed left to right (0 when
    k = 0)."""
    if k == 0:
        of[o] = 0.0
        return
    acc = coef[0] * Mf[src[0] + c]
    for q in range(1, k):
        acc = acc + coef[q] * Mf[src[q] + c]
    of[o] = acc


@njit(cache=True, nogil=True)
def _span(of, row, Mf, src, coef, k, lo, hi, nontemporal, shifted):  # pragma: no cover
    """Write columns [lo, hi) of one output row: ``of[row + c]`` for lo <= c < hi.

    ``src[q]`` is the flat offset of the row's q-th source row in ``Mf``.
    :func:`_fold_vectors` writes the whole vectors. With non-temporal stores these
    must start at a 64-byte boundary, so the columns before it are written one by
    one, as are the columns after the last whole vector. ``shifted`` is scratch
    space for the k source offsets moved to the first vector. All offsets are
    unsigned, so numba adds no negative-index test.
    """
    size = of.itemsize
    lanes = uint64(_VEC_BYTES // size)
    w = hi - lo
    head = uint64(0)  # ordinary stores need no alignment
    if nontemporal:
        head = w
        addr = of.ctypes.data + np.int64(row + lo) * size
        if addr % size == 0:
            head = min(uint64(((-addr) % _VEC_BYTES) // size), w)
    for c in range(lo, lo + head):
        _fold_scalar(of, row + c, Mf, src, coef, k, c)
    nvec = (w - head) // lanes
    start = lo + head
    for q in range(k):
        shifted[q] = src[q] + start
    o0 = row + start
    if nvec > 0:
        _fold_vectors(of, o0, Mf, shifted, coef, k, nvec, nontemporal)
    for c in range(start + nvec * lanes, hi):
        _fold_scalar(of, row + c, Mf, src, coef, k, c)


@njit(cache=True, nogil=True)
def _rows_sorted(iidx):  # pragma: no cover - jitted
    """Return True when every row of the immediate index is in ascending order."""
    S, r = iidx.shape
    for i in range(S):
        for q in range(1, r):
            if iidx[i, q] < iidx[i, q - 1]:
                return False
    return True


@njit(cache=True, nogil=True)
def _rows_job(
    Mf, v, idx, ival, iidx, of, S, P, tile, stream, merge, b, i0, i1
):  # pragma: no cover
    """Compute rows [i0, i1) of stream b, column tile by column tile.

    ``Mf`` and ``of`` are the flat (B·S·P) influence and output. With ``stream``
    the output is written with non-temporal stores, except around immediate
    columns. With ``merge`` (every row of ``iidx`` ascending) a cursor walks each
    row's immediates, and they are added to the row's tile segment right after it
    is written. Those spans use ordinary stores, so the adds hit the cache.
    Without ``merge`` the immediates are added after all tiles.
    """
    k = v.shape[2]
    r = iidx.shape[1]
    bi = b if idx.shape[0] > 1 else 0
    Pu = uint64(P)
    base = uint64(b) * uint64(S) * Pu
    src = np.empty(k, np.uint64)
    shifted = np.empty(k, np.uint64)
    coef = np.empty(k, Mf.dtype)
    cursor = np.zeros(i1 - i0 if merge else 0, np.int64)
    ntiles = (P + tile - 1) // tile
    for t in range(ntiles):
        c0 = uint64(t * tile)
        c1 = uint64(min(t * tile + tile, P))
        for i in range(i0, i1):
            row = base + uint64(i) * Pu
            for q in range(k):
                src[q] = base + uint64(idx[bi, i, q]) * Pu
                coef[q] = v[b, i, q]
            pos = c0
            if merge and not stream:
                # Whole segment, then its immediates while it is in the cache.
                _span(of, row, Mf, src, coef, k, c0, c1, False, shifted)
                q = cursor[i - i0]
                while q < r and uint64(iidx[i, q]) < c1:
                    of[row + uint64(iidx[i, q])] += ival[b, i, q]
                    q += 1
                cursor[i - i0] = q
                pos = c1
            elif merge:
                q = cursor[i - i0]
                while q < r and uint64(iidx[i, q]) < c1:
                    # A run of immediate columns with gaps under _MERGE_GAP.
                    first = uint64(iidx[i, q])
                    last = q
                    while (
                        last + 1 < r
                        and uint64(iidx[i, last + 1]) < c1
                        and iidx[i, last + 1] - iidx[i, last] < _MERGE_GAP
                    ):
                        last += 1
                    end = uint64(iidx[i, last]) + uint64(1)
                    if first > pos:
                        _span(of, row, Mf, src, coef, k, pos, first, stream, shifted)
                    _span(of, row, Mf, src, coef, k, first, end, False, shifted)
                    for qq in range(q, last + 1):
                        of[row + uint64(iidx[i, qq])] += ival[b, i, qq]
                    pos = end
                    q = last + 1
                cursor[i - i0] = q
            if pos < c1:
                _span(of, row, Mf, src, coef, k, pos, c1, stream, shifted)
    if stream:
        _store_fence()
    if not merge:
        # r scattered adds per row; this job owns these rows.
        for i in range(i0, i1):
            row = base + uint64(i) * Pu
            for q in range(r):
                of[row + uint64(iidx[i, q])] += ival[b, i, q]


@njit(parallel=True, cache=True, nogil=True)
def _propagate_parallel(
    M, v, idx, ival, iidx, out, tile, stream, nrb
):  # pragma: no cover
    """Fused sparse propagation + immediate term, one parallel region.

    M, out: (B, S, P); v: (B, S, k); idx: (B or 1, S, k); ival: (B, S, r);
    iidx: (S, r); tile: columns per tile; stream: non-temporal stores; nrb: row
    blocks per stream. Returns -1 after writing ``out``, or the first bad index
    position without writing.
    """
    B, S, P = M.shape
    bad = _first_bad_index(idx, iidx, S, P)
    if bad >= 0:
        return bad
    Mf = M.reshape(-1)
    of = out.reshape(-1)
    merge = _rows_sorted(iidx)
    # Each job owns a block of rows of one stream; the jobs of one stream walk the
    # column tiles together, so the tile is shared in L3.
    for job in prange(B * nrb):
        b = job // nrb
        rb = job - b * nrb
        i0 = rb * S // nrb
        i1 = (rb + 1) * S // nrb
        _rows_job(Mf, v, idx, ival, iidx, of, S, P, tile, stream, merge, b, i0, i1)
    return -1


@njit(cache=True, nogil=True)
def _propagate_serial(M, v, idx, ival, iidx, out, tile, stream):  # pragma: no cover
    """The same on the calling thread (small problems: no pool wake-up)."""
    B, S, P = M.shape
    bad = _first_bad_index(idx, iidx, S, P)
    if bad >= 0:
        return bad
    Mf = M.reshape(-1)
    of = out.reshape(-1)
    merge = _rows_sorted(iidx)
    for b in range(B):
        _rows_job(Mf, v, idx, ival, iidx, of, S, P, tile, stream, merge, b, 0, S)
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
    tile = budget // max(state_size * itemsize, 1)
    tile = min(max(tile, _MIN_TILE), _MAX_TILE) // 64 * 64
    return max(1, min(tile, num_params))


def choose_row_blocks(state_size: int, batch: int) -> int:
    """Row blocks per stream: enough jobs for every numba thread."""
    threads = numba.get_num_threads()
    return max(1, min(state_size, -(-threads // max(batch, 1))))


def sparse_propagate_numba(
    influence: torch.Tensor,
    path_values: torch.Tensor,
    path_index: torch.Tensor,
    immediate_values: torch.Tensor,
    immediate_index: torch.Tensor,
    out: torch.Tensor | None = None,
    *,
    tile: int | None = None,
    stream: bool | None = None,
) -> torch.Tensor:
    """Sparse propagation on CPU with the fused numba kernel.

    Same signature and result as :func:`sparse_propagate_reference`. ``influence``
    and ``out`` must be contiguous CPU tensors of dtype float32 or float64 (other
    dtypes raise ``TypeError``; nothing is cast). The small tensors (paths,
    immediates) are made contiguous if needed: that copies O(S·k + S·r) elements,
    which is negligible next to the O(S·P) work. Indices out of range raise
    ``IndexError`` before anything is written.

    ``tile`` (columns per tile) and ``stream`` (non-temporal stores) override the
    sizes chosen from the problem; they change the speed, never the result.

    First-call cost: compiling takes about 8 s per dtype in a process without a
    cache, about 0.5 s when the on-disk cache exists (see the module
    docstring).
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
    elif isinstance(tile, bool) or not isinstance(tile, int | np.integer) or tile < 1:
        raise ValueError(f"tile must be an integer >= 1; got tile={tile!r}")
    # Wider than a row is one tile; clamping also keeps the tile count in int64.
    tile = min(int(tile), max(shapes.num_params, 1))
    if stream is None:
        stream = o.nbytes >= STREAM_BYTES
    elif not isinstance(stream, bool):
        raise ValueError(f"stream must be True, False or None; got stream={stream!r}")
    work = shapes.batch * shapes.state_size * shapes.num_params * max(shapes.k, 1)
    if work < SERIAL_WORK or numba.get_num_threads() == 1:
        bad = _propagate_serial(M, v, idx, ival, iidx, o, tile, stream)
    else:
        nrb = choose_row_blocks(shapes.state_size, shapes.batch)
        bad = _propagate_parallel(M, v, idx, ival, iidx, o, tile, stream, nrb)
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
