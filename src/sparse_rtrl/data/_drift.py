"""Session-to-session drift of a recording: the components and their application.

The same drawn drift applies either to tuning parameters (synthetic sessions) or to
the binned counts of a recorded session (``apply_drift``). Components act in this
order: rotation of preferred directions, gain and baseline changes, swaps of
neighbouring channels, then dropped channels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from .._validation import check_choice, check_non_negative
from ._session import Session

DROP_MODES = ("silence", "remove")


@dataclass(frozen=True)
class DriftConfig:
    """Drift of session B relative to session A; a component set to 0 is off.

    Attributes:
      drop_fraction: fraction of channels lost, in [0, 1).
      drop_mode: ``"silence"`` keeps a lost channel with zero counts, as a dead
        electrode; ``"remove"`` deletes it from session B.
      swap_fraction: fraction of channels, in [0, 1], whose signal trades places
        with a neighbouring channel (channel ``i`` with ``i + 1``), as after a
        re-sort or a re-wiring.
      gain_std: standard deviation of the log of each channel's gain on its rate.
      baseline_std: standard deviation of each channel's baseline change, as a
        fraction of its mean rate.
      rotation_deg: rotation of every preferred direction, in degrees.
    """

    drop_fraction: float = 0.1
    drop_mode: str = "silence"
    swap_fraction: float = 0.1
    gain_std: float = 0.2
    baseline_std: float = 0.2
    rotation_deg: float = 20.0

    def __post_init__(self):
        check_non_negative("drop_fraction", self.drop_fraction)
        if self.drop_fraction >= 1:
            raise ValueError(
                f"drop_fraction must be in [0, 1); got drop_fraction="
                f"{self.drop_fraction}"
            )
        check_choice("drop_mode", self.drop_mode, DROP_MODES)
        check_non_negative("swap_fraction", self.swap_fraction)
        if self.swap_fraction > 1:
            raise ValueError(
                f"swap_fraction must be in [0, 1]; got swap_fraction="
                f"{self.swap_fraction}"
            )
        check_non_negative("gain_std", self.gain_std)
        check_non_negative("baseline_std", self.baseline_std)
        if not (
            isinstance(self.rotation_deg, int | float)
            and math.isfinite(self.rotation_deg)
        ):
            raise ValueError(
                f"rotation_deg must be a finite number; got rotation_deg="
                f"{self.rotation_deg!r}"
            )

    @classmethod
    def none(cls) -> DriftConfig:
        """Return a config with every component off."""
        return cls(0.0, "silence", 0.0, 0.0, 0.0, 0.0)


@dataclass
class DriftDraw:
    """One random draw of a ``DriftConfig`` for C channels.

    Attributes:
      permutation: (C,) int, channel ``i`` of session B carries the signal of
        channel ``permutation[i]``.
      dropped: (C,) bool, True for the channels lost in session B.
      gain: (C,) factor on each channel's rate.
      baseline: (C,) baseline change as a fraction of each channel's mean rate.
      rotation: rotation of the preferred directions, in radians.
    """

    permutation: np.ndarray
    dropped: np.ndarray
    gain: np.ndarray
    baseline: np.ndarray
    rotation: float

    def summary(self, channel_ids: list[str]) -> dict:
        """Return the draw in plain Python types, naming channels by id."""
        swapped = [
            (channel_ids[i], channel_ids[j])
            for i, j in enumerate(self.permutation.tolist())
            if i < j
        ]
        return {
            "dropped": [channel_ids[i] for i in np.flatnonzero(self.dropped)],
            "swapped": swapped,
            "gain": self.gain.tolist(),
            "baseline": self.baseline.tolist(),
            "rotation_deg": math.degrees(self.rotation),
        }


def draw_drift(n_channels: int, drift: DriftConfig, rng: np.random.Generator):
    """Draw the channels and factors that ``drift`` changes, for ``n_channels``."""
    # Every component draws from the generator even when it is off, so turning one
    # component off leaves the draws of the others unchanged.
    permutation = _neighbour_swaps(n_channels, drift.swap_fraction, rng)
    n_dropped = int(round(drift.drop_fraction * n_channels))
    order = rng.permutation(n_channels)
    dropped = np.zeros(n_channels, dtype=bool)
    dropped[order[:n_dropped]] = True
    gain = np.exp(drift.gain_std * rng.standard_normal(n_channels))
    baseline = drift.baseline_std * rng.standard_normal(n_channels)
    return DriftDraw(
        permutation, dropped, gain, baseline, math.radians(drift.rotation_deg)
    )


def _neighbour_swaps(n_channels: int, fraction: float, rng: np.random.Generator):
    """Return a permutation that swaps disjoint pairs ``(i, i + 1)``."""
    permutation = np.arange(n_channels)
    n_pairs = min(int(round(fraction * n_channels / 2)), n_channels // 2)
    candidates = rng.permutation(max(n_channels - 1, 0))
    taken = np.zeros(n_channels, dtype=bool)
    pairs = 0
    for i in candidates:
        if pairs == n_pairs:
            break
        if taken[i] or taken[i + 1]:
            continue
        taken[i] = taken[i + 1] = True
        permutation[i], permutation[i + 1] = i + 1, i
        pairs += 1
    return permutation


def fit_linear_tuning(counts: np.ndarray, velocity: np.ndarray):
    """Fit ``counts ≈ offset + velocity @ weights`` by least squares.

    Args:
      counts: (T, C) counts.
      velocity: (T, 2) velocity.

    Returns:
      ``offset`` (C,) and ``weights`` (2, C). The preferred direction of channel
      ``c`` is the angle of ``weights[:, c]``.
    """
    design = np.column_stack([np.ones(len(velocity)), velocity])  # (T, 3)
    solution, *_ = np.linalg.lstsq(design, counts, rcond=None)  # (3, C)
    return solution[0], solution[1:]


def rotation_matrix(angle: float) -> np.ndarray:
    """Return the (2, 2) matrix that rotates a column vector by ``angle`` radians."""
    cos, sin = math.cos(angle), math.sin(angle)
    return np.array([[cos, -sin], [sin, cos]])


def apply_drift(session: Session, drift: DriftConfig, seed: int) -> Session:
    """Derive a drifted second session from the counts of ``session``.

    The velocity is kept, so the drifted session repeats the same movements.

    * rotation: fit the linear tuning ``counts ≈ offset + velocity @ weights``,
      rotate each channel's weight vector by ``rotation_deg`` and add
      ``velocity @ (rotated - weights)`` to the counts. The residuals are kept, so
      refitting the result gives exactly the rotated weights, until the clip
      at 0 below changes counts.
    * gain and baseline: ``counts * gain + baseline * mean(counts)``, per channel.
    * swaps: the columns of each swapped pair trade places (the ids stay).
    * drops: a dropped column is set to 0 (``"silence"``) or deleted
      (``"remove"``).

    Counts are clipped at 0 after the rotation and after the baseline change, so
    they stay valid but are no longer integers.

    Args:
      session: the session to drift; it is not modified.
      drift: which components to apply and how strongly.
      seed: seed of the draw; the same seed gives the same session.

    Returns:
      A session with ``metadata["kind"] == "drifted"`` and the draw in
      ``metadata["drift"]``.
    """
    # NOTE: the rotation assumes linear tuning to velocity; a channel that the fit
    # explains poorly mostly keeps its own residual activity.
    rng = np.random.default_rng(seed)
    draw = draw_drift(session.n_channels, drift, rng)
    counts = session.counts.copy()

    if draw.rotation != 0.0:
        offset, weights = fit_linear_tuning(counts, session.velocity)
        rotated = rotation_matrix(draw.rotation) @ weights
        counts = np.maximum(counts + session.velocity @ (rotated - weights), 0.0)

    mean = counts.mean(axis=0)
    counts = np.maximum(counts * draw.gain + draw.baseline * mean, 0.0)
    counts = counts[:, draw.permutation]
    counts[:, draw.dropped] = 0.0

    channel_ids = list(session.channel_ids)
    if drift.drop_mode == "remove":
        kept = np.flatnonzero(~draw.dropped)
        counts = counts[:, kept]
        channel_ids = [channel_ids[i] for i in kept]
    metadata = {
        **session.metadata,
        "kind": "drifted",
        "drifted_from": session.metadata.get("session_id"),
        "session_id": f"{session.metadata.get('session_id')}-drifted-{seed}",
        "drift_config": asdict(drift),
        "drift": draw.summary(session.channel_ids),
        "drift_seed": seed,
    }
    return replace(session, counts=counts, channel_ids=channel_ids, metadata=metadata)
