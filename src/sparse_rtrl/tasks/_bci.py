"""Velocity decoding from binned spike counts across a drifting pair of sessions."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from .._validation import check_int_range
from ..data import (
    DriftConfig,
    Session,
    align_channels,
    apply_drift,
    load_demo_pair,
    load_nwb,
    make_synthetic_pair,
)
from ._base import Stream, Task


class BCITask(Task):
    """Decode 2-D hand velocity from spike counts; regime B is a later session.

    Regime A streams session A (pretraining) and regime B streams session B (the
    drifted or next-day recording), both from bin 0 unless ``random_start``. Both
    sessions must have the same channels in the same order (``from_sessions``
    aligns them).

    Inputs are z-scored counts ``(counts - mean_A) / std_A`` per channel, with the
    mean and standard deviation of session A applied unchanged to session B, so a
    gain or baseline change in B shows as a shifted input. A channel silent in A
    keeps ``std_A = 1``. Targets are ``velocity / std_A`` per axis, with no mean
    subtracted. A stream longer than its session wraps around to bin 0.

    Args:
      session_a: the pretraining session.
      session_b: the new session, with the channel ids of ``session_a``.
      segment_length: segment length in bins, used where a session has no trial
        times.
      random_start: start each stream at a bin drawn from the generator instead
        of bin 0.

    Attributes:
      count_mean: (C,) mean count per channel in session A.
      count_std: (C,) standard deviation per channel in session A.
      velocity_std: (2,) standard deviation of each velocity axis in session A.
    """

    name = "bci"
    output_size = 2

    def __init__(
        self,
        session_a: Session,
        session_b: Session,
        segment_length: int = 50,
        random_start: bool = False,
    ):
        if session_a.channel_ids != session_b.channel_ids:
            raise ValueError(
                "session_a and session_b must have the same channel_ids in the same "
                f"order; got {session_a.n_channels} and {session_b.n_channels} "
                "channels; build the task with BCITask.from_sessions to align them"
            )
        check_int_range("segment_length", segment_length, 1, 10**9)
        self.sessions = {"A": session_a, "B": session_b}
        self.input_size = session_a.n_channels
        self.segment_length = segment_length
        self.random_start = bool(random_start)

        self.count_mean = session_a.counts.mean(axis=0)
        std = session_a.counts.std(axis=0)
        self.count_std = np.where(std > 0, std, 1.0)
        self.velocity_std = session_a.velocity.std(axis=0)
        if (self.velocity_std == 0).any():
            raise ValueError(
                "session A velocity must vary on both axes; got standard deviation "
                f"{self.velocity_std.tolist()}"
            )
        self._inputs, self._targets, self._starts = {}, {}, {}
        for regime, session in self.sessions.items():
            inputs = (session.counts - self.count_mean) / self.count_std
            self._inputs[regime] = torch.from_numpy(inputs)
            self._targets[regime] = torch.from_numpy(
                session.velocity / self.velocity_std
            )
            self._starts[regime] = torch.from_numpy(self._segment_starts(session))

    def _segment_starts(self, session: Session) -> np.ndarray:
        starts = np.zeros(len(session), dtype=bool)
        if session.trial_starts is not None and session.trial_starts.size:
            starts[session.trial_starts] = True
        else:
            starts[:: self.segment_length] = True
        starts[0] = True
        return starts

    def _sample(self, regime, steps, generator):
        length = len(self.sessions[regime])
        start = 0
        if self.random_start:
            start = int(torch.randint(length, (1,), generator=generator))
        index = (start + torch.arange(steps)) % length
        starts = self._starts[regime][index].clone()
        # A wrap jumps back to bin 0, so the stream starts a new segment there.
        starts |= index == 0
        starts[0] = True
        mask = torch.ones(steps, dtype=torch.bool)
        return Stream(
            self._inputs[regime][index].clone(),
            self._targets[regime][index].clone(),
            mask,
            starts,
        )

    @classmethod
    def from_sessions(
        cls, session_a: Session, session_b: Session, by_index: bool = False, **options
    ) -> BCITask:
        """Align two sessions by channel id (or by position) and build the task.

        ``options`` go to ``BCITask``.
        """
        session_a, session_b = align_channels(session_a, session_b, by_index=by_index)
        return cls(session_a, session_b, **options)

    @classmethod
    def synthetic(
        cls,
        seed: int,
        drift: DriftConfig | None = None,
        n_channels: int = 64,
        duration_s: float = 120.0,
        bin_width: float = 0.02,
        speed_tuning: float = 0.0,
        **options,
    ) -> BCITask:
        """Build the task from a synthetic pair written to NWB and read back.

        The files go to a temporary folder that is deleted afterwards; see
        ``sparse_rtrl.data.make_synthetic_pair`` for the model and arguments.
        """
        with tempfile.TemporaryDirectory(prefix="sparse-rtrl-bci-") as folder:
            path_a, path_b = make_synthetic_pair(
                folder,
                seed,
                drift=drift,
                n_channels=n_channels,
                duration_s=duration_s,
                bin_width=bin_width,
                speed_tuning=speed_tuning,
            )
            session_a = load_nwb(path_a, bin_width=bin_width)
            session_b = load_nwb(path_b, bin_width=bin_width)
        return cls.from_sessions(session_a, session_b, **options)

    @classmethod
    def from_demo(
        cls,
        path: str | Path | None = None,
        name: str = "chewie",
        drift: DriftConfig | None = None,
        bin_width: float = 0.2,
        seed: int = 0,
        **options,
    ) -> BCITask:
        """Build the task from a DAD demo recording (see ``load_demo_pair``).

        Without ``drift``, session B is the recording's second part (``te``), paired
        with part A by column. That needs both parts to record the same units, as
        the Chewie parts do and the Mihi parts do not. With ``drift``, session B is
        part A's counts changed by ``apply_drift(part_a, drift, seed)``.
        """
        part_a, part_b = load_demo_pair(path, name=name, bin_width=bin_width)
        if drift is None:
            if part_a.n_channels != part_b.n_channels:
                raise ValueError(
                    f"the two parts of {name!r} have {part_a.n_channels} and "
                    f"{part_b.n_channels} units, so they cannot be paired; pass "
                    "drift=DriftConfig(...) to derive session B from part A"
                )
            return cls.from_sessions(part_a, part_b, by_index=True, **options)
        session_b = apply_drift(part_a, drift, seed)
        # Session B is derived from part A, so equal ids are the same channel.
        column = {channel: i for i, channel in enumerate(part_a.channel_ids)}
        session_a = part_a.select_channels(
            [column[channel] for channel in session_b.channel_ids]
        )
        return cls(session_a, session_b, **options)
