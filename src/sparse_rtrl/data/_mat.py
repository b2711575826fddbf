"""Load sessions from MATLAB, ``.npz`` and HDF5 files.

MATLAB v7.3 files are HDF5 files whose arrays are stored transposed (MATLAB is
column-major), whose cell arrays are datasets of object references, and whose empty
arrays carry a ``MATLAB_empty`` attribute. Older versions are read with
``scipy.io.loadmat``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import h5py
import numpy as np
import scipy.io

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

ODOHERTY_BEHAVIORS = ("finger", "cursor")
PRIMATE_DIR_ENV = "SPARSE_RTRL_PRIMATE_DIR"


def load_matrices(
    path: str | Path,
    counts_key: str,
    velocity_key: str,
    bin_width: float,
    channel_ids_key: str | None = None,
    trial_key: str | None = None,
    subject: str | None = None,
    session_id: str | None = None,
) -> Session:
    """Read a binned count matrix and a velocity matrix stored under named keys.

    Args:
      path: a ``.mat`` file (v5 through scipy, v7.3 through h5py), a ``.npz`` file,
        or an HDF5 file (``.h5``, ``.hdf5``) whose keys are dataset paths.
      counts_key: key of the (T, C) spike counts (or firing rates).
      velocity_key: key of the (T, 2) velocity.
      bin_width: bin width of the rows, in seconds. The file does not say it.
      channel_ids_key: key of C channel names; without it the ids are column
        positions (``"ch000"``...) and ``metadata["channel_identity"]`` is
        ``"index"``.
      trial_key: key of a (T,) per-bin trial or target label; a trial starts at
        row 0 and wherever the label changes.
      subject: subject name for the metadata.
      session_id: session name for the metadata; default the file stem.

    Returns:
      A ``Session`` with ``metadata["kind"] == "real"`` and the stored dtype of the
      counts in ``metadata["counts_dtype"]``.

    Raises:
      DataError: naming the file and key, when the file is missing or unreadable, a
        key is missing, or the arrays have the wrong shape or hold NaN.
    """
    check_positive("bin_width", bin_width)
    path = Path(path)
    keys = [counts_key, velocity_key, channel_ids_key, trial_key]
    arrays = _read_keys(path, [key for key in keys if key is not None])

    counts = arrays[counts_key]
    velocity = arrays[velocity_key]
    for key, values in ((counts_key, counts), (velocity_key, velocity)):
        if values.dtype.kind not in "biuf":
            raise DataError(path, key, f"must be numeric; got dtype {values.dtype}")
    if counts.ndim != 2:
        raise DataError(path, counts_key, f"must be 2-D (T, C); got {counts.shape}")
    if velocity.ndim != 2 or velocity.shape[1] != 2:
        raise DataError(path, velocity_key, f"must be (T, 2); got {velocity.shape}")
    if len(velocity) != len(counts):
        raise DataError(
            path,
            velocity_key,
            f"has {len(velocity)} rows but {counts_key} has {len(counts)}",
        )

    if channel_ids_key is None:
        channel_ids = [f"ch{column:03d}" for column in range(counts.shape[1])]
        identity = "index"
    else:
        channel_ids = _names(arrays[channel_ids_key], path, channel_ids_key)
        identity = "file"
    trial_starts = None
    if trial_key is not None:
        labels = arrays[trial_key].ravel()
        if len(labels) != len(counts):
            raise DataError(
                path,
                trial_key,
                f"has {len(labels)} labels but {counts_key} has {len(counts)} rows",
            )
        trial_starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    metadata = {
        "subject": subject,
        "session_id": session_id or path.stem,
        "source_file": str(path),
        "kind": "real",
        "channel_identity": identity,
        "counts_dtype": str(counts.dtype),
    }
    return Session(counts, velocity, channel_ids, bin_width, metadata, trial_starts)


def load_odoherty_mat(
    path: str | Path,
    bin_width: float = 0.02,
    behavior: str = "finger",
    group_by: str = "electrode",
    include_unsorted: bool = True,
    t_start: float | None = None,
    t_stop: float | None = None,
    nan_policy: str = "raise",
) -> Session:
    """Read a self-paced reaching file of O'Doherty et al. (Zenodo record 583331).

    The MATLAB v7.3 file contains ``t`` (N,) behaviour times in seconds, sampled at
    250 Hz; ``finger_pos`` (N, 3 or 6) fingertip ``(z, -x, -y)`` in cm, followed by
    orientation when there are 6 columns; ``cursor_pos`` and ``target_pos`` (N, 2)
    in mm; ``chan_names`` (C,) electrode names; and ``spikes`` (C, U) spike-time
    arrays per electrode and unit, where unit 0 contains the unsorted threshold
    crossings.

    Args:
      path: the ``.mat`` file.
      bin_width: bin width, in seconds.
      behavior: ``"finger"`` (fingertip x, y converted to mm) or ``"cursor"``.
      group_by: ``"electrode"`` sums the units of each electrode (ids are the
        ``chan_names``); ``"unit"`` keeps each unit with at least one spike (ids
        ``"<chan_name>/u<k>"``).
      include_unsorted: whether unit 0 (unsorted crossings) is counted.
      t_start: start of the first bin, in seconds; default the first of ``t``.
      t_stop: end of the binned range, in seconds; default the last of ``t``.
      nan_policy: ``"raise"`` or ``"interpolate"`` for NaN movement samples.

    Returns:
      A ``Session``; ``trial_starts`` are the bins where ``target_pos`` changes.

    Raises:
      DataError: naming the file and key, when the file is missing, is not a
        MATLAB v7.3 file, lacks a key, or contains invalid values.
    """
    # NOTE: the finger axis order and units are those of the record's description;
    # no file from the record could be opened here to confirm them.
    check_positive("bin_width", bin_width)
    check_choice("behavior", behavior, ODOHERTY_BEHAVIORS)
    check_choice("group_by", group_by, ("electrode", "unit"))
    path = Path(path)
    with _open_hdf5(path) as file:
        times = _dataset(file, "t", path).ravel().astype(np.float64)
        check_timestamps(times, path, "t")
        if behavior == "finger":
            finger = _columns(
                _dataset(file, "finger_pos", path), times, path, "finger_pos"
            )
            if finger.shape[1] < 3:
                raise DataError(
                    path, "finger_pos", f"needs >= 3 columns; got {finger.shape[1]}"
                )
            position = np.stack([-finger[:, 1], -finger[:, 2]], axis=1) * 10.0
            key = "finger_pos"
        else:
            position = _columns(
                _dataset(file, "cursor_pos", path), times, path, "cursor_pos"
            )
            key = "cursor_pos"
        if position.shape[1] < 2:
            raise DataError(path, key, f"needs >= 2 columns; got {position.shape[1]}")
        target = None
        if "target_pos" in file:
            target = _columns(file["target_pos"][()], times, path, "target_pos")
        names = _names(_dataset(file, "chan_names", path), path, "chan_names", file)
        trains, channel_ids = _odoherty_spikes(
            file, names, group_by, include_unsorted, path
        )

    position = fill_nan(
        position[:, :2].astype(np.float64), times, nan_policy, path, key
    )
    start = times[0] if t_start is None else t_start
    stop = times[-1] if t_stop is None else t_stop
    if start < times[0] or stop > times[-1]:
        raise DataError(
            path,
            "t",
            f"bins [{start}, {stop}] s reach outside [{times[0]}, {times[-1]}] s",
        )
    try:
        edges = bin_edges(start, stop, bin_width)
    except ValueError as error:
        raise DataError(path, "t", str(error)) from error
    counts = bin_spike_times(trains, edges)
    velocity = bin_mean_velocity(times, position, edges, is_position=True)
    trial_starts = None
    if target is not None:
        changed = np.r_[True, (np.diff(target, axis=0) != 0).any(axis=1)]
        trial_starts = event_bins(times[changed], edges)
    metadata = {
        "subject": path.stem.split("_")[0],
        "session_id": path.stem,
        "source_file": str(path),
        "kind": "real",
        "channel_identity": group_by,
        "behavior_series": key,
        "velocity_unit": "mm/s",
        "t_start": float(edges[0]),
    }
    return Session(counts, velocity, channel_ids, bin_width, metadata, trial_starts)


def default_primate_dir() -> Path:
    """Return the folder of the demo recordings.

    It is ``$SPARSE_RTRL_PRIMATE_DIR`` when set, else ``shared/data/primate`` beside
    the repository checkout.
    """
    if os.environ.get(PRIMATE_DIR_ENV):
        return Path(os.environ[PRIMATE_DIR_ENV])
    return Path(__file__).resolve().parents[4] / "shared" / "data" / "primate"


def load_demo_pair(
    path: str | Path | None = None, name: str = "chewie", bin_width: float = 0.2
) -> tuple[Session, Session]:
    """Read the two parts of a DAD demo recording as sessions A (``tr``) and B (``te``).

    The files (``chewie_demo.mat``, ``mihi_demo.mat``) contain ``Ytr``/``Yte``
    (T, C) per-bin spike counts (Chewie) or firing rates (Mihi), ``Xtr``/``Xte``
    (T, 2) hand velocity and ``Ttr``/``Tte`` per-bin target indices. A new trial
    starts where the target index changes.

    Args:
      path: the ``.mat`` file, or the folder that contains ``<name>_demo.mat``;
        default ``default_primate_dir()``.
      name: recording name, used for the file name and the subject.
      bin_width: bin width in seconds, which the files do not record; it is stored
        with ``metadata["bin_width_source"] == "parameter"``.

    Returns:
      ``(a, b)``. Their ids are column positions (``channel_identity == "index"``):
      the Chewie parts share their 71 units, the Mihi parts do not.
    """
    # NOTE: the 0.2 s default is inferred from the Mihi rates, which are multiples
    # of 5 spikes/s; neither file records its bin width.
    path = default_primate_dir() if path is None else Path(path)
    if path.is_dir():
        path = path / f"{name}_demo.mat"
    sessions = []
    for part in ("tr", "te"):
        session = load_matrices(
            path,
            counts_key=f"Y{part}",
            velocity_key=f"X{part}",
            trial_key=f"T{part}",
            bin_width=bin_width,
            subject=name,
            session_id=f"{name}-{part}",
        )
        is_count = np.dtype(session.metadata["counts_dtype"]).kind in "biu"
        session.metadata["counts_unit"] = "count" if is_count else "rate"
        session.metadata["bin_width_source"] = "parameter"
        sessions.append(session)
    return sessions[0], sessions[1]


def _read_keys(path: Path, keys: list[str]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(path, None, "file not found")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path, keys)
    if suffix == ".mat" and not h5py.is_hdf5(path):
        return _read_mat_v5(path, keys)
    if suffix in (".mat", ".h5", ".hdf5"):
        # A v7.3 .mat stores each MATLAB (T, C) array as (C, T).
        transpose = suffix == ".mat"
        with _open_hdf5(path) as file:
            arrays = {}
            for key in keys:
                values = _dataset(file, key, path)
                if values.dtype == h5py.ref_dtype:
                    values = np.array(_names(values, path, key, file), dtype=object)
                arrays[key] = values.T if transpose else values
            return arrays
    raise DataError(
        path, None, f"unsupported suffix {suffix!r}; expected .mat, .npz, .h5, .hdf5"
    )


def _read_npz(path: Path, keys: list[str]) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):
        raise DataError(path, None, "failed to read as .npz (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in keys if key not in archive.files]
            if missing:
                raise DataError(
                    path, missing[0], f"missing; the file holds {archive.files}"
                )
            return {key: archive[key] for key in keys}
    except DataError:
        raise
    except Exception as error:  # zipfile and numpy format errors differ by cause
        raise DataError(path, None, f"failed to read as .npz ({error})") from error


def _read_mat_v5(path: Path, keys: list[str]) -> dict[str, np.ndarray]:
    try:
        contents = scipy.io.loadmat(path)
    except Exception as error:  # scipy raises ValueError, MatReadError, TypeError
        raise DataError(
            path, None, f"failed to read as a .mat file ({error})"
        ) from error
    missing = [key for key in keys if key not in contents]
    if missing:
        present = sorted(key for key in contents if not key.startswith("__"))
        raise DataError(path, missing[0], f"missing; the file contains {present}")
    return {key: contents[key] for key in keys}


def _open_hdf5(path: Path) -> h5py.File:
    if not path.is_file():
        raise DataError(path, None, "file not found")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DataError(
            path, None, f"failed to open as HDF5 or MATLAB v7.3 ({error})"
        ) from error


def _dataset(file: h5py.File, key: str, path: Path) -> np.ndarray:
    if key not in file:
        raise DataError(path, key, f"missing; the file contains {sorted(file.keys())}")
    node = file[key]
    if not isinstance(node, h5py.Dataset):
        raise DataError(path, key, "is a group, not an array")
    try:
        return node[()]
    except (OSError, TypeError, ValueError) as error:
        raise DataError(path, key, f"failed to read ({error})") from error


def _deref(file: h5py.File, reference, path: Path, key: str) -> np.ndarray:
    """Return the array behind one MATLAB cell reference."""
    try:
        node = file[reference]
        if node.attrs.get("MATLAB_empty", 0):
            return np.zeros(0)
        return np.asarray(node[()])
    except (OSError, TypeError, ValueError, KeyError) as error:
        raise DataError(path, key, f"broken cell reference ({error})") from error


def _names(values, path: Path, key: str, file: h5py.File | None = None) -> list[str]:
    """Return strings from a cell array, a string array or a MATLAB char cell."""
    names = []
    for value in np.asarray(values).ravel():
        if isinstance(value, h5py.Reference):
            if file is None:
                raise DataError(
                    path,
                    key,
                    "contains object references, which only an HDF5 file can resolve",
                )
            chars = _deref(file, value, path, key).ravel()
            names.append("".join(chr(c) for c in chars))
        elif isinstance(value, bytes):
            names.append(value.decode())
        elif isinstance(value, np.ndarray):
            # scipy.io.loadmat returns each cell of a cellstr as a 1-element array.
            names.append(str(value.ravel()[0]) if value.size else "")
        else:
            names.append(str(value))
    return names


def _columns(values: np.ndarray, times: np.ndarray, path: Path, key: str):
    """Return ``values`` as (N, K) with N rows matching ``times``."""
    if values.ndim != 2:
        raise DataError(path, key, f"must be 2-D; got shape {values.shape}")
    if values.shape[1] == len(times):
        values = values.T
    if values.shape[0] != len(times):
        raise DataError(
            path,
            key,
            f"has shape {values.shape}, which matches no {len(times)} samples",
        )
    return values.astype(np.float64)


def _odoherty_spikes(file, names, group_by, include_unsorted, path):
    """Return the spike trains and ids of the O'Doherty ``spikes`` cell array."""
    references = _dataset(file, "spikes", path)
    if references.dtype != h5py.ref_dtype or references.ndim != 2:
        raise DataError(path, "spikes", "must be a 2-D cell array of spike-time arrays")
    # The MATLAB (C, U) cell array is stored as (U, C).
    if references.shape[1] != len(names) and references.shape[0] == len(names):
        references = references.T
    if references.shape[1] != len(names):
        raise DataError(
            path,
            "spikes",
            f"has shape {references.shape}, which matches no {len(names)} chan_names",
        )
    first_unit = 0 if include_unsorted else 1
    trains, ids = [], []
    for channel, name in enumerate(names):
        unit_trains = []
        for unit in range(first_unit, references.shape[0]):
            times = _deref(file, references[unit, channel], path, "spikes")
            times = times.ravel().astype(np.float64)
            if not np.isfinite(times).all():
                raise DataError(path, "spikes", f"channel {name} unit {unit} has NaN")
            unit_trains.append((unit, times))
        if group_by == "electrode":
            trains.append(np.concatenate([t for _, t in unit_trains] or [np.zeros(0)]))
            ids.append(name)
            continue
        for unit, times in unit_trains:
            if times.size:
                trains.append(times)
                ids.append(f"{name}/u{unit}")
    if not trains:
        raise DataError(path, "spikes", "contains no unit with spikes")
    return trains, ids
