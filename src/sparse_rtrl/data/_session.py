"""The ``Session`` container, its checks, binning, and channel alignment."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

KINDS = ("real", "synthetic", "drifted")
NAN_POLICIES = ("raise", "interpolate")


class DataError(ValueError):
    """A recording file or array is missing, unreadable or invalid.

    Attributes:
      source: the file (or other source) that failed.
      field: the key, series or column that failed; ``None`` for the whole file.
    """

    def __init__(self, source: str | Path | None, field: str | None, problem: str):
        self.source = None if source is None else str(source)
        self.field = field
        parts = []
        if self.source is not None:
            parts.append(self.source)
        if field is not None:
            parts.append(f"field {field!r}")
        parts.append(problem)
        super().__init__(": ".join(parts))


@dataclass
class Session:
    """One recording session: binned spike counts and the 2-D velocity they decode.

    Attributes:
      counts: (T, C) float spike counts per bin and channel. For a source that only
        has firing rates, ``metadata["counts_unit"]`` is ``"rate"``.
      velocity: (T, 2) float hand or cursor velocity, the mean over each bin.
      channel_ids: C strings naming the electrode or unit of each column.
      bin_width: width of one bin, in seconds.
      metadata: ``subject``, ``session_id``, ``source_file`` and ``kind`` (one of
        ``"real"``, ``"synthetic"``, ``"drifted"``), plus loader-specific entries.
        ``channel_identity`` is ``"index"`` when ``channel_ids`` are only column
        positions and name no electrode.
      trial_starts: (K,) sorted int bin indices where a trial starts, or ``None``
        when the source has no trial timing.
    """

    counts: np.ndarray
    velocity: np.ndarray
    channel_ids: list[str]
    bin_width: float
    metadata: dict = field(default_factory=dict)
    trial_starts: np.ndarray | None = None

    def __post_init__(self):
        source = self.metadata.get("source_file")
        self.counts = _float_matrix(self.counts, source, "counts")
        self.velocity = _float_matrix(self.velocity, source, "velocity")
        self.channel_ids = [str(name) for name in self.channel_ids]
        check_session_arrays(
            self.counts, self.velocity, self.channel_ids, self.bin_width, source
        )
        if self.trial_starts is not None:
            starts = np.unique(np.asarray(self.trial_starts, dtype=np.int64))
            if starts.size and (starts[0] < 0 or starts[-1] >= len(self.counts)):
                raise DataError(
                    source,
                    "trial_starts",
                    f"bin indices must be in [0, {len(self.counts) - 1}]; "
                    f"got range [{starts[0]}, {starts[-1]}]",
                )
            self.trial_starts = starts

    def __len__(self) -> int:
        return self.counts.shape[0]

    @property
    def n_channels(self) -> int:
        return self.counts.shape[1]

    def select_channels(self, indices: Sequence[int]) -> Session:
        """Return a copy keeping the columns ``indices``, in that order."""
        indices = list(indices)
        return replace(
            self,
            counts=self.counts[:, indices],
            channel_ids=[self.channel_ids[i] for i in indices],
            metadata=dict(self.metadata),
        )


def _float_matrix(values, source, name: str) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(source, name, f"not a numeric array ({error})") from error


def check_session_arrays(
    counts: np.ndarray,
    velocity: np.ndarray,
    channel_ids: Sequence[str],
    bin_width: float,
    source: str | Path | None = None,
) -> None:
    """Raise ``DataError`` unless the arrays form one valid session.

    Args:
      counts: (T, C) spike counts, finite and non-negative, with T >= 1 and C >= 1.
      velocity: (T, 2) velocity, finite.
      channel_ids: C unique names.
      bin_width: bin width in seconds, finite and > 0.
      source: file named in the error message.
    """
    if counts.ndim != 2 or counts.shape[0] < 1 or counts.shape[1] < 1:
        raise DataError(
            source, "counts", f"must have shape (T, C), T, C >= 1; got {counts.shape}"
        )
    if velocity.ndim != 2 or velocity.shape[1] != 2:
        raise DataError(
            source, "velocity", f"must have shape (T, 2); got {velocity.shape}"
        )
    if velocity.shape[0] != counts.shape[0]:
        raise DataError(
            source,
            "velocity",
            f"must have as many rows as counts; got {velocity.shape[0]} velocity "
            f"rows and {counts.shape[0]} count rows",
        )
    for name, values in (("counts", counts), ("velocity", velocity)):
        if not np.isfinite(values).all():
            bad_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
            raise DataError(
                source,
                name,
                f"contains NaN or Inf in {bad_rows.size} rows (first at row "
                f"{bad_rows[0]})",
            )
    if (counts < 0).any():
        raise DataError(source, "counts", f"must be >= 0; got min {counts.min()}")
    if len(channel_ids) != counts.shape[1]:
        raise DataError(
            source,
            "channel_ids",
            f"must name each of the {counts.shape[1]} count columns; "
            f"got {len(channel_ids)} names",
        )
    if len(set(channel_ids)) != len(channel_ids):
        repeated = sorted(name for name, n in Counter(channel_ids).items() if n > 1)
        raise DataError(source, "channel_ids", f"must be unique; repeated {repeated}")
    if not (
        isinstance(bin_width, int | float)
        and math.isfinite(bin_width)
        and bin_width > 0
    ):
        raise DataError(
            source, "bin_width", f"must be a finite number > 0; got {bin_width!r}"
        )


def check_timestamps(times: np.ndarray, source, name: str) -> None:
    """Raise ``DataError`` unless ``times`` (N,) is finite and strictly increasing."""
    if times.ndim != 1 or times.size < 2:
        raise DataError(source, name, f"needs at least 2 timestamps; got {times.size}")
    if not np.isfinite(times).all():
        raise DataError(source, name, "timestamps contain NaN or Inf")
    steps = np.diff(times)
    if (steps <= 0).any():
        first = int(np.flatnonzero(steps <= 0)[0])
        raise DataError(
            source,
            name,
            f"timestamps must be strictly increasing; t[{first + 1}]="
            f"{times[first + 1]} follows t[{first}]={times[first]}",
        )


def fill_nan(values: np.ndarray, times: np.ndarray, policy: str, source, name: str):
    """Return ``values`` (N, D) with NaN samples handled by ``policy``.

    ``"raise"`` rejects any NaN. ``"interpolate"`` fills each NaN linearly in time
    from the finite samples of its column (held constant beyond the first and last).
    """
    if policy not in NAN_POLICIES:
        raise ValueError(
            f"nan_policy must be one of {list(NAN_POLICIES)}; got nan_policy={policy!r}"
        )
    missing = ~np.isfinite(values)
    if not missing.any():
        return values
    if policy == "raise":
        rows = np.flatnonzero(missing.any(axis=1))
        raise DataError(
            source,
            name,
            f"contains NaN or Inf in {rows.size} of {len(values)} samples (first at "
            f"t={times[rows[0]]}); pass nan_policy='interpolate' to fill them",
        )
    filled = values.copy()
    for column in range(values.shape[1]):
        good = ~missing[:, column]
        if not good.any():
            raise DataError(source, name, f"column {column} has no finite sample")
        filled[:, column] = np.interp(times, times[good], values[good, column])
    return filled


def bin_edges(t_start: float, t_stop: float, bin_width: float) -> np.ndarray:
    """Return the (T + 1,) edges of the whole bins of ``bin_width`` in the range.

    Bin ``k`` covers ``[t_start + k w, t_start + (k + 1) w)``. A final partial bin
    is dropped.
    """
    # The small tolerance keeps a bin whose edge lands on t_stop up to rounding.
    n_bins = int(math.floor((t_stop - t_start) / bin_width + 1e-9))
    if n_bins < 1:
        raise ValueError(
            f"time range [{t_start}, {t_stop}] s is shorter than one bin of "
            f"bin_width={bin_width} s"
        )
    return t_start + bin_width * np.arange(n_bins + 1)


def bin_spike_times(spike_times: Sequence[np.ndarray], edges: np.ndarray) -> np.ndarray:
    """Count the spikes of each train in each bin.

    Args:
      spike_times: C arrays of spike times in seconds, in any order.
      edges: (T + 1,) increasing bin edges.

    Returns:
      (T, C) float counts. A spike exactly on an inner edge counts in the later bin,
      and spikes outside ``[edges[0], edges[-1])`` are ignored.
    """
    counts = np.zeros((len(edges) - 1, len(spike_times)))
    for column, times in enumerate(spike_times):
        times = np.sort(np.asarray(times, dtype=np.float64).ravel())
        cumulative = np.searchsorted(times, edges, side="left")
        counts[:, column] = np.diff(cumulative)
    return counts


def bin_mean_velocity(
    times: np.ndarray, values: np.ndarray, edges: np.ndarray, is_position: bool
) -> np.ndarray:
    """Return the (T, D) mean velocity over each bin from a sampled signal.

    Args:
      times: (N,) strictly increasing sample times, in seconds.
      values: (N, D) position (``is_position``) or velocity samples.
      edges: (T + 1,) bin edges inside ``[times[0], times[-1]]``.
      is_position: whether ``values`` is a position.

    The mean velocity over a bin is its displacement divided by its width. For a
    position the displacement comes from linear interpolation at the edges, and for a
    velocity from its trapezoid-rule integral, so both reduce to the value at the bin
    centre when the velocity is linear within the bin.
    """
    if is_position:
        position = values
    else:
        steps = np.diff(times)[:, None]
        increments = 0.5 * (values[1:] + values[:-1]) * steps
        position = np.concatenate([np.zeros((1, values.shape[1])), increments])
        position = np.cumsum(position, axis=0)
    at_edges = np.stack(
        [np.interp(edges, times, position[:, d]) for d in range(values.shape[1])],
        axis=1,
    )
    return np.diff(at_edges, axis=0) / np.diff(edges)[:, None]


def event_bins(event_times: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Return the sorted unique bins (K,) that contain ``event_times``."""
    event_times = np.asarray(event_times, dtype=np.float64).ravel()
    event_times = event_times[np.isfinite(event_times)]
    inside = (event_times >= edges[0]) & (event_times < edges[-1])
    bins = np.searchsorted(edges, event_times[inside], side="right") - 1
    return np.unique(bins)


def align_channels(
    a: Session, b: Session, by_index: bool = False
) -> tuple[Session, Session]:
    """Keep the channels two sessions share, in the same order in both.

    Args:
      a: first session, whose channel order is kept.
      b: second session.
      by_index: pair the columns by position instead of by ``channel_ids``. Both
        sessions must then have the same number of channels, and ``b`` takes the
        ids of ``a``. Use it only when the columns are known to be the same channels.

    Returns:
      ``(a', b')`` where ``a'.channel_ids == b'.channel_ids``.

    Raises:
      DataError: when the sessions share no channel id, or when either session's
        ids are only column positions (``metadata["channel_identity"] == "index"``)
        and ``by_index`` is False.
    """
    if by_index:
        if a.n_channels != b.n_channels:
            raise DataError(
                b.metadata.get("source_file"),
                "channel_ids",
                f"alignment by index needs equal channel counts; got "
                f"{a.n_channels} and {b.n_channels}",
            )
        b_aligned = replace(
            b,
            channel_ids=list(a.channel_ids),
            metadata={**b.metadata, "aligned_by": "index"},
        )
        a_aligned = replace(a, metadata={**a.metadata, "aligned_by": "index"})
        return a_aligned, b_aligned

    for session in (a, b):
        if session.metadata.get("channel_identity") == "index":
            raise DataError(
                session.metadata.get("source_file"),
                "channel_ids",
                "the ids are column positions, not electrode or unit identities, so "
                "they cannot be matched across sessions; pass by_index=True if the "
                "columns are known to be the same channels",
            )
    b_column = {name: column for column, name in enumerate(b.channel_ids)}
    shared = [name for name in a.channel_ids if name in b_column]
    if not shared:
        raise DataError(
            b.metadata.get("source_file"),
            "channel_ids",
            f"shares no channel id with {a.metadata.get('source_file', 'session A')} "
            f"(first ids {a.channel_ids[:3]} and {b.channel_ids[:3]}); pass "
            "by_index=True to pair columns by position",
        )
    a_column = {name: column for column, name in enumerate(a.channel_ids)}
    a_aligned = a.select_channels([a_column[name] for name in shared])
    b_aligned = b.select_channels([b_column[name] for name in shared])
    a_aligned.metadata["aligned_by"] = "channel_ids"
    b_aligned.metadata["aligned_by"] = "channel_ids"
    return a_aligned, b_aligned
