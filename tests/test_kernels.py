"""Propagation kernels against the torch-ops reference, element by element."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from sparse_rtrl import kernels as K
from sparse_rtrl.kernels import _numba, _triton

# Every output element is compared. The kernels sum in the reference's order without
# fused multiply-adds, so they agree to rounding (in practice bit for bit).
TOL = {
    torch.float32: {"rtol": 1e-6, "atol": 1e-6},
    torch.float64: {"rtol": 1e-13, "atol": 1e-13},
}


def make_inputs(S, P, k, r, batch=None, dtype=torch.float64, shared=True, seed=0):
    """Random influence, paths (source rows may repeat) and an immediate term with
    distinct columns per row, as a cell would give."""
    g = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)
    influence = torch.randn(*lead, S, P, generator=g, dtype=torch.float64).to(dtype)
    values = torch.randn(*lead, S, k, generator=g, dtype=torch.float64).to(dtype)
    index_lead = () if shared else lead
    index = torch.randint(0, S, (*index_lead, S, k), generator=g)
    imm_values = torch.randn(*lead, S, r, generator=g, dtype=torch.float64).to(dtype)
    imm_index = torch.stack([torch.randperm(P, generator=g)[:r] for _ in range(S)])
    return influence, values, index, imm_values, imm_index


# (S, P, k, r): S odd and not a multiple of the row blocks, P not a multiple of any
# tile, k = 0, 1, 2, 3, 4, 5, 8 and k = S.
CASES = [
    (13, 1001, 0, 7),
    (13, 1001, 1, 7),
    (13, 1001, 2, 15),
    (13, 1001, 3, 1),
    (13, 1001, 4, 7),
    (13, 1001, 5, 7),
    (13, 1001, 8, 7),
    (13, 1001, 13, 7),
    (1, 37, 1, 3),
    (7, 5, 7, 5),
    (67, 9001, 5, 70),  # several tiles of the default width
    (67, 9001, 67, 70),
]


@pytest.fixture(params=["serial", "parallel"])
def numba_path(request, monkeypatch):
    """Run the numba kernel's serial variant, or force the parallel one."""
    monkeypatch.setattr(
        _numba, "SERIAL_WORK", 1 << 62 if request.param == "serial" else 0
    )
    return request.param


def immediate_layout(imm_index, P, layout, seed=0):
    """Rearrange the immediate columns of each row.

    ``scattered`` keeps the random order. ``sorted`` sorts each row, so the kernel
    adds the immediates while a segment is in cache. ``runs`` gives each row a
    block of consecutive columns plus two far ones, like a tanh RNN's W_hh row,
    W_ih row and bias.
    """
    if layout == "scattered":
        return imm_index
    if layout == "sorted":
        return imm_index.sort(dim=1).values
    g = torch.Generator().manual_seed(seed)
    S, r = imm_index.shape
    rows = []
    for _ in range(S):
        block = r - 2 if r > 2 else r
        start = int(torch.randint(0, P - block + 1, (), generator=g))
        cols = list(range(start, start + block))
        while len(cols) < r:
            c = int(torch.randint(0, P, (), generator=g))
            if c not in cols:
                cols.append(c)
        rows.append(sorted(cols))
    return torch.tensor(rows, dtype=torch.int64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("S,P,k,r", CASES)
def test_numba_matches_reference(S, P, k, r, dtype, numba_path):
    args = make_inputs(S, P, k, r, dtype=dtype)
    expected = K.sparse_propagate_reference(*args)
    out = torch.full_like(args[0], float("nan"))
    result = K.sparse_propagate(*args, out=out, backend="numba")
    assert result is out
    torch.testing.assert_close(out, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["scattered", "sorted", "runs"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("S,P,k,r", CASES)
def test_numba_store_kinds(S, P, k, r, stream, layout, dtype, numba_path):
    """Non-temporal and ordinary stores, immediates added in cache (sorted rows)
    or after the tiles (unsorted), on sizes whose rows start unaligned."""
    M, v, idx, iv, ii = make_inputs(S, P, k, r, dtype=dtype, seed=3)
    ii = immediate_layout(ii, P, layout, seed=S + k)
    args = (M, v, idx, iv, ii)
    expected = K.sparse_propagate_reference(*args)
    out = torch.full_like(M, float("nan"))
    _numba.sparse_propagate_numba(*args, out=out, stream=stream, tile=1000)
    torch.testing.assert_close(out, expected, **TOL[dtype])


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("offset", [0, 1, 3, 15])
def test_numba_unaligned_buffers(stream, offset, numba_path):
    """Buffers that start off a 64-byte boundary, and a row with a repeated column."""
    S, P, k, r = 9, 517, 4, 6
    M, v, idx, iv, ii = make_inputs(S, P, k, r, dtype=torch.float32, seed=offset)
    ii = ii.sort(dim=1).values
    ii[2, 1] = ii[2, 0]  # the same column twice: both values are added
    storage = torch.full((S * P + offset,), float("nan"))
    out = storage[offset:].view(S, P)
    src = torch.empty(S * P + offset)[offset:].view(S, P).copy_(M)
    args = (src, v, idx, iv, ii)
    _numba.sparse_propagate_numba(*args, out=out, stream=stream)
    torch.testing.assert_close(
        out, K.sparse_propagate_reference(*args), **TOL[torch.float32]
    )


@pytest.mark.parametrize("tile", [1, 64, 100, 1000, 1001, 5000])
@pytest.mark.parametrize("k", [1, 4, 6])
def test_numba_any_tile_width(tile, k, numba_path):
    args = make_inputs(13, 1001, k, 9, dtype=torch.float32, seed=k)
    out = _numba.sparse_propagate_numba(*args, tile=tile)
    torch.testing.assert_close(
        out, K.sparse_propagate_reference(*args), **TOL[torch.float32]
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize(
    "S,P,k,r", [(13, 1001, 4, 7), (13, 1001, 0, 7), (67, 9001, 5, 70)]
)
def test_numba_batched_matches_reference(S, P, k, r, shared, dtype, numba_path):
    args = make_inputs(S, P, k, r, batch=3, dtype=dtype, shared=shared, seed=1)
    expected = K.sparse_propagate_reference(*args)
    result = K.sparse_propagate(*args, backend="numba")
    torch.testing.assert_close(result, expected, **TOL[dtype])


@pytest.mark.parametrize("backend", ["numba", "reference"])
@pytest.mark.parametrize("shared", [True, False])
def test_batch_equals_separate_calls(backend, shared):
    B = 4
    M, v, idx, iv, ii = make_inputs(11, 777, 3, 6, batch=B, shared=shared, seed=2)
    batched = K.sparse_propagate(M, v, idx, iv, ii, backend=backend)
    for b in range(B):
        single = K.sparse_propagate(
            M[b], v[b], idx if shared else idx[b], iv[b], ii, backend=backend
        )
        torch.testing.assert_close(batched[b], single, rtol=0, atol=0)


def test_shared_index_equals_per_stream_copies():
    M, v, idx, iv, ii = make_inputs(11, 777, 4, 6, batch=3, shared=True, seed=3)
    shared = K.sparse_propagate(M, v, idx, iv, ii, backend="numba")
    per_stream = K.sparse_propagate(
        M, v, idx.expand(3, -1, -1).clone(), iv, ii, backend="numba"
    )
    torch.testing.assert_close(shared, per_stream, rtol=0, atol=0)


def test_small_operands_may_be_non_contiguous():
    M, v, idx, iv, ii = make_inputs(9, 300, 4, 5, seed=4)
    v_t = v.t().contiguous().t()  # same values, column-major
    out = K.sparse_propagate(M, v_t, idx, iv, ii, backend="numba")
    torch.testing.assert_close(out, K.sparse_propagate_reference(M, v, idx, iv, ii))


def test_auto_uses_numba_on_cpu():
    assert K.resolve_backend("auto", torch.device("cpu"), torch.float32) == "numba"
    assert K.resolve_backend("auto", torch.device("cpu"), torch.float16) == "reference"
    assert "numba" in K.available_backends("cpu")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int32])
def test_numba_rejects_other_dtypes(dtype):
    M, v, idx, iv, ii = make_inputs(5, 50, 2, 3, seed=5)
    M, v, iv = M.to(dtype), v.to(dtype), iv.to(dtype)
    with pytest.raises(TypeError, match=rf"{dtype}.*float32.*float64"):
        K.sparse_propagate(M, v, idx, iv, ii, backend="numba")


def test_auto_float16_runs_reference_without_casting():
    M, v, idx, iv, ii = make_inputs(5, 50, 2, 3, seed=5)
    args = (M.half(), v.half(), idx, iv.half(), ii)
    result = K.sparse_propagate(*args)
    assert result.dtype == torch.float16
    torch.testing.assert_close(result, K.sparse_propagate_reference(*args))


def test_mixed_dtypes_rejected():
    M, v, idx, iv, ii = make_inputs(5, 50, 2, 3, seed=5)
    with pytest.raises(TypeError, match="path_values has dtype torch.float32"):
        K.sparse_propagate(M, v.float(), idx, iv, ii, backend="numba")
    with pytest.raises(TypeError, match="int64"):
        K.sparse_propagate(M, v, idx.int(), iv, ii, backend="numba")


def test_unknown_backend_lists_valid_ones():
    args = make_inputs(5, 50, 2, 3)
    with pytest.raises(ValueError, match=r"'auto', 'reference', 'numba', 'triton'"):
        K.sparse_propagate(*args, backend="cuda")


def test_backend_unavailable_for_device():
    args = make_inputs(5, 50, 2, 3)
    if _triton.interpreting():
        pytest.skip("TRITON_INTERPRET is set, so triton accepts CPU tensors")
    with pytest.raises(K.BackendUnavailableError, match="triton"):
        K.sparse_propagate(*args, backend="triton")
    meta = [a.to("meta") for a in args]
    with pytest.raises(K.BackendUnavailableError, match="numba backend runs on CPU"):
        K.sparse_propagate(*meta, backend="numba")


def test_non_contiguous_influence_rejected():
    M, v, idx, iv, ii = make_inputs(6, 40, 2, 3)
    wide = torch.zeros(6, 80, dtype=M.dtype)
    wide[:, ::2] = M
    with pytest.raises(ValueError, match="influence must be contiguous"):
        K.sparse_propagate(wide[:, ::2], v, idx, iv, ii, backend="numba")


def test_out_overlapping_influence_rejected():
    M, v, idx, iv, ii = make_inputs(6, 40, 2, 3)
    with pytest.raises(ValueError, match="overlaps"):
        K.sparse_propagate(M, v, idx, iv, ii, out=M, backend="numba")


@pytest.mark.parametrize("name", ["path_values", "path_index", "immediate_values"])
def test_out_overlapping_small_input_rejected(name):
    """Indices overwritten by output rows would be read as row offsets."""
    S, P, k, r = 6, 40, 2, 3
    M, v, idx, iv, ii = make_inputs(S, P, k, r)
    out = torch.zeros(S, P, dtype=torch.float64)
    alias = {
        "path_values": ("v", out.view(-1)[: S * k].view(S, k)),
        "path_index": ("idx", out.view(-1)[: S * k].view(torch.int64).view(S, k)),
        "immediate_values": ("iv", out.view(-1)[5 : 5 + S * r].view(S, r)),
    }
    args = {"v": v, "idx": idx, "iv": iv}
    key, view = alias[name]
    view.copy_(args[key])
    args[key] = view
    with pytest.raises(ValueError, match=f"out overlaps {name}"):
        K.sparse_propagate(
            M, args["v"], args["idx"], args["iv"], ii, out=out, backend="numba"
        )


def test_out_next_to_input_accepted():
    """Buffers that touch without sharing memory are not an overlap."""
    S, P, k, r = 4, 30, 2, 3
    M, v, idx, iv, ii = make_inputs(S, P, k, r)
    storage = torch.zeros(S * P + S * k, dtype=torch.float64)
    out = storage[: S * P].view(S, P)
    values = storage[S * P :].view(S, k).copy_(v)
    result = K.sparse_propagate(M, values, idx, iv, ii, out=out, backend="numba")
    expected = K.sparse_propagate_reference(M, v, idx, iv, ii)
    torch.testing.assert_close(result, expected, **TOL[torch.float64])


def test_out_requiring_grad_rejected():
    M, v, idx, iv, ii = make_inputs(6, 40, 2, 3)
    out = torch.zeros_like(M, requires_grad=True)
    with pytest.raises(ValueError, match="out requires grad"):
        K.sparse_propagate(M, v, idx, iv, ii, out=out, backend="numba")


@pytest.mark.parametrize("tile", [0, -3, 2.5, "64", True])
def test_numba_invalid_tile_rejected(tile):
    args = make_inputs(5, 100, 2, 3)
    with pytest.raises(ValueError, match="tile must be an integer >= 1"):
        _numba.sparse_propagate_numba(*args, tile=tile)


@pytest.mark.parametrize("tile", [2**62, 2**63 - 99, 2**70])
def test_numba_huge_tile_is_one_tile(tile):
    args = make_inputs(4, 100, 2, 3)
    out = torch.full_like(args[0], 12345.0)
    _numba.sparse_propagate_numba(*args, out=out, tile=tile)
    expected = K.sparse_propagate_reference(*args)
    torch.testing.assert_close(out, expected, **TOL[torch.float64])


def test_numba_invalid_stream_rejected():
    args = make_inputs(5, 100, 2, 3)
    with pytest.raises(ValueError, match="stream must be True, False or None"):
        _numba.sparse_propagate_numba(*args, stream="no")


@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_numba_empty_state_and_batch(k, numba_path):
    empty = (
        torch.empty(0, 10),
        torch.empty(0, k),
        torch.empty(0, k, dtype=torch.int64),
        torch.empty(0, 0),
        torch.empty(0, 0, dtype=torch.int64),
    )
    assert K.sparse_propagate(*empty, backend="numba").shape == (0, 10)
    no_streams = (
        torch.empty(0, 4, 100),
        torch.empty(0, 4, k),
        torch.zeros(4, k, dtype=torch.int64),
        torch.empty(0, 4, 3),
        torch.zeros(4, 3, dtype=torch.int64),
    )
    assert K.sparse_propagate(*no_streams, backend="numba").shape == (0, 4, 100)


def test_bad_shapes_rejected():
    M, v, idx, iv, ii = make_inputs(6, 40, 2, 3)
    with pytest.raises(ValueError, match="path_index must have shape"):
        K.sparse_propagate(M, v, idx[:, :1], iv, ii, backend="numba")
    with pytest.raises(ValueError, match="immediate_values must have shape"):
        K.sparse_propagate(M, v, idx, iv[:, :2], ii, backend="numba")


def test_index_out_of_range_raises_before_writing():
    M, v, idx, iv, ii = make_inputs(6, 40, 3, 3)
    out = torch.zeros_like(M)
    bad = idx.clone()
    bad[4, 2] = 6
    with pytest.raises(IndexError, match=r"path_index\[4, 2\] = 6"):
        K.sparse_propagate(M, v, bad, iv, ii, out=out, backend="numba")
    bad_cols = ii.clone()
    bad_cols[1, 0] = -1
    with pytest.raises(IndexError, match=r"immediate_index\[1, 0\] = -1"):
        K.sparse_propagate(M, v, idx, iv, bad_cols, out=out, backend="numba")
    assert not out.any()


# --- custom op -------------------------------------------------------------------


@pytest.mark.parametrize("batch", [None, 3])
def test_custom_op_matches_reference_and_passes_opcheck(batch):
    args = make_inputs(7, 90, 3, 4, batch=batch, shared=False, seed=6)
    expected = K.sparse_propagate_reference(*args)
    torch.testing.assert_close(torch.ops.sparse_rtrl.sparse_propagate(*args), expected)
    out = torch.empty_like(args[0])
    torch.ops.sparse_rtrl.sparse_propagate_out(*args, out)
    torch.testing.assert_close(out, expected)
    torch.library.opcheck(torch.ops.sparse_rtrl.sparse_propagate.default, args)
    torch.library.opcheck(
        torch.ops.sparse_rtrl.sparse_propagate_out.default,
        (*args, torch.empty_like(out)),
    )


@pytest.mark.parametrize("batch,shared", [(None, True), (2, True), (2, False)])
def test_custom_op_gradients(batch, shared):
    M, v, idx, iv, ii = make_inputs(5, 11, 3, 2, batch=batch, shared=shared, seed=7)
    M.requires_grad_()
    v.requires_grad_()
    iv.requires_grad_()

    def f(M, v, iv):
        return torch.ops.sparse_rtrl.sparse_propagate(M, v, idx, iv, ii)

    assert torch.autograd.gradcheck(f, (M, v, iv))


# --- Triton (interpreter on CPU, real kernel on CUDA) ----------------------------

TRITON_SCRIPT = textwrap.dedent(
    """
    import os
    assert os.environ["TRITON_INTERPRET"] == "1"
    import torch
    from sparse_rtrl import kernels as K
    from tests_kernel_inputs import make_inputs, TOL

    cases = [(13, 301, 0, 7), (13, 301, 1, 7), (13, 301, 4, 7), (13, 301, 13, 7),
             (1, 37, 1, 3), (7, 5, 7, 5)]
    n = 0
    for dtype in (torch.float32, torch.float64):
        for S, P, k, r in cases:
            for batch, shared in ((None, True), (2, True), (2, False)):
                args = make_inputs(S, P, k, r, batch, dtype, shared, seed=S + k)
                expected = K.sparse_propagate_reference(*args)
                out = torch.full_like(args[0], float("nan"))
                got = K.sparse_propagate(*args, out=out, backend="triton")
                assert got is out
                torch.testing.assert_close(out, expected, **TOL[dtype])
                n += 1
    from sparse_rtrl.kernels._triton import sparse_propagate_triton
    args = make_inputs(13, 301, 5, 7, seed=9)
    for block in (16, 64, 512):
        torch.testing.assert_close(
            sparse_propagate_triton(*args, block=block),
            K.sparse_propagate_reference(*args), **TOL[torch.float64])
    bad = list(args)
    bad[2] = bad[2].clone()
    bad[2][0, 0] = 99
    try:
        K.sparse_propagate(*bad, backend="triton")
    except IndexError:
        pass
    else:
        raise AssertionError("out-of-range index accepted")
    try:
        K.sparse_propagate(*[a.half() if a.is_floating_point() else a for a in args],
                           backend="triton")
    except TypeError as e:
        assert "float16" in str(e)
    else:
        raise AssertionError("float16 accepted")
    print(f"triton interpreter: {n} cases ok")
    """
)


def test_triton_kernel_in_interpreter(tmp_path):
    """Run the Triton kernels on CPU tensors with TRITON_INTERPRET=1.

    A subprocess, because triton reads TRITON_INTERPRET when the kernels are
    decorated, and this test process may have imported triton already.
    """
    if not _triton.triton_available():
        pytest.skip(f"triton cannot be imported ({_triton._import_error()})")
    # The subprocess imports make_inputs/TOL from a copy of this module's helpers.
    helpers = tmp_path / "tests_kernel_inputs.py"
    helpers.write_text(
        "import torch\n"
        f"TOL = {{torch.float32: {TOL[torch.float32]}, "
        f"torch.float64: {TOL[torch.float64]}}}\n"
        + textwrap.dedent(_source_of(make_inputs))
    )
    script = tmp_path / "run_triton.py"
    script.write_text(TRITON_SCRIPT)
    env = dict(os.environ, TRITON_INTERPRET="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path), *filter(None, [env.get("PYTHONPATH")])]
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cases ok" in proc.stdout


def _source_of(fn) -> str:
    import inspect

    return inspect.getsource(fn)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch,shared", [(None, True), (3, True), (3, False)])
def test_triton_on_gpu_matches_reference(dtype, batch, shared):
    if not _triton.triton_available():
        pytest.skip("triton is not installed")
    for S, P, k, r in CASES:
        args = make_inputs(S, P, k, r, batch, dtype, shared, seed=S + k)
        args = [a.cuda() for a in args]
        expected = K.sparse_propagate_reference(*args)
        got = K.sparse_propagate(*args, backend="triton")
        torch.testing.assert_close(got, expected, **TOL[dtype])
    assert K.resolve_backend("auto", torch.device("cuda"), dtype) == "triton"


# --- exact propagation -----------------------------------------------------------


@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exact_propagate(batch, dtype):
    M, _, _, iv, ii = make_inputs(9, 301, 0, 5, batch=batch, dtype=dtype, seed=8)
    lead = () if batch is None else (batch,)
    J = torch.randn(*lead, 9, 9, dtype=dtype)
    out = torch.full_like(M, float("nan"))
    ptr = out.data_ptr()
    result = K.exact_propagate(J, M, iv, ii, out)
    assert result is out
    assert out.data_ptr() == ptr
    expected = J @ M
    cols = ii if batch is None else ii.expand(batch, -1, -1)
    expected.scatter_add_(-1, cols, iv)
    torch.testing.assert_close(out, expected)
    # Exact RTRL is sparse RTRL with all S paths.
    idx = torch.arange(9).expand(9, 9)
    torch.testing.assert_close(
        out, K.sparse_propagate_reference(M, J, idx, iv, ii), **TOL[dtype]
    )


def test_exact_propagate_checks():
    M, _, _, iv, ii = make_inputs(4, 30, 0, 2)
    J = torch.randn(4, 4, dtype=M.dtype)
    with pytest.raises(ValueError, match="jacobian must have shape"):
        K.exact_propagate(J[:3], M, iv, ii, None)
    with pytest.raises(ValueError, match="overlaps"):
        K.exact_propagate(J, M, iv, ii, M)
    with pytest.raises(ValueError, match="contiguous"):
        K.exact_propagate(J, M, iv, ii, torch.empty(30, 4, dtype=M.dtype).t())


# --- memory ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch,k", [(1, 4), (3, 0), (2, 7)])
def test_memory_estimate_matches_allocation(dtype, batch, k):
    n, m = 7, 2
    S, P, r = n, n * n + n * m + n, n + m + 1
    buffers = [
        torch.empty(batch, S, P, dtype=dtype),  # M_{t-1}
        torch.empty(batch, S, P, dtype=dtype),  # M_t
        torch.empty(batch, S, S, dtype=dtype),  # Jacobian
        torch.empty(batch, S, k, dtype=dtype),  # path values
        torch.empty(batch, S, k, dtype=torch.int64),  # path index
    ]
    measured = sum(b.untyped_storage().nbytes() for b in buffers)
    assert K.estimate_influence_memory(S, P, k, batch=batch, dtype=dtype) == measured
    immediate = [
        torch.empty(batch, S, r, dtype=dtype),
        torch.empty(S, r, dtype=torch.int64),
    ]
    measured += sum(b.untyped_storage().nbytes() for b in immediate)
    estimate = K.estimate_influence_memory(
        S, P, k, batch=batch, dtype=dtype, immediate_size=r
    )
    assert estimate == measured


def test_memory_estimate_at_paper_size():
    n = 256
    P = n * n + 2 * n + n
    got = K.estimate_influence_memory(n, P, 4)
    assert got == 2 * n * P * 4 + n * n * 4 + n * 4 * 12
    assert 130e6 < got < 140e6  # two 67 MB influence matrices


def test_memory_estimate_rejects_bad_arguments():
    with pytest.raises(ValueError, match="k must be in"):
        K.estimate_influence_memory(4, 10, 5)
    with pytest.raises(ValueError, match="batch must be an integer >= 1"):
        K.estimate_influence_memory(4, 10, 2, batch=0)


def test_check_memory():
    K.check_memory(1024, "cpu")
    available = K.available_memory("cpu")
    assert available > 0
    with pytest.raises(
        MemoryError, match=r"needs .* GiB for .*GiB available.*reduce n or batch"
    ):
        K.check_memory(available * 4 + (1 << 40), "cpu")
