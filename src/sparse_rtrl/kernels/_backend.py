"""Backend names, availability and resolution for the propagation kernels."""

from __future__ import annotations

import functools
import importlib.util

import torch

from ._checks import SUPPORTED_DTYPES
from ._reference import sparse_propagate_reference

#: Valid values of ``backend``.
BACKENDS: tuple[str, ...] = ("auto", "reference", "numba", "triton")


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here (package missing or wrong device)."""


def _load_numba():
    from ._numba import sparse_propagate_numba

    return sparse_propagate_numba


def _load_triton():
    from ._triton import sparse_propagate_triton

    return sparse_propagate_triton


#: Backend name -> function returning the kernel (imports lazily: numba and triton
#: take a while to import and are only loaded when used).
KERNELS = {
    "reference": lambda: sparse_propagate_reference,
    "numba": _load_numba,
    "triton": _load_triton,
}


@functools.cache
def numba_available() -> bool:
    """True when numba can be imported."""
    return importlib.util.find_spec("numba") is not None


@functools.cache
def _triton_importable() -> bool:
    from ._triton import triton_available

    return triton_available()


def _triton_interpreting() -> bool:
    from ._triton import interpreting

    return interpreting()


def check_backend_name(backend: str) -> str:
    """Raise ``ValueError`` listing the valid names unless ``backend`` is one."""
    if backend not in BACKENDS:
        raise ValueError(
            f"backend must be one of {list(BACKENDS)}; got backend={backend!r}"
        )
    return backend


def backend_problem(backend: str, device: torch.device) -> str | None:
    """Why ``backend`` cannot run on ``device`` (``None`` when it can)."""
    device = torch.device(device)
    if backend == "reference":
        return None
    if backend == "numba":
        if not numba_available():
            return "numba is not installed (pip install numba)"
        if device.type != "cpu":
            return f"the numba backend runs on CPU tensors; got device {device}"
        return None
    if backend == "triton":
        if not _triton_importable():
            return "triton is not installed (pip install 'sparse-rtrl[gpu]')"
        if device.type == "cuda":
            return None
        if device.type == "cpu" and _triton_interpreting():
            return None
        return (
            f"the triton backend runs on CUDA tensors; got device {device} "
            "(set TRITON_INTERPRET=1 before importing triton to interpret on CPU)"
        )
    return None


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """Backends that can run on ``device`` here (``auto`` not included)."""
    device = torch.device(device)
    return [b for b in BACKENDS[1:] if backend_problem(b, device) is None]


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype) -> str:
    """Turn ``backend`` into a concrete one for ``device`` and ``dtype``.

    ``auto``: numba on CPU, triton on CUDA when installed, else the reference; the
    reference also for dtypes other than float32/float64 (the fast kernels raise on
    them rather than casting). A named backend that cannot run on ``device`` raises
    :class:`BackendUnavailableError`.
    """
    check_backend_name(backend)
    device = torch.device(device)
    if backend == "auto":
        if dtype not in SUPPORTED_DTYPES:
            return "reference"
        preferred = "triton" if device.type == "cuda" else "numba"
        if device.type == "cpu" and _triton_interpreting():
            preferred = "numba"
        return preferred if backend_problem(preferred, device) is None else "reference"
    problem = backend_problem(backend, device)
    if problem is not None:
        usable = available_backends(device)
        raise BackendUnavailableError(
            f"backend={backend!r} cannot run here: {problem}; "
            f"backends available for {device}: {usable + ['auto']}"
        )
    return backend


def limit_kernel_threads() -> None:
    """Run torch and the numba kernel on one thread in this process.

    A worker of a process pool shares the cores with the other workers; a parallel
    region there waits for descheduled threads, which measured 5-10x slower than
    one thread per worker on a loaded 2-core machine.
    """
    torch.set_num_threads(1)
    if numba_available():
        import numba

        numba.set_num_threads(1)
