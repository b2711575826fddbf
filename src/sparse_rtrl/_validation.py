"""Argument checks shared by cells, learners, tasks and experiments.

Every check raises ``ValueError`` with a message that names the argument, the value it
got and the valid range, so that a caller can fix the call without reading the code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class NonFiniteError(FloatingPointError):
    """A NaN or Inf appeared in the data, the state or the loss of an online run."""


def check_int_range(
    name: str, value: int, low: int, high: int, context: str = ""
) -> int:
    """Return ``value`` when it is an integer in ``[low, high]``, else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer; got {name}={value!r}")
    if not low <= value <= high:
        suffix = f" {context}" if context else ""
        raise ValueError(
            f"{name} must be in [{low}, {high}]; got {name}={value}{suffix}"
        )
    return value


def check_positive(name: str, value: float) -> float:
    """Return ``value`` when it is a finite number above zero, else raise."""
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0; got {name}={value!r}")
    return value


def check_non_negative(name: str, value: float) -> float:
    """Return ``value`` when it is a finite number of at least zero, else raise."""
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0; got {name}={value!r}")
    return value


def check_choice(name: str, value: str, choices: Iterable[str]) -> str:
    """Return ``value`` when it is one of ``choices``, else raise listing them."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}; got {name}={value!r}")
    return value


def check_shape(name: str, tensor: torch.Tensor, shape: tuple[int | None, ...]) -> None:
    """Raise unless ``tensor`` has ``shape``; ``None`` in ``shape`` matches any size."""
    ok = tensor.dim() == len(shape) and all(
        want is None or got == want for got, want in zip(tensor.shape, shape)
    )
    if not ok:
        expected = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(
            f"{name} must have shape {expected}; got shape {tuple(tensor.shape)}"
        )


def check_finite(name: str, tensor: torch.Tensor, where: str = "") -> None:
    """Raise ``NonFiniteError`` when ``tensor`` contains a NaN or an Inf."""
    if not torch.isfinite(tensor).all():
        bad = "NaN" if torch.isnan(tensor).any() else "Inf"
        suffix = f" ({where})" if where else ""
        raise NonFiniteError(f"{name} contains {bad}{suffix}")


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Map ``"float32"``/``"float64"`` (or a torch dtype) to a torch floating dtype."""
    table = {"float32": torch.float32, "float64": torch.float64}
    if isinstance(dtype, torch.dtype):
        if dtype not in table.values():
            raise ValueError(f"dtype must be float32 or float64; got dtype={dtype}")
        return dtype
    check_choice("dtype", dtype, table)
    return table[dtype]
