"""The delay, Lorenz and adding tasks: shapes, determinism and their definitions."""

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from sparse_rtrl.tasks import (
    TASKS,
    AddingTask,
    DelayTask,
    LorenzTask,
    apply_error_density,
    integrate_lorenz,
    make_task,
)
from sparse_rtrl.tasks._lorenz import lorenz_derivative

NEW_TASKS = ["delay", "lorenz", "adding"]


@pytest.mark.parametrize("name", NEW_TASKS)
def test_task_registered(name):
    assert name in TASKS
    assert make_task(name).name == name


@pytest.mark.parametrize("name", NEW_TASKS)
@pytest.mark.parametrize("regime", ["A", "B"])
def test_stream_shapes(name, regime, generator):
    task = make_task(name)
    stream = task.sample(regime, 57, generator)
    assert stream.inputs.shape == (57, task.input_size)
    assert stream.targets.shape == (57, task.output_size)
    assert stream.error_mask.shape == (57,)
    assert stream.segment_start.shape == (57,)
    assert stream.inputs.dtype == torch.float64
    assert stream.error_mask.dtype == torch.bool
    assert bool(stream.segment_start[0])
    assert torch.isfinite(stream.inputs).all()
    assert torch.isfinite(stream.targets).all()


@pytest.mark.parametrize("name", NEW_TASKS)
def test_batch_shapes(name, generator):
    task = make_task(name)
    streams = task.sample_batch("A", 40, 5, generator)
    assert len(streams) == 5
    for stream in streams:
        assert stream.inputs.shape == (40, task.input_size)
        assert stream.targets.shape == (40, task.output_size)
    assert not torch.equal(streams[0].inputs, streams[1].inputs)


@pytest.mark.parametrize("name", NEW_TASKS)
def test_same_seed_same_stream(name):
    task = make_task(name)
    first = task.sample("B", 80, torch.Generator().manual_seed(3))
    second = task.sample("B", 80, torch.Generator().manual_seed(3))
    other = task.sample("B", 80, torch.Generator().manual_seed(4))
    assert torch.equal(first.inputs, second.inputs)
    assert torch.equal(first.targets, second.targets)
    assert torch.equal(first.error_mask, second.error_mask)
    assert not torch.equal(first.inputs, other.inputs)


@pytest.mark.parametrize("name", NEW_TASKS)
def test_invalid_regime_rejected(name, generator):
    with pytest.raises(ValueError, match="regime must be one of"):
        make_task(name).sample_batch("C", 10, 2, generator)


def test_delay_target_is_past_input(generator):
    task = DelayTask(channels=2, delay=5, delay_b=9)
    for regime, delay in (("A", 5), ("B", 9)):
        stream = task.sample(regime, 60, generator)
        torch.testing.assert_close(stream.targets[delay:], stream.inputs[:-delay])
        assert not stream.error_mask[:delay].any()
        assert stream.error_mask[delay:].all()
        assert (stream.targets[:delay] == 0).all()


def test_delay_longer_than_stream(generator):
    stream = DelayTask(delay=20).sample("A", 10, generator)
    assert not stream.error_mask.any()


@pytest.mark.parametrize(
    "options,message",
    [
        ({"delay": 0}, "delay must be in"),
        ({"delay_b": -1}, "delay_b must be in"),
        ({"channels": 0}, "channels must be in"),
    ],
)
def test_delay_rejects_invalid_options(options, message):
    with pytest.raises(ValueError, match=message):
        DelayTask(**options)


@pytest.mark.parametrize(
    "initial", [[1.0, 1.0, 20.0], [-5.0, 3.0, 30.0], [8.0, -2.0, 15.0]]
)
def test_lorenz_matches_reference_integration(initial):
    initial = np.asarray(initial)
    ours = integrate_lorenz(initial, 100, dt=0.01)  # one time unit
    reference = solve_ivp(
        lambda t, s: lorenz_derivative(s, 10.0, 28.0, 8.0 / 3.0),
        (0.0, 1.0),
        initial,
        method="DOP853",
        rtol=1e-10,
        atol=1e-12,
        t_eval=np.arange(101) * 0.01,
    )
    np.testing.assert_allclose(ours, reference.y.T, rtol=0, atol=1e-3)


def test_lorenz_rk4_is_fourth_order():
    initial = np.array([-5.0, 3.0, 30.0])
    reference = integrate_lorenz(initial, 3200, dt=0.5 / 3200)[-1]
    coarse = np.abs(integrate_lorenz(initial, 50, dt=0.01)[-1] - reference).max()
    fine = np.abs(integrate_lorenz(initial, 100, dt=0.005)[-1] - reference).max()
    # Halving dt divides a fourth-order error by about 16.
    assert coarse / fine > 10


def test_lorenz_batch_integrates_each_state():
    initial = np.array([[1.0, 1.0, 20.0], [-5.0, 3.0, 30.0]])
    together = integrate_lorenz(initial, 30)
    for b in range(2):
        np.testing.assert_allclose(together[:, b], integrate_lorenz(initial[b], 30))


def test_lorenz_target_is_next_input(generator):
    stream = LorenzTask(stride=3).sample("A", 50, generator)
    torch.testing.assert_close(stream.targets[:-1], stream.inputs[1:])
    assert stream.error_mask.all()


def test_lorenz_regime_a_is_normalised(generator):
    streams = LorenzTask().sample_batch("A", 2000, 8, generator)
    values = torch.cat([s.inputs for s in streams])
    assert values.mean(0).abs().max() < 0.15
    assert (values.std(0) - 1).abs().max() < 0.15


def test_lorenz_regime_b_shifts_the_attractor(generator):
    task = LorenzTask(rho=28.0, rho_b=35.0)
    a = torch.cat([s.inputs for s in task.sample_batch("A", 1000, 4, generator)])
    b = torch.cat([s.inputs for s in task.sample_batch("B", 1000, 4, generator)])
    # z oscillates around ρ − 1 on average, so it rises with ρ.
    assert b[:, 2].mean() - a[:, 2].mean() > 0.4


def test_lorenz_rejects_invalid_options():
    with pytest.raises(ValueError, match="rho_b must be a finite number > 0"):
        LorenzTask(rho_b=-1.0)
    with pytest.raises(ValueError, match="stride must be in"):
        LorenzTask(stride=0)


def _segment_values(stream, length):
    inputs = stream.inputs.reshape(-1, length, 3)
    targets = stream.targets.reshape(-1, length, 1)
    return inputs, targets


@pytest.mark.parametrize("regime,weight", [("A", 1.0), ("B", -1.0)])
def test_adding_target_is_weighted_sum(regime, weight, generator):
    length = 10
    stream = AddingTask(segment_length=length).sample(regime, 60, generator)
    inputs, targets = _segment_values(stream, length)
    markers = inputs[:, :, 1]
    assert (markers.sum(1) == 2).all()
    for segment in range(inputs.shape[0]):
        first, second = torch.nonzero(markers[segment]).flatten().tolist()
        assert first < length // 2 <= second < length - 1
        values = inputs[segment, :, 0]
        expected = values[first] + weight * values[second]
        torch.testing.assert_close(targets[segment, -1, 0], expected)
        assert (targets[segment, :-1] == 0).all()
    assert (inputs[:, -1, 2] == 1).all()
    assert (inputs[:, :-1, 2] == 0).all()


def test_adding_error_only_at_segment_ends(generator):
    length = 8
    stream = AddingTask(segment_length=length).sample("A", 30, generator)
    ends = [t for t in range(30) if t % length == length - 1]
    assert torch.nonzero(stream.error_mask).flatten().tolist() == ends
    starts = torch.nonzero(stream.segment_start).flatten().tolist()
    assert starts == [0, 8, 16, 24]


def test_adding_terminal_density_keeps_mask(generator):
    stream = AddingTask(segment_length=8).sample("A", 32, generator)
    thinned = apply_error_density(stream, "terminal")
    assert torch.equal(thinned.error_mask, stream.error_mask)


def test_adding_rejects_short_segments():
    with pytest.raises(ValueError, match="segment_length must be in"):
        AddingTask(segment_length=3)
