"""Drift components on recorded-style counts and on synthetic NWB sessions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sparse_rtrl.data import (
    DriftConfig,
    Session,
    apply_drift,
    draw_drift,
    fit_linear_tuning,
    load_nwb,
    make_synthetic_pair,
)

OFF = DriftConfig.none()


def only(**components) -> DriftConfig:
    """Return a config with every component off except ``components``."""
    settings = {
        "drop_fraction": 0.0,
        "swap_fraction": 0.0,
        "gain_std": 0.0,
        "baseline_std": 0.0,
        "rotation_deg": 0.0,
    }
    return DriftConfig(**{**settings, **components})


@pytest.fixture(scope="module")
def tuned():
    """A session of 12 linearly tuned channels with high rates, so nothing clips."""
    rng = np.random.default_rng(0)
    velocity = rng.standard_normal((3000, 2))
    directions = np.linspace(0.0, 2 * math.pi, 12, endpoint=False)
    weights = 8.0 * np.stack([np.cos(directions), np.sin(directions)])  # (2, C)
    counts = rng.poisson(200.0 + velocity @ weights).astype(float)
    ids = [f"e{i}" for i in range(12)]
    metadata = {"session_id": "tuned", "kind": "real", "source_file": "tuned.nwb"}
    return Session(counts, velocity, ids, 0.02, metadata)


def preferred_directions(session: Session) -> np.ndarray:
    _, weights = fit_linear_tuning(session.counts, session.velocity)
    return np.arctan2(weights[1], weights[0])


def angle_difference(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Return ``after - before`` wrapped to (-180, 180] degrees."""
    return np.degrees(np.angle(np.exp(1j * (after - before))))


def test_no_drift_keeps_counts(tuned):
    drifted = apply_drift(tuned, OFF, seed=1)
    np.testing.assert_array_equal(drifted.counts, tuned.counts)
    assert drifted.metadata["kind"] == "drifted"
    assert drifted.metadata["drifted_from"] == "tuned"
    assert tuned.metadata["kind"] == "real"


def test_drop_silences_channels(tuned):
    drifted = apply_drift(tuned, only(drop_fraction=0.25), seed=1)
    dropped = [tuned.channel_ids.index(c) for c in drifted.metadata["drift"]["dropped"]]
    kept = [i for i in range(12) if i not in dropped]
    assert len(dropped) == 3
    assert drifted.channel_ids == tuned.channel_ids
    np.testing.assert_array_equal(drifted.counts[:, dropped], 0.0)
    np.testing.assert_array_equal(drifted.counts[:, kept], tuned.counts[:, kept])


def test_drop_removes_channels(tuned):
    drifted = apply_drift(tuned, only(drop_fraction=0.25, drop_mode="remove"), seed=1)
    dropped = drifted.metadata["drift"]["dropped"]
    assert drifted.n_channels == 9
    assert not set(dropped) & set(drifted.channel_ids)
    kept = [tuned.channel_ids.index(c) for c in drifted.channel_ids]
    np.testing.assert_array_equal(drifted.counts, tuned.counts[:, kept])


def test_swap_exchanges_neighbours(tuned):
    drifted = apply_drift(tuned, only(swap_fraction=0.5), seed=2)
    pairs = drifted.metadata["drift"]["swapped"]
    assert len(pairs) == 3
    swapped = set()
    for first, second in pairs:
        i, j = tuned.channel_ids.index(first), tuned.channel_ids.index(second)
        assert j == i + 1
        np.testing.assert_array_equal(drifted.counts[:, i], tuned.counts[:, j])
        np.testing.assert_array_equal(drifted.counts[:, j], tuned.counts[:, i])
        swapped |= {i, j}
    unchanged = [i for i in range(12) if i not in swapped]
    np.testing.assert_array_equal(
        drifted.counts[:, unchanged], tuned.counts[:, unchanged]
    )


def test_gain_scales_mean_rates(tuned):
    drifted = apply_drift(tuned, only(gain_std=0.3), seed=3)
    gain = np.array(drifted.metadata["drift"]["gain"])
    assert np.abs(np.log(gain)).max() > 0.05
    ratio = drifted.counts.mean(axis=0) / tuned.counts.mean(axis=0)
    np.testing.assert_allclose(ratio, gain, rtol=1e-12)


def test_baseline_shifts_mean_rates(tuned):
    drifted = apply_drift(tuned, only(baseline_std=0.1), seed=4)
    baseline = np.array(drifted.metadata["drift"]["baseline"])
    mean = tuned.counts.mean(axis=0)
    shift = drifted.counts.mean(axis=0) - mean
    np.testing.assert_allclose(shift, baseline * mean, rtol=1e-9)
    # The modulation around the mean is unchanged.
    np.testing.assert_allclose(drifted.counts.std(axis=0), tuned.counts.std(axis=0))


@pytest.mark.parametrize("angle", [30.0, -75.0])
def test_rotation_rotates_preferred_directions(tuned, angle):
    drifted = apply_drift(tuned, only(rotation_deg=angle), seed=5)
    change = angle_difference(
        preferred_directions(drifted), preferred_directions(tuned)
    )
    np.testing.assert_allclose(change, angle, atol=1e-6)
    np.testing.assert_array_equal(drifted.velocity, tuned.velocity)


def test_drift_is_seeded(tuned):
    drift = DriftConfig()
    first = apply_drift(tuned, drift, seed=7)
    again = apply_drift(tuned, drift, seed=7)
    other = apply_drift(tuned, drift, seed=8)
    np.testing.assert_array_equal(first.counts, again.counts)
    assert first.metadata["drift"] == again.metadata["drift"]
    assert first.metadata["drift"] != other.metadata["drift"]


def test_components_draw_independently():
    both = draw_drift(
        20, only(gain_std=0.2, swap_fraction=0.4), np.random.default_rng(0)
    )
    gain = draw_drift(20, only(gain_std=0.2), np.random.default_rng(0))
    np.testing.assert_array_equal(both.gain, gain.gain)
    np.testing.assert_array_equal(gain.permutation, np.arange(20))
    assert (both.permutation != np.arange(20)).sum() == 8


@pytest.mark.parametrize(
    "options, message",
    [
        ({"drop_fraction": 1.0}, "drop_fraction must be in"),
        ({"drop_fraction": -0.1}, "drop_fraction"),
        ({"swap_fraction": 1.5}, "swap_fraction must be in"),
        ({"gain_std": -1.0}, "gain_std"),
        ({"baseline_std": float("nan")}, "baseline_std"),
        ({"rotation_deg": float("inf")}, "rotation_deg"),
        ({"drop_mode": "zero"}, "drop_mode"),
    ],
)
def test_drift_config_rejects(options, message):
    with pytest.raises(ValueError, match=message):
        DriftConfig(**options)


def synthetic_pair(tmp_path, drift, seed=3, n_channels=24, duration_s=60.0):
    path_a, path_b = make_synthetic_pair(
        tmp_path, seed, drift=drift, n_channels=n_channels, duration_s=duration_s
    )
    return load_nwb(path_a), load_nwb(path_b)


def test_synthetic_files_are_labelled(tmp_path):
    a, b = synthetic_pair(tmp_path, OFF, n_channels=4, duration_s=5.0)
    assert a.metadata["kind"] == "synthetic"
    assert b.metadata["kind"] == "synthetic"
    assert a.metadata["session_id"] != b.metadata["session_id"]
    assert a.channel_ids == b.channel_ids == ["e0", "e1", "e2", "e3"]
    assert a.counts.shape == (250, 4)
    assert a.trial_starts[0] == 0


def test_synthetic_is_seeded(tmp_path):
    first, _ = synthetic_pair(
        tmp_path / "1", DriftConfig(), n_channels=4, duration_s=5.0
    )
    again, _ = synthetic_pair(
        tmp_path / "2", DriftConfig(), n_channels=4, duration_s=5.0
    )
    other, _ = synthetic_pair(
        tmp_path / "3", DriftConfig(), seed=4, n_channels=4, duration_s=5.0
    )
    np.testing.assert_array_equal(first.counts, again.counts)
    np.testing.assert_array_equal(first.velocity, again.velocity)
    assert not np.array_equal(first.counts, other.counts)


def test_synthetic_rotation(tmp_path):
    a, b = synthetic_pair(tmp_path, only(rotation_deg=30.0))
    change = angle_difference(preferred_directions(b), preferred_directions(a))
    # Poisson noise and rectified rates blur single fits; the median is tight.
    assert abs(np.median(change) - 30.0) < 5.0
    assert np.abs(change - 30.0).max() < 25.0


def test_synthetic_drop(tmp_path):
    a, b = synthetic_pair(tmp_path, only(drop_fraction=0.25))
    dropped = json.loads(b.metadata["notes"])["drift"]["dropped"]
    columns = [int(label.removeprefix("elec")) for label in dropped]
    assert len(columns) == 6
    np.testing.assert_array_equal(b.counts[:, columns], 0.0)
    assert (a.counts[:, columns].sum(axis=0) > 0).all()
    removed = synthetic_pair(
        tmp_path / "r", only(drop_fraction=0.25, drop_mode="remove")
    )
    assert removed[1].n_channels == 18
    assert not {f"e{c}" for c in columns} & set(removed[1].channel_ids)


def test_synthetic_swap(tmp_path):
    a, b = synthetic_pair(tmp_path, only(swap_fraction=0.5))
    pairs = json.loads(b.metadata["notes"])["drift"]["swapped"]
    directions_a, directions_b = preferred_directions(a), preferred_directions(b)
    assert len(pairs) == 6
    for first, second in pairs:
        i, j = int(first.removeprefix("elec")), int(second.removeprefix("elec"))
        assert abs(angle_difference(directions_b[i], directions_a[j])) < 25.0
        assert abs(angle_difference(directions_b[j], directions_a[i])) < 25.0


def test_synthetic_gain(tmp_path):
    a, b = synthetic_pair(tmp_path, only(gain_std=0.3))
    gain = np.array(json.loads(b.metadata["notes"])["drift"]["gain"])
    ratio = b.counts.mean(axis=0) / a.counts.mean(axis=0)
    # Every rate term scales with the gain, but session B has new reaches, which
    # move each unit's mean rate by up to about 20 %.
    assert abs(np.median(ratio / gain) - 1.0) < 0.05
    np.testing.assert_allclose(ratio, gain, rtol=0.3)
    assert np.corrcoef(np.log(ratio), np.log(gain))[0, 1] > 0.95
