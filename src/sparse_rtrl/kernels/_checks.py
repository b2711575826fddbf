"""Argument checks shared by every propagation backend.

Each check raises with a message that names the argument, what it got and what is
valid. The checks are O(1) in the size of the influence matrix (shapes, dtypes,
devices, pointers), so they cost a few microseconds per step; the fast kernels check
index ranges themselves, inside the compiled code.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

#: Floating dtypes the fast kernels are compiled for.
SUPPORTED_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
_SUPPORTED_NAMES = ", ".join(str(d) for d in SUPPORTED_DTYPES)


class Shapes(NamedTuple):
    """Sizes of one call: batch (1 when unbatched), rows, columns, paths, immediates."""

    batched: bool
    batch: int
    state_size: int
    num_params: int
    k: int
    r: int
    shared_index: bool


def check_float_dtype(name: str, tensor: torch.Tensor) -> None:
    """Raise ``TypeError`` unless ``tensor`` is float32 or float64 (never cast)."""
    if tensor.dtype not in SUPPORTED_DTYPES:
        raise TypeError(
            f"{name} has dtype {tensor.dtype}; the fast kernels support only "
            f"{_SUPPORTED_NAMES} (convert explicitly, nothing is cast silently)"
        )


def check_index_dtype(name: str, tensor: torch.Tensor) -> None:
    """Raise ``TypeError`` unless ``tensor`` contains int64 indices."""
    if tensor.dtype != torch.int64:
        raise TypeError(f"{name} must have dtype torch.int64; got {tensor.dtype}")


def _memory_span(t: torch.Tensor) -> tuple[int, int]:
    """Return the first and one-past-last byte addresses ``t`` can touch."""
    start = t.data_ptr()
    size = t.element_size()
    if t.is_contiguous():
        return start, start + t.numel() * size
    end = start
    for length, stride in zip(t.shape, t.stride(), strict=True):
        if stride < 0:
            start += (length - 1) * stride * size
        else:
            end += (length - 1) * stride * size
    return start, end + size


def _check_out_separate(out: torch.Tensor, inputs) -> None:
    """Raise ``ValueError`` when ``out`` shares memory with one of ``inputs``
    (name, tensor pairs): the kernels read every input while writing ``out``."""
    if out.numel() == 0:
        return
    out_start, out_end = _memory_span(out)
    for name, t in inputs:
        if t.device != out.device or t.numel() == 0:
            continue
        start, end = _memory_span(t)
        if out_start < end and start < out_end:
            hint = " (double-buffer M_t and M_{t-1})" if name == "influence" else ""
            raise ValueError(
                f"out overlaps {name}; the kernels read {name} while writing out, "
                f"so pass a separate buffer{hint}"
            )


def check_propagate_args(
    influence: torch.Tensor,
    path_values: torch.Tensor,
    path_index: torch.Tensor,
    immediate_values: torch.Tensor,
    immediate_index: torch.Tensor,
    out: torch.Tensor | None,
) -> Shapes:
    """Check the arguments of a sparse propagation call and return its sizes.

    Shapes follow :func:`sparse_propagate_reference`: ``influence`` (B?, S, P),
    ``path_values`` (B?, S, k), ``path_index`` (B?, S, k) or shared (S, k),
    ``immediate_values`` (B?, S, r), ``immediate_index`` (S, r), ``out`` like
    ``influence``.
    """
    if influence.dim() not in (2, 3):
        raise ValueError(
            "influence must have shape (S, P) or (B, S, P); "
            f"got {tuple(influence.shape)}"
        )
    batched = influence.dim() == 3
    batch = influence.shape[0] if batched else 1
    state_size, num_params = influence.shape[-2:]
    lead = (batch,) if batched else ()
    check_float_dtype("influence", influence)
    values = (("path_values", path_values), ("immediate_values", immediate_values))
    for name, t in values:
        if t.dtype != influence.dtype:
            raise TypeError(
                f"{name} has dtype {t.dtype} but influence has {influence.dtype}; "
                "all value tensors must share one dtype"
            )
    check_index_dtype("path_index", path_index)
    check_index_dtype("immediate_index", immediate_index)

    if path_values.dim() != influence.dim() or tuple(path_values.shape[:-1]) != (
        *lead,
        state_size,
    ):
        raise ValueError(
            f"path_values must have shape {(*lead, state_size, 'k')}; "
            f"got {tuple(path_values.shape)}"
        )
    k = path_values.shape[-1]
    shared_index = path_index.dim() == 2
    allowed = [(state_size, k)]
    if batched:
        allowed.insert(0, (batch, state_size, k))
    if tuple(path_index.shape) not in allowed:
        raise ValueError(
            f"path_index must have shape {' or '.join(map(str, allowed))}; "
            f"got {tuple(path_index.shape)}"
        )
    if immediate_index.dim() != 2 or immediate_index.shape[0] != state_size:
        raise ValueError(
            f"immediate_index must have shape ({state_size}, r); "
            f"got {tuple(immediate_index.shape)}"
        )
    r = immediate_index.shape[1]
    if tuple(immediate_values.shape) != (*lead, state_size, r):
        raise ValueError(
            f"immediate_values must have shape {(*lead, state_size, r)}; "
            f"got {tuple(immediate_values.shape)}"
        )
    if out is not None:
        if out.shape != influence.shape or out.dtype != influence.dtype:
            raise ValueError(
                f"out must match influence in shape and dtype "
                f"({tuple(influence.shape)}, {influence.dtype}); "
                f"got ({tuple(out.shape)}, {out.dtype})"
            )
        inputs = (
            ("influence", influence),
            ("path_values", path_values),
            ("path_index", path_index),
            ("immediate_values", immediate_values),
            ("immediate_index", immediate_index),
        )
        _check_out_separate(out, inputs)
        if out.requires_grad:
            raise ValueError(
                "out requires grad, but it is written in place; pass a buffer "
                "created without requires_grad (or call without out to get a "
                "differentiable result)"
            )
    devices = {
        t.device
        for t in (influence, path_values, path_index, immediate_values, immediate_index)
    }
    if out is not None:
        devices.add(out.device)
    if len(devices) != 1:
        raise ValueError(
            f"all tensors must be on one device; got {sorted(map(str, devices))}"
        )
    return Shapes(batched, batch, state_size, num_params, k, r, shared_index)


def check_contiguous(name: str, tensor: torch.Tensor) -> None:
    """Raise ``ValueError`` when a large tensor is not contiguous.

    Used for ``influence`` and ``out``: copying M every step would cost as much as
    the kernel itself, and ``out`` must be written in place.
    """
    if not tensor.is_contiguous():
        raise ValueError(
            f"{name} must be contiguous (row-major); got strides {tensor.stride()} for "
            f"shape {tuple(tensor.shape)}. Copying it every step would cost as much as "
            "the propagation itself, so the kernels refuse; call .contiguous() once "
            "when the buffer is allocated"
        )
