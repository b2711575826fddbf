"""Benchmark of one influence-propagation step: ``sparse-rtrl bench``.

Times, for a tanh RNN of n units and m = 2 inputs (S = n, P = n² + n·m + n,
r = n + m + 1), with random Jacobian values, random paths and an immediate term of
the RNN's shape:

* ``sparse``: :func:`sparse_rtrl.kernels.sparse_propagate` (backend ``auto``: the
  numba kernel on CPU), one entry per k;
* ``exact``: :func:`sparse_rtrl.kernels.exact_propagate` (dense product + scatter);
* what a user would otherwise write: ``masked dense`` (``(J * mask) @ M``, its cost
  does not depend on k so it is timed once, at the first k > 0), ``csr``
  (``torch.sparse`` CSR ``@ M``, CSR matrix built outside the timing) and
  ``torch gather`` (the torch-ops reference, for k <= 16);
* floors measured in the same run: ``copy`` (``out.copy_(M)``: one read and one write
  of M) and ``dense`` (``torch.mm(J, M, out=out)``).

Each time is the median of ``repeats`` calls after one warm-up call. Every method
is timed alternately with its floor on the same buffers (floor, method, floor, ...),
and its ratio is taken to that paired floor. On a shared host the memory bandwidth
drifts (the copy floor at n = 512 measured 22 ms and 37 ms a few minutes apart
here), which a floor timed once per size would mix into the ratios. Slow calls
(warm-up over ``slow_s`` seconds) get fewer repeats, at least one, so that the full
run stays within about ten minutes. The number of calls is recorded. A batched mode
repeats the sparse, exact and floor timings with B independent streams.

Writes ``bench.json`` (every time, the floors, ratios, fitted scaling exponents,
per-call overheads, machine and versions) and ``bench.png`` (log-log time vs n).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import click
import torch

from .kernels import (
    check_memory,
    estimate_influence_memory,
    exact_propagate,
    resolve_backend,
    sparse_propagate,
    sparse_propagate_reference,
)

DEFAULT_SIZES = (64, 128, 256, 512)
QUICK_SIZES = (16, 32)
DEFAULT_KS: tuple[int | str, ...] = (0, 1, 4, 16, "n")
INPUTS = 2  # m, the input size of the sine task; P barely depends on it
REFERENCE_MAX_K = 16  # the torch gather reference is timed for k up to this
BATCHED_MAX_N = 256  # batched mode: sizes above this take minutes per call
SLOW_S = 1.5

SPARSE, EXACT, MASKED, CSR, GATHER = "sparse", "exact", "masked dense", "csr", "gather"
COPY_FLOOR, DENSE_FLOOR = "copy floor", "dense floor"
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def rnn_problem(
    n, k, batch=None, dtype=torch.float32, seed=0, dense_jacobian=False, device="cpu"
):
    """Random inputs of one propagation step for a tanh RNN with n units, m = 2.

    Returns a dict with ``influence``, ``out`` (S, P), ``path_values``,
    ``path_index`` (S, k; distinct source rows per row), ``immediate_values``,
    ``immediate_index`` (S, r: row i's columns in W_hh, W_ih and b) and, when
    ``dense_jacobian``, ``jacobian`` (S, S) and the 0/1 ``mask`` of the paths. The
    values are drawn on the CPU and moved to ``device``, so they do not depend on it.
    """
    g = torch.Generator().manual_seed(seed)
    S, m = n, INPUTS
    P = n * n + n * m + n
    lead = () if batch is None else (batch,)
    rows = torch.arange(S).unsqueeze(1)
    imm_index = torch.cat(
        [
            rows * n + torch.arange(n),  # W_hh[i, :]
            n * n + rows * m + torch.arange(m),  # W_ih[i, :]
            n * n + n * m + rows,  # b[i]
        ],
        dim=1,
    )
    path_index = torch.argsort(torch.rand(S, S, generator=g), dim=1)[:, :k].contiguous()
    problem = {
        "influence": torch.randn(*lead, S, P, generator=g, dtype=dtype),
        "out": torch.empty(*lead, S, P, dtype=dtype),
        "path_values": torch.randn(*lead, S, k, generator=g, dtype=dtype),
        "path_index": path_index,
        "immediate_values": torch.randn(*lead, S, imm_index.shape[1], generator=g).to(
            dtype
        ),
        "immediate_index": imm_index,
    }
    problem["out"].zero_()  # touch the pages outside the timing
    if dense_jacobian:
        problem["jacobian"] = torch.randn(*lead, S, S, generator=g, dtype=dtype)
        mask = torch.zeros(S, S, dtype=dtype)
        mask.scatter_(1, path_index, 1.0)
        problem["mask"] = mask
    return {name: t.to(device) for name, t in problem.items()}


def _cut_repeats(repeats: int, warm: float, slow_s: float) -> int:
    """Return the repeats to time after a warm-up call of ``warm`` seconds: all
    of them, or about ``3 * slow_s`` seconds' worth (at least one) when the call
    took over ``slow_s``."""
    if warm > slow_s:
        return max(1, min(repeats, int(3 * slow_s / warm)))
    return repeats


def _no_sync() -> None:
    """Wait for nothing: CPU calls have finished when they return."""


def time_call(
    fn: Callable[[], object],
    repeats: int,
    slow_s: float = SLOW_S,
    sync: Callable[[], None] = _no_sync,
) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` over ``repeats`` calls after one warm-up call.

    When the warm-up takes over ``slow_s`` seconds, the repeats are cut so that
    they take about ``3 * slow_s`` seconds (at least one call). ``sync`` waits for
    queued device work (``torch.cuda.synchronize`` on a GPU) and runs before the
    clock starts and before it stops.
    """
    fn = _synced(fn, sync)
    sync()
    start = time.perf_counter()
    fn()
    repeats = _cut_repeats(repeats, time.perf_counter() - start, slow_s)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def _synced(fn: Callable[[], object], sync: Callable[[], None]):
    """Return ``fn`` followed by ``sync``, so that a timing covers the device work."""
    if sync is _no_sync:
        return fn

    def call():
        result = fn()
        sync()
        return result

    return call


def time_pair(
    fn: Callable[[], object],
    floor: Callable[[], object],
    repeats: int,
    slow_s: float = SLOW_S,
    sync: Callable[[], None] = _no_sync,
) -> tuple[list[float], list[float]]:
    """Wall times of ``fn`` and of its ``floor``, called alternately.

    One warm-up call of each, then ``repeats`` rounds of (floor, fn); the repeats
    are cut like :func:`time_call` when ``fn`` is slow. Timing the floor next to
    the method keeps their ratio meaningful while the memory bandwidth drifts.
    ``sync`` is used as in :func:`time_call`.
    """
    fn = _synced(fn, sync)
    floor = _synced(floor, sync)
    floor()
    start = time.perf_counter()
    fn()
    repeats = _cut_repeats(repeats, time.perf_counter() - start, slow_s)
    times, floor_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        floor()
        floor_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times, floor_times


def _k_values(ks: Sequence[int | str], n: int) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for k in ks:
        value = n if k == "n" else int(k)
        if not 0 <= value <= n:
            continue
        label = "n" if k == "n" or value == n else str(value)
        if all(v != value for v, _ in out):
            out.append((value, label))
    return out


def parse_ks(text: str) -> tuple[int | str, ...]:
    """``"0,1,4,16,n"`` -> (0, 1, 4, 16, "n")."""
    ks: list[int | str] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part == "n":
            ks.append("n")
        elif part.isdigit():
            ks.append(int(part))
        else:
            raise ValueError(f"ks must be integers >= 0 or 'n'; got {part!r}")
    if not ks:
        raise ValueError("ks must name at least one k")
    return tuple(ks)


def parse_sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(int(p) for p in text.split(",") if p.strip())
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes must be integers >= 1; got {text!r}")
    return sizes


def _configs(sizes, ks, batch):
    """(mode, B or None, n, method, k, label) in run order."""
    configs = []
    modes = [("single", None)]
    if batch and batch > 1:
        modes.append(("batched", batch))
    for mode, B in modes:
        for n in sizes:
            if mode == "batched" and n > BATCHED_MAX_N:
                continue
            configs.append((mode, B, n, COPY_FLOOR, None, "-"))
            configs.append((mode, B, n, DENSE_FLOOR, None, "-"))
            configs.append((mode, B, n, EXACT, n, "n"))
            masked_done = False
            for k, label in _k_values(ks, n):
                configs.append((mode, B, n, SPARSE, k, label))
                if mode == "batched":
                    continue
                if k > 0 and not masked_done:
                    configs.append((mode, B, n, MASKED, k, label))
                    masked_done = True
                if k > 0:
                    configs.append((mode, B, n, CSR, k, label))
                if k <= REFERENCE_MAX_K:
                    configs.append((mode, B, n, GATHER, k, label))
    return configs


def _step_fn(method: str, p: dict) -> Callable[[], object]:
    M, out = p["influence"], p["out"]
    if method == COPY_FLOOR:
        return lambda: out.copy_(M)
    if method == DENSE_FLOOR:
        J = p["jacobian"]
        if M.dim() == 3:
            return lambda: torch.bmm(J, M, out=out)
        return lambda: torch.mm(J, M, out=out)
    if method == EXACT:
        J, iv, ii = p["jacobian"], p["immediate_values"], p["immediate_index"]
        return lambda: exact_propagate(J, M, iv, ii, out)
    args = (
        M,
        p["path_values"],
        p["path_index"],
        p["immediate_values"],
        p["immediate_index"],
    )
    if method == SPARSE:
        return lambda: sparse_propagate(*args, out=out)
    if method == GATHER:
        return lambda: sparse_propagate_reference(*args, out=out)
    if method == MASKED:
        J, mask = p["jacobian"], p["mask"]
        return lambda: torch.mm(J * mask, M, out=out)
    if method == CSR:
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            csr = (p["jacobian"] * p["mask"]).to_sparse_csr()
        return lambda: torch.sparse.mm(csr, M)
    raise ValueError(f"unknown method {method!r}")


def fit_exponent(ns: Sequence[int], times: Sequence[float]) -> float | None:
    """Least-squares slope of log(time) against log(n); None with < 2 sizes."""
    pts = [(math.log(n), math.log(t)) for n, t in zip(ns, times, strict=True) if t > 0]
    if len({x for x, _ in pts}) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    return sxy / sxx


def measure_overheads(dtype: torch.dtype, repeats: int = 2000) -> dict[str, float]:
    """Median µs of an empty-ish call (S = P = k = r = 1) per entry point."""
    from .kernels import _numba

    S = torch.zeros(1, 1, dtype=dtype)
    index = torch.zeros(1, 1, dtype=torch.int64)
    out = torch.zeros(1, 1, dtype=dtype)
    args = (S, S.clone(), index, S.clone(), index.clone())
    arrays = [a.numpy()[None] for a in args[:4]]
    calls = {
        "sparse_propagate (dispatcher, auto)": lambda: sparse_propagate(*args, out=out),
        "numba kernel function (checks + jit call)": lambda: (
            _numba.sparse_propagate_numba(*args, out=out)
        ),
        "compiled kernel alone": lambda: _numba._propagate_serial(
            *arrays, args[4].numpy(), out.numpy()[None], 1, False
        ),
        "torch.ops.sparse_rtrl.sparse_propagate_out": lambda: (
            torch.ops.sparse_rtrl.sparse_propagate_out(*args, out)
        ),
        "torch reference": lambda: sparse_propagate_reference(*args, out=out),
    }
    result = {}
    for name, fn in calls.items():
        for _ in range(20):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        result[name] = statistics.median(times) * 1e6
    return result


def machine_info(device: torch.device | str = "cpu") -> dict:
    """nproc, CPU model, threads, load, versions, and the GPU when ``device`` is
    one."""

    def _run(cmd):
        try:
            return subprocess.run(
                cmd, capture_output=True, text=True, check=False
            ).stdout
        except OSError:
            return ""

    model = ""
    for line in _run(["lscpu"]).splitlines():
        if line.startswith("Model name"):
            model = line.split(":", 1)[1].strip()
    info = {
        "nproc": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    device = torch.device(device)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    try:
        import numba

        info["numba"] = numba.__version__
        info["numba_threads"] = numba.get_num_threads()
    except ImportError:  # pragma: no cover - numba is a core dependency
        info["numba"] = None
    try:
        from importlib.metadata import version

        info["triton"] = version("triton")
    except Exception:
        info["triton"] = None
    return info


def _loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def run_benchmark(
    sizes: Sequence[int] = DEFAULT_SIZES,
    ks: Sequence[int | str] = DEFAULT_KS,
    dtype: str | torch.dtype = "float32",
    batch: int = 8,
    repeats: int = 5,
    out_dir: str | os.PathLike = "results/bench",
    *,
    progress: bool = True,
    slow_s: float = SLOW_S,
    plot: bool = True,
    device: str | torch.device = "cpu",
) -> dict:
    """Time the propagation step over sizes, k and methods; write bench.json/png.

    Args:
      sizes: n values (state size S = n).
      ks: path counts; ``"n"`` means k = n (all paths). k > n is skipped.
      dtype: ``"float32"`` or ``"float64"`` (or the torch dtype).
      batch: streams in the batched mode (<= 1 skips it; sizes above 256 too).
      repeats: timed calls per configuration (median reported; warm-up excluded).
      out_dir: folder for bench.json and bench.png (created).
      progress: show a tqdm bar over configurations.
      slow_s: calls slower than this get fewer repeats (see :func:`time_call`).
      device: where the tensors live; ``cuda`` times the GPU backend (Triton when
        installed) against floors measured on the GPU.

    Returns the dict written to bench.json: ``results`` (one row per timing with
    ``median_ms``, ``ratio_to_floor``, ``speedup_vs_exact``), ``floors``,
    ``scaling`` (exponent of time vs n per method), ``overhead_us`` and ``machine``.
    """
    from tqdm.auto import tqdm

    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {list(_DTYPES)}; got {dtype!r}")
        torch_dtype = _DTYPES[dtype]
    else:
        torch_dtype = dtype
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {str(device)!r} requested but torch.cuda.is_available() is "
            "False; install a CUDA build of torch or use --device cpu"
        )
    sync = torch.cuda.synchronize if device.type == "cuda" else _no_sync
    sizes = sorted(set(int(n) for n in sizes))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = _dt.datetime.now().astimezone()
    load_before = _loadavg()

    configs = _configs(sizes, ks, batch)
    rows: list[dict] = []
    skipped: list[dict] = []
    problems: dict = {}
    # Counted by hand: iterating the bar left its count behind its label, because
    # tqdm syncs the count of an iterated bar only at its own refreshes.
    bar = tqdm(total=len(configs), desc="bench", disable=not progress, leave=False)
    for mode, B, n, method, k, label in configs:
        bar.set_postfix_str(f"{mode} n={n} {method} k={label}", refresh=False)
        bar.update()
        key = (mode, n, k if method in (SPARSE, MASKED, CSR, GATHER) else None)
        if key not in problems:
            problems.clear()  # one problem in memory at a time
            P = n * n + INPUTS * n + n
            need = estimate_influence_memory(n, P, n, batch=B or 1, dtype=torch_dtype)
            try:
                check_memory(2 * need, device, f"the n={n} benchmark problem")
            except MemoryError as error:
                skipped.append(
                    {"mode": mode, "n": n, "method": method, "why": str(error)}
                )
                continue
            problems[key] = rnn_problem(
                n,
                k if k is not None else 1,
                B,
                torch_dtype,
                seed=n,
                dense_jacobian=True,
                device=device,
            )
        fn = _step_fn(method, problems[key])
        paired = None
        if method in (COPY_FLOOR, DENSE_FLOOR):
            median, times = time_call(fn, repeats, slow_s, sync)
        else:
            floor_fn = _step_fn(_floor_of(method), problems[key])
            times, floor_times = time_pair(fn, floor_fn, repeats, slow_s, sync)
            median = statistics.median(times)
            paired = statistics.median(floor_times) * 1e3
        rows.append(
            {
                "mode": mode,
                "batch": B or 1,
                "n": n,
                "num_params": n * n + INPUTS * n + n,
                "k": k,
                "k_label": label,
                "method": method,
                "median_ms": median * 1e3,
                "min_ms": min(times) * 1e3,
                "calls": len(times),
                "times_ms": [t * 1e3 for t in times],
                "paired_floor_ms": paired,
            }
        )
    bar.close()
    problems.clear()
    _add_ratios(rows)
    result = {
        "command": " ".join(sys.argv),
        "date": started.isoformat(timespec="seconds"),
        "dtype": str(torch_dtype).replace("torch.", ""),
        "device": str(device),
        # The kernel behind the "sparse" rows (backend "auto" for this device).
        "sparse_backend": resolve_backend("auto", device, torch_dtype),
        "sizes": sizes,
        "ks": [str(k) for k in ks],
        "batch": batch,
        "repeats": repeats,
        "machine": machine_info(device),
        "loadavg_before": load_before,
        "loadavg_after": _loadavg(),
        # The entry points timed there are the CPU ones (numba, custom op).
        "overhead_us": measure_overheads(torch_dtype) if device.type == "cpu" else {},
        "results": rows,
        "floors": _floors(rows),
        "scaling": _scaling(rows),
        "skipped": skipped,
    }
    (out_dir / "bench.json").write_text(json.dumps(result, indent=2))
    if plot:
        plot_benchmark(result, out_dir / "bench.png")
    return result


def _series(row: dict) -> str:
    if row["method"] in (SPARSE, CSR, GATHER) or (
        row["method"] == MASKED and row["k_label"] != "-"
    ):
        if row["method"] == MASKED:
            return MASKED
        return f"{row['method']} k={row['k_label']}"
    return row["method"]


def _floors(rows):
    floors: dict = {}
    for row in rows:
        if row["method"] in (COPY_FLOOR, DENSE_FLOOR):
            floors.setdefault(row["mode"], {}).setdefault(str(row["n"]), {})[
                row["method"]
            ] = row["median_ms"]
    return floors


def _floor_of(method: str) -> str:
    """Return the name of the floor that ``method`` is compared with."""
    return COPY_FLOOR if method in (SPARSE, GATHER, CSR, COPY_FLOOR) else DENSE_FLOOR


def _add_ratios(rows):
    """``ratio_to_floor``: the median time over the median of the floor timed
    alternately with it (``paired_floor_ms``), or over the floor's own row."""
    floors = _floors(rows)
    exact = {(r["mode"], r["n"]): r["median_ms"] for r in rows if r["method"] == EXACT}
    for row in rows:
        f = floors.get(row["mode"], {}).get(str(row["n"]), {})
        floor_name = _floor_of(row["method"])
        floor = row.get("paired_floor_ms") or f.get(floor_name)
        row["floor"] = floor_name
        row["ratio_to_floor"] = row["median_ms"] / floor if floor else None
        ex = exact.get((row["mode"], row["n"]))
        row["speedup_vs_exact"] = (
            ex / row["median_ms"]
            if ex and row["method"] not in (EXACT, COPY_FLOOR, DENSE_FLOOR)
            else None
        )


#: Minimum number of sizes to fit a scaling exponent to. Two points always lie
#: exactly on a line, so an exponent from two sizes cannot be checked.
MIN_SCALING_SIZES = 3


def _scaling(rows):
    """Fitted exponent per mode and series; None with fewer than
    ``MIN_SCALING_SIZES`` sizes."""
    series: dict = {}
    for row in rows:
        series.setdefault(row["mode"], {}).setdefault(_series(row), []).append(
            (row["n"], row["median_ms"])
        )
    return {
        mode: {
            name: fit_exponent([n for n, _ in pts], [t for _, t in pts])
            if len({n for n, _ in pts}) >= MIN_SCALING_SIZES
            else None
            for name, pts in by_name.items()
        }
        for mode, by_name in series.items()
    }


def format_table(result: dict) -> str:
    """The printed table: time, ratio to its floor, speedup over exact."""
    lines = []
    if "sparse_backend" in result:
        lines.append(
            f"device {result.get('device', 'cpu')}, dtype {result['dtype']}, "
            f"sparse rows: backend {result['sparse_backend']}"
        )
    header = (
        f"{'mode':8} {'n':>4} {'k':>4} {'method':13} {'ms':>10} "
        f"{'x floor':>8} {'floor':11} {'floor ms':>9} {'vs exact':>9} {'calls':>5}"
    )
    lines.append(header)
    lines.append("-" * len(header))
    for r in result["results"]:
        ratio = f"{r['ratio_to_floor']:.2f}" if r["ratio_to_floor"] else "-"
        speed = f"{r['speedup_vs_exact']:.1f}x" if r["speedup_vs_exact"] else "-"
        # The floor timed alternately with this method (older files lack it).
        paired = r.get("paired_floor_ms")
        floor_ms = f"{paired:.3f}" if paired else "-"
        lines.append(
            f"{r['mode']:8} {r['n']:>4} {r['k_label']:>4} {r['method']:13} "
            f"{r['median_ms']:>10.3f} {ratio:>8} {r['floor']:11} {floor_ms:>9} "
            f"{speed:>9} {r['calls']:>5}"
        )
    lines.append("")
    fitted = [
        (mode, name, exp)
        for mode, by_name in result["scaling"].items()
        for name, exp in by_name.items()
        if exp is not None
    ]
    if fitted:
        lines.append("scaling exponent of time vs n (log-log least squares):")
        for mode, name, exp in fitted:
            lines.append(f"  {mode:8} {name:22} n^{exp:.2f}")
    else:
        lines.append(
            f"scaling exponents: not fitted (they need {MIN_SCALING_SIZES} or more "
            "sizes)"
        )
    lines.append("")
    lines.append("per-call overhead of an empty-ish call (S=P=k=r=1), median µs:")
    for name, us in result["overhead_us"].items():
        lines.append(f"  {name:45} {us:8.1f}")
    for skip in result.get("skipped", []):
        lines.append(f"skipped {skip['mode']} n={skip['n']}: {skip['why']}")
    return "\n".join(lines)


def plot_benchmark(result: dict, path: str | os.PathLike) -> None:
    """Log-log time vs n per method, one panel per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = sorted(
        {r["mode"] for r in result["results"]}, key=["single", "batched"].index
    )
    fig, axes = plt.subplots(
        1, max(1, len(modes)), figsize=(8.5 * max(1, len(modes)), 5), squeeze=False
    )
    for ax, mode in zip(axes[0], modes, strict=False):
        series: dict = {}
        for r in result["results"]:
            if r["mode"] == mode:
                series.setdefault(_series(r), []).append((r["n"], r["median_ms"]))
        colors = plt.cm.tab20.colors
        for i, (name, pts) in enumerate(series.items()):
            pts.sort()
            style = "--" if "floor" in name else "-"
            exp = result["scaling"].get(mode, {}).get(name)
            label = f"{name} (n^{exp:.1f})" if exp is not None else name
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                style,
                marker="o",
                label=label,
                color=colors[i % len(colors)],
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("n (state size)")
        ax.set_ylabel("time per step (ms)")
        batch = next((r["batch"] for r in result["results"] if r["mode"] == mode), 1)
        where = result.get("device", "cpu")
        ax.set_title(f"{mode} (B={batch}, {result['dtype']}, {where})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@click.command("bench")
@click.option(
    "--sizes",
    default=",".join(map(str, DEFAULT_SIZES)),
    show_default=True,
    help="Comma-separated state sizes n.",
)
@click.option(
    "--ks",
    default="0,1,4,16,n",
    show_default=True,
    help="Comma-separated path counts k; 'n' means k = n.",
)
@click.option(
    "--dtype", type=click.Choice(list(_DTYPES)), default="float32", show_default=True
)
@click.option(
    "--batch",
    type=int,
    default=8,
    show_default=True,
    help="Streams in the batched mode (n <= 256); 1 skips it.",
)
@click.option("--repeats", type=int, default=5, show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="results/bench",
    show_default=True,
    help="Folder for bench.json and bench.png.",
)
@click.option(
    "--quick", is_flag=True, help="Small sizes (16, 32), 3 repeats: a smoke test."
)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="Where to time the step: cpu, or cuda for the GPU backend.",
)
@click.option("--quiet", is_flag=True, help="Hide the progress bar.")
def bench_command(sizes, ks, dtype, batch, repeats, out_dir, quick, device, quiet):
    """Time one propagation step: sparse (per k), exact, masked dense, CSR and the
    copy and dense-product floors; print the table, write bench.json and bench.png.
    """
    try:
        size_list = QUICK_SIZES if quick else parse_sizes(sizes)
        k_list = parse_ks(ks)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    if quick:
        repeats = min(repeats, 3)
    try:
        torch.device(device)
    except RuntimeError as error:
        raise click.BadParameter(str(error), param_hint="--device") from error
    try:
        result = run_benchmark(
            size_list,
            k_list,
            dtype,
            batch,
            repeats,
            out_dir,
            progress=not quiet,
            device=device,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    click.echo(format_table(result))
    click.echo(f"results written to {Path(out_dir) / 'bench.json'} and bench.png")
