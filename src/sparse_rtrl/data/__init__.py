"""Neural recordings for decoding: loaders, drift and synthetic sessions.

Every loader returns a ``Session`` of binned spike counts (T, C) and 2-D velocity
(T, 2). ``align_channels`` matches two sessions by electrode identity, and
``apply_drift`` or ``make_synthetic_pair`` produce a drifted second session.
"""

from ._drift import DriftConfig, DriftDraw, apply_drift, draw_drift, fit_linear_tuning
from ._mat import (
    default_primate_dir,
    load_demo_pair,
    load_matrices,
    load_odoherty_mat,
)
from ._nwb import load_nwb
from ._session import DataError, Session, align_channels, bin_spike_times
from ._synthetic import make_synthetic_pair

__all__ = [
    "DataError",
    "DriftConfig",
    "DriftDraw",
    "Session",
    "align_channels",
    "apply_drift",
    "bin_spike_times",
    "default_primate_dir",
    "draw_drift",
    "fit_linear_tuning",
    "load_demo_pair",
    "load_matrices",
    "load_nwb",
    "load_odoherty_mat",
    "make_synthetic_pair",
]
