"""How much memory an RTRL learner needs, and a check before allocating it."""

from __future__ import annotations

import os

import torch

_GIB = float(1 << 30)
_INDEX_BYTES = torch.empty((), dtype=torch.int64).element_size()


def _itemsize(dtype: torch.dtype) -> int:
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype; got dtype={dtype!r}")
    return torch.empty((), dtype=dtype).element_size()


def estimate_influence_memory(
    state_size: int,
    num_params: int,
    k: int,
    batch: int = 1,
    dtype: torch.dtype = torch.float32,
    *,
    immediate_size: int = 0,
) -> int:
    """Bytes held by the buffers of one RTRL learner step.

    Counts, per stream (times ``batch``):

    * two influence buffers (S, P): ``M_{t-1}`` and ``M_t``, double-buffered;
    * the Jacobian (S, S) of the cell, which exact RTRL multiplies by and sparse
      RTRL reads its path values from;
    * the paths (S, k): their values (``dtype``) and source rows (int64);
    * optionally the immediate term (S, ``immediate_size``): values and int64
      columns (0 by default; it is O(S·r), small next to S·P).

    The estimate is exact for those tensors (``nbytes`` of what a learner
    allocates; tested) and leaves out Python and allocator overheads.
    """
    for name, value, low in (
        ("state_size", state_size, 1),
        ("num_params", num_params, 1),
        ("k", k, 0),
        ("batch", batch, 1),
        ("immediate_size", immediate_size, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(
                f"{name} must be an integer >= {low}; got {name}={value!r}"
            )
    if k > state_size:
        raise ValueError(f"k must be in [0, state_size={state_size}]; got k={k}")
    e = _itemsize(dtype)
    per_stream = (
        2 * state_size * num_params * e
        + state_size * state_size * e
        + state_size * k * (e + _INDEX_BYTES)
    )
    per_stream_immediate = state_size * immediate_size * e
    shared = state_size * immediate_size * _INDEX_BYTES  # columns, shared by streams
    return batch * (per_stream + per_stream_immediate) + shared


def available_memory(device: torch.device | str) -> int:
    """Bytes that can still be allocated on ``device``.

    CPU: ``MemAvailable`` from /proc/meminfo (free RAM plus reclaimable cache), or
    available physical pages where /proc is missing. CUDA: free bytes from
    ``torch.cuda.mem_get_info``. Other devices raise ``ValueError``.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as fh:
                for line in fh:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    raise ValueError(f"cannot tell the free memory of device {device}; use cpu or cuda")


def check_memory(
    needed_bytes: int,
    device: torch.device | str = "cpu",
    what: str = "the influence matrices",
) -> None:
    """Raise ``MemoryError`` when ``needed_bytes`` exceed what ``device`` has free.

    The message reads "needs X GiB for <what>, Y GiB available; reduce n or batch".
    """
    if needed_bytes < 0:
        raise ValueError(f"needed_bytes must be >= 0; got {needed_bytes}")
    available = available_memory(device)
    if needed_bytes > available:
        raise MemoryError(
            f"needs {needed_bytes / _GIB:.2f} GiB for {what}, "
            f"{available / _GIB:.2f} GiB available on {torch.device(device)}; "
            "reduce n or batch"
        )
