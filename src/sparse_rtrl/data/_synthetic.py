"""Synthetic reaching sessions with cosine-tuned Poisson units, written as NWB."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from .._validation import check_int_range, check_non_negative, check_positive
from ._drift import DriftConfig, draw_drift

# Reaches go between targets drawn uniformly in a disk of this radius, in metres.
WORKSPACE_RADIUS = 0.08
# Speed at which a unit's directional modulation reaches its full depth, in m/s.
REFERENCE_SPEED = 0.1
BEHAVIOR_RATE = 100.0


@dataclass
class Tuning:
    """Firing-rate model of C units.

    The rate of unit ``c`` at velocity ``v`` is
    ``max(0, baseline[c] + depth[c] (v · u_c) / v_ref + speed[c] |v| / v_ref)``
    with ``u_c = (cos direction[c], sin direction[c])`` and ``v_ref`` equal to
    ``REFERENCE_SPEED``.

    Attributes:
      baseline: (C,) rate at rest, in spikes/s.
      depth: (C,) modulation depth, in spikes/s.
      direction: (C,) preferred direction, in radians.
      speed: (C,) speed gain, in spikes/s.
    """

    baseline: np.ndarray
    depth: np.ndarray
    direction: np.ndarray
    speed: np.ndarray

    def rates(self, velocity: np.ndarray) -> np.ndarray:
        """Return the (T, C) rates, in spikes/s, for velocity (T, 2) in m/s."""
        preferred = np.stack([np.cos(self.direction), np.sin(self.direction)])
        along = velocity @ preferred / REFERENCE_SPEED  # (T, C)
        speed = np.linalg.norm(velocity, axis=1, keepdims=True) / REFERENCE_SPEED
        rates = self.baseline + self.depth * along + self.speed * speed
        return np.maximum(rates, 0.0)

    def take(self, indices: np.ndarray) -> Tuning:
        return Tuning(*(values[indices] for values in asdict(self).values()))


@dataclass
class Reaches:
    """Minimum-jerk reaches, each followed by a hold.

    Attributes:
      starts: (K,) start time of each reach, in seconds.
      durations: (K,) duration of each reach, in seconds.
      holds: (K,) hold after each reach, in seconds.
      origins: (K, 2) start point of each reach, in metres.
      targets: (K, 2) end point of each reach, in metres.
    """

    starts: np.ndarray
    durations: np.ndarray
    holds: np.ndarray
    origins: np.ndarray
    targets: np.ndarray

    def position(self, times: np.ndarray) -> np.ndarray:
        """Return the (N, 2) hand position at ``times`` (N,)."""
        k = np.clip(np.searchsorted(self.starts, times, side="right") - 1, 0, None)
        phase = np.clip((times - self.starts[k]) / self.durations[k], 0.0, 1.0)
        # The minimum-jerk profile 10 s^3 - 15 s^4 + 6 s^5 (Flash and Hogan, 1985).
        profile = phase**3 * (10 - 15 * phase + 6 * phase**2)
        return self.origins[k] + (self.targets[k] - self.origins[k]) * profile[:, None]


def draw_reaches(duration_s: float, rng: np.random.Generator) -> Reaches:
    """Draw reaches of 0.5-1.0 s, each with a 0.1-0.3 s hold, to fill ``duration_s``."""
    starts, durations, holds, origins, targets = [], [], [], [], []
    time, point = 0.0, np.zeros(2)
    while time < duration_s:
        radius = WORKSPACE_RADIUS * math.sqrt(rng.uniform())
        angle = rng.uniform(0, 2 * math.pi)
        target = radius * np.array([math.cos(angle), math.sin(angle)])
        duration, hold = rng.uniform(0.5, 1.0), rng.uniform(0.1, 0.3)
        starts.append(time)
        durations.append(duration)
        holds.append(hold)
        origins.append(point)
        targets.append(target)
        time += duration + hold
        point = target
    arrays = (starts, durations, holds, origins, targets)
    return Reaches(*(np.array(values) for values in arrays))


def draw_tuning(
    n_channels: int, speed_tuning: float, rng: np.random.Generator
) -> Tuning:
    """Draw baselines of 5-20 spikes/s, depths of 40-90 % of them, any direction."""
    baseline = rng.uniform(5.0, 20.0, n_channels)
    depth = baseline * rng.uniform(0.4, 0.9, n_channels)
    direction = rng.uniform(0.0, 2 * math.pi, n_channels)
    speed = speed_tuning * depth * rng.uniform(0.0, 1.0, n_channels)
    return Tuning(baseline, depth, direction, speed)


def simulate_spikes(
    tuning: Tuning,
    reaches: Reaches,
    duration_s: float,
    bin_width: float,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Draw Poisson spike times for each unit.

    The rate is held constant within each bin of ``bin_width``, at the rate of the
    bin's mean velocity, so counts binned at that width are exact Poisson draws of
    the tuning model.
    """
    n_bins = int(math.floor(duration_s / bin_width + 1e-9))
    edges = bin_width * np.arange(n_bins + 1)
    velocity = np.diff(reaches.position(edges), axis=0) / bin_width  # (T, 2)
    rates = tuning.rates(velocity)  # (T, C)
    counts = rng.poisson(rates * bin_width)
    trains = []
    for column in range(counts.shape[1]):
        bin_starts = np.repeat(edges[:-1], counts[:, column])
        times = bin_starts + rng.uniform(0.0, bin_width, bin_starts.size)
        trains.append(np.sort(times))
    return trains


def drifted_tuning(tuning: Tuning, draw) -> Tuning:
    """Apply a ``DriftDraw`` to tuning parameters (the drop is left to the caller)."""
    baseline = np.maximum(
        tuning.baseline * draw.gain + draw.baseline * tuning.baseline, 0
    )
    changed = Tuning(
        baseline=baseline,
        depth=tuning.depth * draw.gain,
        direction=np.mod(tuning.direction + draw.rotation, 2 * math.pi),
        speed=tuning.speed * draw.gain,
    )
    return changed.take(draw.permutation)


def make_synthetic_pair(
    out_dir: str | Path,
    seed: int,
    drift: DriftConfig | None = None,
    n_channels: int = 64,
    duration_s: float = 120.0,
    bin_width: float = 0.02,
    speed_tuning: float = 0.0,
) -> tuple[Path, Path]:
    """Write two synthetic reaching sessions as NWB files, B drifted from A.

    Each unit sits on its own electrode and fires as a Poisson process with the
    rate of ``Tuning``. Hand position follows minimum-jerk reaches between random
    targets and is stored as ``processing["behavior"]["Position"]["hand_pos"]`` at
    100 Hz; every reach is a trial. Session B has the same electrodes, its tuning
    changed by ``drift``, and new reaches and spikes. The files carry the keyword
    ``"synthetic"`` and the true tuning in the unit columns ``baseline_rate``,
    ``modulation_depth``, ``preferred_direction`` and ``speed_gain``.

    Args:
      out_dir: folder for the two files; created when missing.
      seed: seed of every random draw; the same seed gives the same data.
      drift: drift of session B; default ``DriftConfig()``.
      n_channels: number of units (and electrodes).
      duration_s: length of each session, in seconds.
      bin_width: width of the bins within which rates are held constant, in
        seconds; load the files with the same width for exact Poisson counts.
      speed_tuning: speed gain as a fraction of the modulation depth (0 for none).

    Returns:
      ``(path_a, path_b)``.
    """
    drift = DriftConfig() if drift is None else drift
    check_int_range("n_channels", n_channels, 2, 100_000)
    check_positive("duration_s", duration_s)
    check_positive("bin_width", bin_width)
    if duration_s < 2 * bin_width:
        raise ValueError(
            f"duration_s must be >= 2 * bin_width; got duration_s={duration_s} "
            f"for bin_width={bin_width}"
        )
    check_non_negative("speed_tuning", speed_tuning)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    tuning_rng, drift_rng, rng_a, rng_b = (
        np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(4)
    )
    tuning_a = draw_tuning(n_channels, speed_tuning, tuning_rng)
    draw = draw_drift(n_channels, drift, drift_rng)
    tuning_b = drifted_tuning(tuning_a, draw)
    units_b = np.arange(n_channels)
    if drift.drop_mode == "remove":
        units_b = np.flatnonzero(~draw.dropped)
    else:
        tuning_b.baseline[draw.dropped] = 0.0
        tuning_b.depth[draw.dropped] = 0.0
        tuning_b.speed[draw.dropped] = 0.0

    start = datetime(2024, 1, 1, 10, 0, tzinfo=timezone.utc)
    labels = [f"elec{i:03d}" for i in range(n_channels)]
    notes_b = {
        "drift_config": asdict(drift),
        "drift": draw.summary(labels),
        "seed": seed,
    }
    paths = []
    sessions = (
        ("A", tuning_a, np.arange(n_channels), rng_a, start, {"seed": seed}),
        ("B", tuning_b, units_b, rng_b, start + timedelta(days=1), notes_b),
    )
    for name, tuning, units, rng, session_start, notes in sessions:
        reaches = draw_reaches(duration_s, rng)
        trains = simulate_spikes(
            tuning.take(units), reaches, duration_s, bin_width, rng
        )
        path = out_dir / f"synthetic_seed{seed}_{name}.nwb"
        _write_nwb(
            path,
            session_id=f"synthetic-{seed}-{name}",
            session_start=session_start,
            labels=labels,
            units=units,
            tuning=tuning.take(units),
            trains=trains,
            reaches=reaches,
            duration_s=duration_s,
            notes=json.dumps(notes),
        )
        paths.append(path)
    return paths[0], paths[1]


def _write_nwb(
    path: Path,
    session_id: str,
    session_start: datetime,
    labels: list[str],
    units: np.ndarray,
    tuning: Tuning,
    trains: list[np.ndarray],
    reaches: Reaches,
    duration_s: float,
    notes: str,
) -> None:
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.behavior import Position, SpatialSeries
    from pynwb.file import Subject

    nwbfile = NWBFile(
        session_description="Synthetic reaching session of cosine-tuned Poisson "
        "units, generated by sparse_rtrl; not a recording.",
        identifier=f"sparse-rtrl-{session_id}",
        session_start_time=session_start,
        session_id=session_id,
        keywords=["synthetic", "reaching", "motor cortex"],
        subject=Subject(subject_id="synthetic", description="simulated units"),
        notes=notes,
    )
    device = nwbfile.create_device(name="array", description="simulated array")
    group = nwbfile.create_electrode_group(
        name="array", description="simulated electrodes", location="M1", device=device
    )
    nwbfile.add_electrode_column(name="label", description="electrode name")
    for label in labels:
        nwbfile.add_electrode(group=group, location="M1", label=label)

    columns = {
        "baseline_rate": "rate at rest, in spikes/s",
        "modulation_depth": "directional modulation depth, in spikes/s",
        "preferred_direction": "preferred movement direction, in radians",
        "speed_gain": "rate gain on speed, in spikes/s",
    }
    for name, description in columns.items():
        nwbfile.add_unit_column(name=name, description=description)
    for i, electrode in enumerate(units):
        nwbfile.add_unit(
            spike_times=trains[i],
            electrodes=[int(electrode)],
            baseline_rate=float(tuning.baseline[i]),
            modulation_depth=float(tuning.depth[i]),
            preferred_direction=float(tuning.direction[i]),
            speed_gain=float(tuning.speed[i]),
        )

    n_samples = int(math.floor(duration_s * BEHAVIOR_RATE + 1e-9)) + 1
    position = reaches.position(np.arange(n_samples) / BEHAVIOR_RATE)
    behavior = nwbfile.create_processing_module(
        name="behavior", description="simulated hand movement"
    )
    series = SpatialSeries(
        name="hand_pos",
        data=position,
        reference_frame="workspace centre, x right, y up",
        unit="meters",
        starting_time=0.0,
        rate=BEHAVIOR_RATE,
        description="hand position (x, y)",
    )
    behavior.add(Position(spatial_series=series))
    ends = reaches.starts + reaches.durations + reaches.holds
    for start, end in zip(reaches.starts, ends, strict=True):
        stop = min(end, duration_s)
        if start < stop:
            nwbfile.add_trial(start_time=float(start), stop_time=float(stop))

    with NWBHDF5IO(str(path), mode="w") as io:
        io.write(nwbfile)
