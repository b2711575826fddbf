"""Load a reaching session from an NWB file (sorted units or threshold crossings)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._validation import check_choice, check_positive
from ._session import (
    DataError,
    Session,
    bin_edges,
    bin_mean_velocity,
    bin_spike_times,
    check_timestamps,
    event_bins,
    fill_nan,
)

GROUPINGS = ("electrode", "unit")

# Series tried in this order when the caller names none. A velocity series comes
# before a position series because differencing a position amplifies its noise.
PREFERRED_BEHAVIOR = (
    "hand_vel",
    "cursor_vel",
    "finger_vel",
    "hand_pos",
    "cursor_pos",
    "finger_pos",
)


def load_nwb(
    path: str | Path,
    bin_width: float = 0.02,
    behavior: str | None = None,
    group_by: str = "electrode",
    electrode_key: str = "id",
    t_start: float | None = None,
    t_stop: float | None = None,
    nan_policy: str = "raise",
) -> Session:
    """Read spikes and hand or cursor movement from an NWB file and bin them.

    Spike trains come from ``nwbfile.units`` (``spike_times``, and the
    ``electrodes`` column for their electrode). Sorted units and threshold crossings
    both live there. Movement comes from ``processing["behavior"]``: a
    ``SpatialSeries`` or ``TimeSeries`` directly in the module or inside a container
    such as ``Position`` or ``BehavioralTimeSeries``. A position series is turned
    into velocity by its displacement over each bin.

    Args:
      path: the ``.nwb`` file.
      bin_width: bin width, in seconds.
      behavior: name of the movement series, such as ``"cursor_vel"``. By default
        the first present of ``PREFERRED_BEHAVIOR``, then any series whose name
        contains ``vel``, then any ``SpatialSeries`` not named for a target. Only
        its first two columns (x, y) are used.
      group_by: ``"electrode"`` sums the units of each electrode into one channel,
        which keeps channels comparable across days; ``"unit"`` keeps each unit
        (ids ``"<electrode>/u<unit id>"``).
      electrode_key: column of the electrodes table that names an electrode across
        sessions: ``"id"`` (names ``"e<id>"``) or a column such as ``"label"``
        (names are its values).
      t_start: start of the first bin, in seconds; default the first movement
        sample.
      t_stop: end of the binned range, in seconds; default the last movement sample.
      nan_policy: ``"raise"`` or ``"interpolate"`` for NaN movement samples.

    Returns:
      A ``Session`` whose ``trial_starts`` come from ``nwbfile.trials`` when present.
      ``metadata["kind"]`` is ``"synthetic"`` when the file's keywords contain
      ``"synthetic"`` and ``"real"`` otherwise.

    Raises:
      DataError: naming the file and field, when the file is missing or unreadable,
        has no units or no movement series, or contains invalid values.
    """
    check_positive("bin_width", bin_width)
    check_choice("group_by", group_by, GROUPINGS)
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "file not found")

    # Imported here so that loading a .mat file does not pay for pynwb's start-up.
    from pynwb import NWBHDF5IO

    try:
        io = NWBHDF5IO(str(path), mode="r")
    except Exception as error:  # h5py and hdmf raise many types for a bad file
        raise DataError(path, None, f"failed to open as NWB ({error})") from error
    with io:
        try:
            nwbfile = io.read()
        except Exception as error:
            raise DataError(path, None, f"failed to read as NWB ({error})") from error
        name, series = _find_behavior(nwbfile, behavior, path)
        times, values, is_position, unit = _read_series(series, name, path)
        spike_trains, channel_ids = _read_units(nwbfile, group_by, electrode_key, path)
        trial_times = None
        if nwbfile.trials is not None and len(nwbfile.trials) > 0:
            trial_times = np.asarray(nwbfile.trials["start_time"].data[:], float)
        metadata = {
            "subject": None if nwbfile.subject is None else nwbfile.subject.subject_id,
            "session_id": nwbfile.session_id or nwbfile.identifier,
            "source_file": str(path),
            "kind": _kind(nwbfile),
            "channel_identity": group_by,
            "behavior_series": name,
            "velocity_unit": f"{unit}/s" if is_position else unit,
        }
        if nwbfile.notes:
            metadata["notes"] = nwbfile.notes

    values = fill_nan(values, times, nan_policy, path, name)
    start = times[0] if t_start is None else t_start
    stop = times[-1] if t_stop is None else t_stop
    if start < times[0] or stop > times[-1]:
        raise DataError(
            path,
            name,
            f"bins [{start}, {stop}] s reach outside the movement samples "
            f"[{times[0]}, {times[-1]}] s",
        )
    try:
        edges = bin_edges(start, stop, bin_width)
    except ValueError as error:
        raise DataError(path, name, str(error)) from error
    counts = bin_spike_times(spike_trains, edges)
    velocity = bin_mean_velocity(times, values, edges, is_position)
    trial_starts = None if trial_times is None else event_bins(trial_times, edges)
    metadata["t_start"] = float(edges[0])
    return Session(counts, velocity, channel_ids, bin_width, metadata, trial_starts)


def _kind(nwbfile) -> str:
    keywords = [] if nwbfile.keywords is None else list(nwbfile.keywords[:])
    words = [k.decode() if isinstance(k, bytes) else str(k) for k in keywords]
    return "synthetic" if "synthetic" in [word.lower() for word in words] else "real"


def _behavior_series(nwbfile) -> dict:
    """Return every time series of ``processing["behavior"]`` by name."""
    from pynwb import TimeSeries

    found = {}
    for interface in nwbfile.processing["behavior"].data_interfaces.values():
        if isinstance(interface, TimeSeries):
            found[interface.name] = interface
            continue
        # Position, BehavioralTimeSeries and similar wrap their series in a dict.
        for attribute in ("spatial_series", "time_series"):
            inner = getattr(interface, attribute, None)
            if isinstance(inner, dict):
                found.update(inner)
    return found


def _find_behavior(nwbfile, behavior: str | None, path: Path):
    from pynwb.behavior import SpatialSeries

    if "behavior" not in nwbfile.processing:
        raise DataError(
            path,
            "processing/behavior",
            f"missing; processing modules are {sorted(nwbfile.processing)}",
        )
    series = _behavior_series(nwbfile)
    if behavior is not None:
        if behavior not in series:
            raise DataError(
                path,
                f"processing/behavior/{behavior}",
                f"missing; movement series are {sorted(series)}",
            )
        return behavior, series[behavior]
    for name in PREFERRED_BEHAVIOR:
        if name in series:
            return name, series[name]
    not_target = sorted(name for name in series if "target" not in name.lower())
    for name in not_target:
        if "vel" in name.lower():
            return name, series[name]
    for name in not_target:
        if isinstance(series[name], SpatialSeries):
            return name, series[name]
    raise DataError(
        path,
        "processing/behavior",
        f"contains no hand, cursor or finger movement series; found {sorted(series)}; "
        "pass behavior=NAME",
    )


def _read_series(series, name: str, path: Path):
    """Return times (N,), values (N, 2), whether it is a position, and its unit."""
    from pynwb.behavior import SpatialSeries

    field = f"processing/behavior/{name}"
    if series.timestamps is None and series.rate is None:
        raise DataError(path, field, "has neither timestamps nor a rate")
    try:
        values = np.asarray(series.data[:], dtype=np.float64)
        if series.timestamps is not None:
            times = np.asarray(series.timestamps[:], dtype=np.float64)
        else:
            start = series.starting_time or 0.0
            times = start + np.arange(len(values)) / series.rate
    except (OSError, TypeError, ValueError) as error:
        raise DataError(path, field, f"failed to read ({error})") from error
    if values.ndim != 2 or values.shape[1] < 2:
        raise DataError(
            path, field, f"must have shape (N, >=2) for x, y; got {values.shape}"
        )
    if len(times) != len(values):
        raise DataError(
            path, field, f"has {len(times)} timestamps for {len(values)} samples"
        )
    check_timestamps(times, path, field)
    values = values[:, :2] * series.conversion + series.offset
    is_position = isinstance(series, SpatialSeries) or "pos" in name.lower()
    return times, values, is_position, series.unit


def _read_units(nwbfile, group_by: str, electrode_key: str, path: Path):
    """Return the spike trains and ids of the channels after ``group_by``."""
    units = nwbfile.units
    if units is None or len(units) == 0:
        raise DataError(path, "units", "the file has no units")
    try:
        flat_times = np.asarray(units.spike_times.data[:], dtype=np.float64)
        ends = np.asarray(units.spike_times_index.data[:], dtype=np.int64)
        unit_ids = [str(i) for i in units.id.data[:]]
    except (AttributeError, OSError, TypeError, ValueError) as error:
        raise DataError(
            path, "units/spike_times", f"failed to read ({error})"
        ) from error
    if not np.isfinite(flat_times).all():
        raise DataError(path, "units/spike_times", "contains NaN or Inf")
    trains = np.split(flat_times, ends[:-1])

    electrodes = _unit_electrodes(nwbfile, units, electrode_key, path)
    if group_by == "unit":
        if electrodes is None:
            return trains, [f"u{unit_id}" for unit_id in unit_ids]
        ids = [
            f"{name}/u{u}" for (_, name), u in zip(electrodes, unit_ids, strict=True)
        ]
        return trains, ids
    if electrodes is None:
        raise DataError(
            path,
            "units/electrodes",
            "missing, so units cannot be grouped by electrode; pass group_by='unit'",
        )
    grouped: dict[tuple[int, str], list[np.ndarray]] = {}
    for electrode, train in zip(electrodes, trains, strict=True):
        grouped.setdefault(electrode, []).append(train)
    # Channels follow the order of the electrodes table.
    order = sorted(grouped)
    channel_trains = [np.concatenate(grouped[electrode]) for electrode in order]
    return channel_trains, [name for _, name in order]


def _unit_electrodes(nwbfile, units, electrode_key: str, path: Path):
    """Return ``(row, name)`` of each unit's electrode, or None when units name none."""
    if "electrodes" not in units.colnames:
        return None
    table = nwbfile.electrodes
    if electrode_key == "id":
        names = [f"e{i}" for i in table.id.data[:]]
    elif electrode_key in table.colnames:
        names = [str(v) for v in table[electrode_key].data[:]]
    else:
        raise DataError(
            path,
            f"electrodes/{electrode_key}",
            f"missing; electrode columns are {['id', *table.colnames]}",
        )
    rows = np.asarray(units.electrodes.data[:], dtype=np.int64)
    if units.electrodes_index is not None:
        ends = np.asarray(units.electrodes_index.data[:], dtype=np.int64)
        starts = np.concatenate([[0], ends[:-1]])
        if (ends <= starts).any():
            raise DataError(path, "units/electrodes", "a unit names no electrode")
        # A unit seen on several electrodes is filed under the first one.
        rows = rows[starts]
    return [(int(row), names[row]) for row in rows]
