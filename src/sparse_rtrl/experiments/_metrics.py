"""Metrics of the adaptation experiment."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def recovery(loss_reference: float, loss_full: float, loss_method: float) -> float:
    """Return ``R = (L_ref − L_method) / (L_ref − L_full) × 100``, in percent.

    ``L_ref`` is the frozen model's loss (or k = 0's) and ``L_full`` exact RTRL's.
    Values above 100 mean the method beat exact RTRL. Returns NaN when the reference
    and full losses are equal, since recovery is undefined there.
    """
    gap = loss_reference - loss_full
    if gap == 0 or not all(
        map(math.isfinite, (loss_reference, loss_full, loss_method))
    ):
        return math.nan
    return 100.0 * (loss_reference - loss_method) / gap


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Return mean, sample standard deviation (ddof=1) and count of finite values."""
    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if finite.size == 0:
        return math.nan, math.nan, 0
    std = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    return float(finite.mean()), std, int(finite.size)


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Return ``CV = std / mean`` (sample std, ddof=1) of the finite values."""
    mean, std, count = mean_std(values)
    if count < 2 or mean == 0:
        return math.nan
    return std / abs(mean)


def condition_number(singular_values: Sequence[float]) -> float:
    """Return ``σ_max / σ_min``; infinite when the smallest singular value is zero."""
    s = np.asarray(singular_values, dtype=float)
    smallest = s.min()
    return math.inf if smallest == 0 else float(s.max() / smallest)


def format_mean_std(mean: float, std: float, digits: int = 1) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
