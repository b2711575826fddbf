"""Loaders for NWB, MATLAB, .npz and HDF5 files, on small files made here."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from sparse_rtrl.data import (
    DataError,
    Session,
    align_channels,
    bin_spike_times,
    load_demo_pair,
    load_matrices,
    load_nwb,
    load_odoherty_mat,
)

PRIMATE_DIR = Path(
    os.environ.get(
        "SPARSE_RTRL_PRIMATE_DIR",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "primate",
    )
)


def write_nwb(
    path: Path,
    units=(([0.005, 0.015, 0.04], 0), ([0.025], 1), ([0.03, 0.07], 1)),
    times=None,
    position=None,
    velocity=None,
    trials=(),
    with_behavior=True,
    extra_series=None,
    keywords=None,
):
    """Write an NWB file: ``units`` pairs spike times with an electrode row."""
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.behavior import BehavioralTimeSeries, Position, SpatialSeries
    from pynwb.file import Subject

    nwbfile = NWBFile(
        session_description="test session",
        identifier="test-file",
        session_start_time=datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc),
        session_id="test-session",
        subject=Subject(subject_id="monkey-t"),
        keywords=keywords,
    )
    device = nwbfile.create_device(name="array", description="test array")
    group = nwbfile.create_electrode_group(
        name="array", description="test", location="M1", device=device
    )
    nwbfile.add_electrode_column(name="label", description="electrode name")
    for i in range(3):
        nwbfile.add_electrode(group=group, location="M1", label=f"elec{i + 10}")
    for spike_times, electrode in units:
        nwbfile.add_unit(
            spike_times=np.asarray(spike_times, dtype=float), electrodes=[electrode]
        )
    if with_behavior:
        module = nwbfile.create_processing_module(name="behavior", description="b")
        times = np.linspace(0.0, 0.1, 11) if times is None else np.asarray(times)
        if velocity is not None:
            series = TimeSeries(
                name="cursor_vel", data=velocity, unit="m/s", timestamps=times
            )
            module.add(BehavioralTimeSeries(time_series=series))
        else:
            if position is None:
                position = np.stack([2.0 * times, -1.0 * times], axis=1)
            series = SpatialSeries(
                name="hand_pos",
                data=position,
                reference_frame="centre",
                timestamps=times,
            )
            module.add(Position(spatial_series=series))
        for series in extra_series or []:
            module.add(series)
    for start, stop in trials:
        nwbfile.add_trial(start_time=start, stop_time=stop)
    with NWBHDF5IO(str(path), mode="w") as io:
        io.write(nwbfile)
    return path


def test_bin_spike_times_hand_computed():
    edges = np.array([0.0, 0.02, 0.04, 0.06])
    trains = [np.array([0.04, 0.005, 0.015, 0.059, 0.06]), np.array([0.02])]
    counts = bin_spike_times(trains, edges)
    # 0.04 lands in the later bin; 0.06 is on the final edge, outside the range.
    np.testing.assert_array_equal(counts, [[2, 0], [0, 1], [2, 0]])


def test_nwb_counts_and_velocity(tmp_path):
    path = write_nwb(tmp_path / "s.nwb", trials=[(0.0, 0.05), (0.05, 0.1)])
    session = load_nwb(path, bin_width=0.02)
    assert isinstance(session, Session)
    assert session.counts.shape == (5, 2)
    # Electrode 0: spikes at 0.005, 0.015, 0.04; electrode 1: 0.025, 0.03, 0.07.
    np.testing.assert_array_equal(
        session.counts, [[2, 0], [0, 2], [1, 0], [0, 1], [0, 0]]
    )
    assert session.channel_ids == ["e0", "e1"]
    np.testing.assert_allclose(session.velocity, np.tile([2.0, -1.0], (5, 1)))
    np.testing.assert_array_equal(session.trial_starts, [0, 2])
    assert session.metadata["kind"] == "real"
    assert session.metadata["subject"] == "monkey-t"
    assert session.metadata["session_id"] == "test-session"
    assert session.metadata["source_file"] == str(path)


def test_nwb_group_by_unit_and_label(tmp_path):
    path = write_nwb(tmp_path / "s.nwb")
    units = load_nwb(path, group_by="unit")
    assert units.channel_ids == ["e0/u0", "e1/u1", "e1/u2"]
    np.testing.assert_array_equal(units.counts.sum(axis=0), [3, 1, 2])
    labelled = load_nwb(path, electrode_key="label")
    assert labelled.channel_ids == ["elec10", "elec11"]


def test_nwb_bin_width_and_range(tmp_path):
    path = write_nwb(tmp_path / "s.nwb")
    session = load_nwb(path, bin_width=0.05)
    np.testing.assert_array_equal(session.counts, [[3, 2], [0, 1]])
    part = load_nwb(path, bin_width=0.02, t_start=0.02, t_stop=0.06)
    np.testing.assert_array_equal(part.counts, [[0, 2], [1, 0]])
    with pytest.raises(DataError, match="outside"):
        load_nwb(path, t_start=-0.1)


def test_nwb_velocity_series_is_averaged(tmp_path):
    times = np.linspace(0.0, 0.1, 101)
    velocity = np.stack([times, np.ones_like(times)], axis=1)
    path = write_nwb(tmp_path / "s.nwb", times=times, velocity=velocity)
    session = load_nwb(path, bin_width=0.02)
    assert session.metadata["behavior_series"] == "cursor_vel"
    # A linear velocity averages to its value at the bin centre.
    centres = 0.01 + 0.02 * np.arange(5)
    np.testing.assert_allclose(session.velocity[:, 0], centres, atol=1e-12)
    np.testing.assert_allclose(session.velocity[:, 1], 1.0)


def test_nwb_skips_target_series(tmp_path):
    from pynwb.behavior import SpatialSeries

    times = np.linspace(0.0, 0.1, 11)
    target = SpatialSeries(
        name="target_pos", data=np.ones((11, 2)), reference_frame="c", timestamps=times
    )
    path = write_nwb(tmp_path / "s.nwb", extra_series=[target])
    assert load_nwb(path).metadata["behavior_series"] == "hand_pos"
    chosen = load_nwb(path, behavior="target_pos")
    np.testing.assert_allclose(chosen.velocity, 0.0)


def test_nwb_synthetic_keyword(tmp_path):
    path = write_nwb(tmp_path / "s.nwb", keywords=["synthetic"])
    assert load_nwb(path).metadata["kind"] == "synthetic"


def test_nwb_missing_file(tmp_path):
    missing = tmp_path / "absent.nwb"
    with pytest.raises(DataError, match="absent.nwb: file not found"):
        load_nwb(missing)


def test_nwb_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.nwb"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataError, match="corrupt.nwb") as caught:
        load_nwb(path)
    assert caught.value.__cause__ is not None


def test_nwb_empty_units(tmp_path):
    path = write_nwb(tmp_path / "s.nwb", units=())
    with pytest.raises(DataError, match="'units'"):
        load_nwb(path)


def test_nwb_missing_behavior(tmp_path):
    path = write_nwb(tmp_path / "s.nwb", with_behavior=False)
    with pytest.raises(DataError, match="processing/behavior"):
        load_nwb(path)


def test_nwb_named_series_missing(tmp_path):
    path = write_nwb(tmp_path / "s.nwb")
    with pytest.raises(DataError, match="finger_vel.*hand_pos"):
        load_nwb(path, behavior="finger_vel")


def test_nwb_non_monotonic_timestamps(tmp_path):
    times = np.linspace(0.0, 0.1, 11)
    times[[4, 5]] = times[[5, 4]]
    path = write_nwb(tmp_path / "s.nwb", times=times)
    with pytest.raises(DataError, match="strictly increasing"):
        load_nwb(path)


def test_nwb_nan_position(tmp_path):
    times = np.linspace(0.0, 0.1, 11)
    position = np.stack([2.0 * times, -times], axis=1)
    position[3] = np.nan
    path = write_nwb(tmp_path / "s.nwb", times=times, position=position)
    with pytest.raises(DataError, match="NaN"):
        load_nwb(path)
    filled = load_nwb(path, nan_policy="interpolate")
    np.testing.assert_allclose(filled.velocity, np.tile([2.0, -1.0], (5, 1)))


def test_nwb_bad_arguments(tmp_path):
    path = write_nwb(tmp_path / "s.nwb")
    with pytest.raises(ValueError, match="bin_width"):
        load_nwb(path, bin_width=0.0)
    with pytest.raises(ValueError, match="group_by"):
        load_nwb(path, group_by="array")
    with pytest.raises(DataError, match="electrodes/depth"):
        load_nwb(path, electrode_key="depth")


# MATLAB v7.3 files are HDF5 files behind a 512-byte header.
MATLAB_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 ."
)


def write_v73(path: Path, arrays: dict, cells: dict | None = None) -> Path:
    """Write ``arrays`` as MATLAB does (transposed) and ``cells`` as cell arrays.

    ``cells`` maps a key to a 2-D object array of 1-D numeric arrays or strings.
    """
    with h5py.File(path, "w", userblock_size=512) as file:
        refs = file.create_group("#refs#")
        for key, values in arrays.items():
            file.create_dataset(key, data=np.asarray(values).T)
        for key, cell in (cells or {}).items():
            references = np.empty(cell.shape, dtype=h5py.ref_dtype)
            for index, value in np.ndenumerate(cell):
                name = f"{key}_{'_'.join(map(str, index))}"
                if isinstance(value, str):
                    stored = refs.create_dataset(
                        name, data=np.array([[ord(c)] for c in value], np.uint16)
                    )
                    stored.attrs["MATLAB_class"] = np.bytes_("char")
                elif len(value) == 0:
                    stored = refs.create_dataset(name, data=np.zeros(2, np.uint64))
                    stored.attrs["MATLAB_empty"] = np.uint8(1)
                else:
                    stored = refs.create_dataset(name, data=np.asarray(value)[None, :])
                references[index] = stored.ref
            # MATLAB stores the (rows, columns) cell array as (columns, rows).
            file.create_dataset(key, data=references.T)
    header = MATLAB_HEADER.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as handle:
        handle.write(header.ljust(512, b"\0"))
    return path


def odoherty_file(path: Path, times=None, **overrides) -> Path:
    """Write a small file with the layout of the O'Doherty et al. recordings."""
    times = np.arange(0.0, 0.1 + 1e-9, 0.004) + 10.0 if times is None else times
    n = len(times)

    # Fingertip (z, -x, -y) in cm moving at 3 cm/s along x and -1 cm/s along y.
    x, y = 3.0 * (times - 10.0), -1.0 * (times - 10.0)
    finger = np.stack([np.zeros(n), -x, -y], axis=1)
    cursor = np.stack([x, y], axis=1) * 10.0
    target = np.zeros((n, 2))
    target[times >= 10.05] = [1.0, 2.0]
    arrays = {
        "t": times[:, None],
        "finger_pos": finger,
        "cursor_pos": cursor,
        "target_pos": target,
    }

    # The MATLAB cell array is channels x units; unit 0 is unsorted.
    spikes = np.empty((2, 3), dtype=object)
    spikes[0, 0] = [10.001, 10.03]
    spikes[0, 1] = [10.021]
    spikes[0, 2] = []
    spikes[1, 0] = [10.07]
    spikes[1, 1] = []
    spikes[1, 2] = [10.045, 10.046]
    cells = {"chan_names": np.array([["M1 001", "M1 002"]], dtype=object).T}
    cells["spikes"] = spikes

    for key, value in overrides.items():
        if value is None:
            arrays.pop(key, None)
            cells.pop(key, None)
        else:
            arrays[key] = value
    return write_v73(path, arrays, cells)


def test_odoherty_counts_and_velocity(tmp_path):
    path = odoherty_file(tmp_path / "indy_20160407_02.mat")
    session = load_odoherty_mat(path, bin_width=0.02)
    assert session.channel_ids == ["M1 001", "M1 002"]
    np.testing.assert_array_equal(
        session.counts, [[1, 0], [2, 0], [0, 2], [0, 1], [0, 0]]
    )
    # Finger (z, -x, -y) in cm becomes (x, y) in mm.
    np.testing.assert_allclose(session.velocity, np.tile([30.0, -10.0], (5, 1)))
    np.testing.assert_array_equal(session.trial_starts, [0, 2])
    assert session.metadata["subject"] == "indy"
    assert session.metadata["session_id"] == "indy_20160407_02"
    assert session.metadata["t_start"] == pytest.approx(10.0)


def test_odoherty_cursor_and_units(tmp_path):
    path = odoherty_file(tmp_path / "indy_20160407_02.mat")
    cursor = load_odoherty_mat(path, behavior="cursor")
    np.testing.assert_allclose(cursor.velocity, np.tile([30.0, -10.0], (5, 1)))
    units = load_odoherty_mat(path, group_by="unit")
    assert units.channel_ids == ["M1 001/u0", "M1 001/u1", "M1 002/u0", "M1 002/u2"]
    sorted_only = load_odoherty_mat(path, include_unsorted=False)
    np.testing.assert_array_equal(sorted_only.counts.sum(axis=0), [1, 2])


def test_odoherty_missing_key(tmp_path):
    path = odoherty_file(tmp_path / "indy.mat", spikes=None)
    with pytest.raises(DataError, match="indy.mat: field 'spikes': missing"):
        load_odoherty_mat(path)
    path = odoherty_file(tmp_path / "indy2.mat", finger_pos=None)
    with pytest.raises(DataError, match="finger_pos"):
        load_odoherty_mat(path)


def test_odoherty_non_monotonic_t(tmp_path):
    times = np.arange(0.0, 0.1 + 1e-9, 0.004) + 10.0
    times[[3, 4]] = times[[4, 3]]
    path = odoherty_file(tmp_path / "indy.mat", times=times)
    with pytest.raises(DataError, match="'t'.*strictly increasing"):
        load_odoherty_mat(path)


def test_odoherty_not_hdf5(tmp_path):
    path = tmp_path / "old.mat"
    scipy.io.savemat(path, {"t": np.arange(3.0)})
    with pytest.raises(DataError, match="old.mat.*HDF5"):
        load_odoherty_mat(path)


@pytest.fixture
def matrices():
    rng = np.random.default_rng(3)
    counts = rng.poisson(2.0, size=(40, 5)).astype(np.uint8)
    velocity = rng.standard_normal((40, 2))
    labels = np.repeat([0, 2, 1, 1], 10)
    labels[20:30] = 3
    return counts, velocity, labels


def check_loaded(session, counts, velocity):
    np.testing.assert_array_equal(session.counts, counts)
    np.testing.assert_allclose(session.velocity, velocity)
    assert session.counts.dtype == np.float64


def test_matrices_mat_v5(tmp_path, matrices):
    counts, velocity, labels = matrices
    names = np.array(["a1", "a2", "b1", "b2", "c1"], dtype=object)
    path = tmp_path / "mine.mat"
    scipy.io.savemat(path, {"Y": counts, "X": velocity, "names": names, "T": labels})
    session = load_matrices(
        path, "Y", "X", bin_width=0.05, channel_ids_key="names", trial_key="T"
    )
    check_loaded(session, counts, velocity)
    assert session.channel_ids == list(names)
    assert session.metadata["channel_identity"] == "file"
    assert session.metadata["counts_dtype"] == "uint8"
    np.testing.assert_array_equal(session.trial_starts, [0, 10, 20, 30])


def test_matrices_mat_v73(tmp_path, matrices):
    counts, velocity, _ = matrices
    names = np.array([["a", "b", "c", "d", "e"]], dtype=object)
    path = write_v73(
        tmp_path / "mine.mat", {"Y": counts, "X": velocity}, {"names": names}
    )
    session = load_matrices(path, "Y", "X", bin_width=0.05, channel_ids_key="names")
    check_loaded(session, counts, velocity)
    assert session.channel_ids == ["a", "b", "c", "d", "e"]


def test_matrices_npz_and_hdf5(tmp_path, matrices):
    counts, velocity, _ = matrices
    np.savez(tmp_path / "mine.npz", counts=counts, velocity=velocity)
    npz = load_matrices(tmp_path / "mine.npz", "counts", "velocity", bin_width=0.02)
    check_loaded(npz, counts, velocity)
    assert npz.channel_ids[:2] == ["ch000", "ch001"]
    assert npz.metadata["channel_identity"] == "index"
    with h5py.File(tmp_path / "mine.h5", "w") as file:
        file["neural/counts"] = counts
        file["behaviour/velocity"] = velocity
    h5 = load_matrices(
        tmp_path / "mine.h5", "neural/counts", "behaviour/velocity", bin_width=0.02
    )
    check_loaded(h5, counts, velocity)


def test_matrices_wrong_shapes(tmp_path, matrices):
    counts, velocity, _ = matrices
    np.savez(tmp_path / "short.npz", counts=counts, velocity=velocity[:-1])
    with pytest.raises(DataError, match="short.npz: field 'velocity': has 39 rows"):
        load_matrices(tmp_path / "short.npz", "counts", "velocity", bin_width=0.02)
    np.savez(tmp_path / "wide.npz", counts=counts, velocity=np.ones((40, 3)))
    with pytest.raises(DataError, match=r"must be \(T, 2\)"):
        load_matrices(tmp_path / "wide.npz", "counts", "velocity", bin_width=0.02)
    np.savez(tmp_path / "flat.npz", counts=counts.ravel(), velocity=velocity)
    with pytest.raises(DataError, match="'counts': must be 2-D"):
        load_matrices(tmp_path / "flat.npz", "counts", "velocity", bin_width=0.02)


def test_matrices_missing_key(tmp_path, matrices):
    counts, velocity, _ = matrices
    scipy.io.savemat(tmp_path / "m.mat", {"Y": counts, "X": velocity})
    with pytest.raises(DataError, match="m.mat: field 'Z': missing"):
        load_matrices(tmp_path / "m.mat", "Z", "X", bin_width=0.02)


def test_matrices_nan(tmp_path, matrices):
    counts, velocity, _ = matrices
    velocity = velocity.copy()
    velocity[7, 1] = np.nan
    np.savez(tmp_path / "nan.npz", counts=counts, velocity=velocity)
    with pytest.raises(DataError, match="'velocity': contains NaN.*row 7"):
        load_matrices(tmp_path / "nan.npz", "counts", "velocity", bin_width=0.02)


@pytest.mark.parametrize("suffix", [".mat", ".npz", ".h5"])
def test_matrices_corrupt_file(tmp_path, suffix):
    path = tmp_path / f"corrupt{suffix}"
    path.write_bytes(np.random.default_rng(1).bytes(2048))
    with pytest.raises(DataError, match=f"corrupt\\{suffix}: failed") as caught:
        load_matrices(path, "Y", "X", bin_width=0.02)
    # A .npz is checked as a zip archive before numpy reads it.
    if suffix != ".npz":
        assert caught.value.__cause__ is not None


def test_matrices_missing_file_and_suffix(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_matrices(tmp_path / "none.mat", "Y", "X", bin_width=0.02)
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(DataError, match="unsupported suffix"):
        load_matrices(tmp_path / "data.csv", "Y", "X", bin_width=0.02)


def make_session(ids, identity="electrode", rows=6):
    counts = np.arange(rows * len(ids), dtype=float).reshape(rows, len(ids))
    metadata = {"source_file": f"{identity}.nwb", "channel_identity": identity}
    return Session(counts, np.zeros((rows, 2)), list(ids), 0.02, metadata)


def test_align_channels_by_id():
    a = make_session(["e1", "e2", "e3", "e4"])
    b = make_session(["e4", "e9", "e2"])
    a2, b2 = align_channels(a, b)
    assert a2.channel_ids == ["e2", "e4"]
    assert b2.channel_ids == ["e2", "e4"]
    np.testing.assert_array_equal(a2.counts, a.counts[:, [1, 3]])
    np.testing.assert_array_equal(b2.counts, b.counts[:, [2, 0]])


def test_align_channels_no_shared_ids():
    with pytest.raises(DataError, match="shares no channel id"):
        align_channels(make_session(["e1"]), make_session(["e2"]))


def test_align_channels_index_ids():
    a = make_session(["ch000", "ch001"], identity="index")
    b = make_session(["ch000", "ch001"], identity="index")
    with pytest.raises(DataError, match="by_index=True"):
        align_channels(a, b)
    a2, b2 = align_channels(a, b, by_index=True)
    assert b2.channel_ids == a2.channel_ids
    with pytest.raises(DataError, match="equal channel counts"):
        align_channels(a, make_session(["x"], identity="index"), by_index=True)


def test_session_checks():
    with pytest.raises(DataError, match="velocity.*5 velocity rows and 6"):
        Session(np.zeros((6, 2)), np.zeros((5, 2)), ["a", "b"], 0.02)
    with pytest.raises(DataError, match="channel_ids.*3 names"):
        Session(np.zeros((6, 2)), np.zeros((6, 2)), ["a", "b", "c"], 0.02)
    with pytest.raises(DataError, match="unique"):
        Session(np.zeros((6, 2)), np.zeros((6, 2)), ["a", "a"], 0.02)
    with pytest.raises(DataError, match="counts.*NaN"):
        Session(np.full((6, 2), np.nan), np.zeros((6, 2)), ["a", "b"], 0.02)
    with pytest.raises(DataError, match=">= 0"):
        Session(-np.ones((6, 2)), np.zeros((6, 2)), ["a", "b"], 0.02)
    with pytest.raises(DataError, match="bin_width"):
        Session(np.zeros((6, 2)), np.zeros((6, 2)), ["a", "b"], 0.0)
    with pytest.raises(DataError, match="trial_starts"):
        Session(np.zeros((6, 2)), np.zeros((6, 2)), ["a", "b"], 0.02, {}, [0, 6])


needs_primate = pytest.mark.skipif(
    not PRIMATE_DIR.is_dir(), reason=f"no demo recordings in {PRIMATE_DIR}"
)


@needs_primate
def test_demo_pair_chewie():
    a, b = load_demo_pair(PRIMATE_DIR, name="chewie", bin_width=0.1)
    assert a.counts.shape == (1200, 71)
    assert b.counts.shape == (1818, 71)
    assert a.velocity.shape == (1200, 2)
    assert a.bin_width == 0.1
    assert a.metadata["bin_width_source"] == "parameter"
    assert a.metadata["counts_unit"] == "count"
    assert a.metadata["kind"] == "real"
    assert a.metadata["channel_identity"] == "index"
    assert a.trial_starts[0] == 0
    assert len(a.trial_starts) > 10


@needs_primate
def test_demo_pair_mihi():
    a, b = load_demo_pair(PRIMATE_DIR / "mihi_demo.mat", name="mihi")
    assert a.n_channels == 174
    assert b.n_channels == 187
    assert a.metadata["counts_unit"] == "rate"
    with pytest.raises(DataError, match="equal channel counts"):
        align_channels(a, b, by_index=True)
