"""BCITask: streams of normalised counts and velocity from two sessions."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sparse_rtrl.data import DataError, DriftConfig, Session
from sparse_rtrl.tasks._base import Task
from sparse_rtrl.tasks._bci import BCITask

PRIMATE_DIR = Path(
    os.environ.get(
        "SPARSE_RTRL_PRIMATE_DIR",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "primate",
    )
)
needs_primate = pytest.mark.skipif(
    not PRIMATE_DIR.is_dir(), reason=f"no demo recordings in {PRIMATE_DIR}"
)


def make_session(rows, ids, seed, scale=1.0, trial_starts=None):
    rng = np.random.default_rng(seed)
    counts = scale * rng.poisson(3.0, size=(rows, len(ids))).astype(float)
    velocity = rng.standard_normal((rows, 2)) * [2.0, 0.5]
    metadata = {"session_id": f"s{seed}", "channel_identity": "electrode"}
    return Session(counts, velocity, list(ids), 0.02, metadata, trial_starts)


@pytest.fixture
def pair():
    a = make_session(100, ["e0", "e1", "e2", "e3"], seed=0)
    b = make_session(60, ["e0", "e1", "e2", "e3"], seed=1, scale=2.0)
    return a, b


def test_shapes_and_dtype(pair):
    task = BCITask(*pair)
    assert isinstance(task, Task)
    assert task.name == "bci"
    assert task.input_size == 4
    assert task.output_size == 2
    stream = task.sample("A", 30, torch.Generator().manual_seed(0))
    assert stream.inputs.shape == (30, 4)
    assert stream.targets.shape == (30, 2)
    assert stream.inputs.dtype == torch.float64
    assert stream.targets.dtype == torch.float64
    assert stream.error_mask.all()
    assert stream.segment_start.dtype == torch.bool


def test_normalised_with_session_a(pair):
    a, b = pair
    task = BCITask(a, b)
    generator = torch.Generator()
    stream_a = task.sample("A", len(a), generator)
    torch.testing.assert_close(
        stream_a.inputs.mean(dim=0), torch.zeros(4, dtype=torch.float64)
    )
    torch.testing.assert_close(
        stream_a.inputs.std(dim=0, unbiased=False), torch.ones(4, dtype=torch.float64)
    )
    torch.testing.assert_close(
        stream_a.targets.std(dim=0, unbiased=False), torch.ones(2, dtype=torch.float64)
    )
    # Session B is scaled by 2, and its inputs use session A's statistics.
    stream_b = task.sample("B", len(b), generator)
    expected = (b.counts - a.counts.mean(axis=0)) / a.counts.std(axis=0)
    np.testing.assert_allclose(stream_b.inputs.numpy(), expected)
    np.testing.assert_allclose(
        stream_b.targets.numpy(), b.velocity / a.velocity.std(axis=0)
    )


def test_silent_channel_is_not_divided_by_zero(pair):
    a, b = pair
    a.counts[:, 2] = 0.0
    task = BCITask(a, b)
    stream = task.sample("B", 10, torch.Generator())
    assert torch.isfinite(stream.inputs).all()
    np.testing.assert_allclose(stream.inputs[:, 2].numpy(), b.counts[:10, 2])


def test_stream_starts_at_bin_zero(pair):
    a, b = pair
    task = BCITask(a, b)
    first = task.sample("B", 20, torch.Generator().manual_seed(0))
    second = task.sample("B", 20, torch.Generator().manual_seed(99))
    torch.testing.assert_close(first.inputs, second.inputs)
    np.testing.assert_allclose(
        first.targets.numpy(), b.velocity[:20] / task.velocity_std
    )


def test_random_start_is_seeded(pair):
    task = BCITask(*pair, random_start=True)
    first = task.sample("A", 20, torch.Generator().manual_seed(5))
    again = task.sample("A", 20, torch.Generator().manual_seed(5))
    other = task.sample("A", 20, torch.Generator().manual_seed(6))
    torch.testing.assert_close(first.inputs, again.inputs)
    assert not torch.equal(first.inputs, other.inputs)
    assert first.segment_start[0]


def test_long_stream_wraps(pair):
    a, b = pair
    task = BCITask(a, b, segment_length=25)
    stream = task.sample("B", 150, torch.Generator())
    torch.testing.assert_close(stream.inputs[60:120], stream.inputs[:60])
    torch.testing.assert_close(stream.inputs[120:], stream.inputs[:30])
    # Fixed segments of 25 bins restart at the wrap (bin 60 of the stream).
    expected = torch.zeros(150, dtype=torch.bool)
    expected[[0, 25, 50, 60, 85, 110, 120, 145]] = True
    torch.testing.assert_close(stream.segment_start, expected)


def test_segments_follow_trials():
    a = make_session(50, ["e0", "e1"], seed=0, trial_starts=[3, 20, 41])
    b = make_session(30, ["e0", "e1"], seed=1, trial_starts=[0, 12])
    task = BCITask(a, b)
    starts_a = task.sample("A", 50, torch.Generator()).segment_start
    assert torch.nonzero(starts_a).flatten().tolist() == [0, 3, 20, 41]
    starts_b = task.sample("B", 40, torch.Generator()).segment_start
    assert torch.nonzero(starts_b).flatten().tolist() == [0, 12, 30]


def test_from_sessions_aligns():
    a = make_session(40, ["e0", "e1", "e2"], seed=0)
    b = make_session(40, ["e2", "e5", "e0"], seed=1)
    task = BCITask.from_sessions(a, b)
    assert task.input_size == 2
    assert task.sessions["B"].channel_ids == ["e0", "e2"]
    np.testing.assert_array_equal(task.sessions["B"].counts, b.counts[:, [2, 0]])
    with pytest.raises(ValueError, match="from_sessions"):
        BCITask(a, b)
    with pytest.raises(DataError, match="shares no channel id"):
        BCITask.from_sessions(a, make_session(40, ["x"], seed=2))


def test_rejects_bad_options(pair):
    with pytest.raises(ValueError, match="segment_length"):
        BCITask(*pair, segment_length=0)
    a, b = pair
    a.velocity[:, 1] = 0.0
    with pytest.raises(ValueError, match="velocity must vary"):
        BCITask(a, b)


def test_synthetic_task():
    drift = DriftConfig(drop_fraction=0.25, drop_mode="remove")
    task = BCITask.synthetic(seed=0, drift=drift, n_channels=8, duration_s=10.0)
    assert task.input_size == 6
    assert task.sessions["A"].metadata["kind"] == "synthetic"
    assert task.sessions["B"].metadata["kind"] == "synthetic"
    stream = task.sample("B", 600, torch.Generator())
    assert stream.inputs.shape == (600, 6)
    again = BCITask.synthetic(seed=0, drift=drift, n_channels=8, duration_s=10.0)
    torch.testing.assert_close(
        again.sample("B", 600, torch.Generator()).inputs, stream.inputs
    )


@needs_primate
def test_demo_natural_pair():
    task = BCITask.from_demo(PRIMATE_DIR, name="chewie")
    assert task.input_size == 71
    assert len(task.sessions["A"]) == 1200
    assert len(task.sessions["B"]) == 1818
    stream = task.sample("B", 2000, torch.Generator())
    assert stream.inputs.shape == (2000, 71)
    assert torch.isfinite(stream.inputs).all()


@needs_primate
def test_demo_drifted_pair():
    with pytest.raises(ValueError, match="174 and 187 units"):
        BCITask.from_demo(PRIMATE_DIR, name="mihi")
    drift = DriftConfig(drop_fraction=0.1, drop_mode="remove")
    task = BCITask.from_demo(PRIMATE_DIR, name="mihi", drift=drift, seed=3)
    assert task.input_size == 174 - 17
    assert task.sessions["B"].metadata["kind"] == "drifted"
    assert task.sessions["A"].metadata["kind"] == "real"
    # Session B repeats part A's movements with drifted counts.
    np.testing.assert_array_equal(
        task.sessions["B"].velocity, task.sessions["A"].velocity
    )
