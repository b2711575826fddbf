"""Cued sine generation: the network produces a sine wave whose frequency is set by
a cue, and regime B changes the cue-to-frequency map."""

from __future__ import annotations

import math

import torch

from .._validation import check_int_range, check_positive
from ._base import Stream, Task, segment_starts


class SineTask(Task):
    """Generate ``sin(2π f (t - t0))`` from a frequency cue and a start pulse.

    Each segment starts with a pulse on input 1 at step ``t0``; input 0 carries a cue
    ``c ~ U(0, 1)`` for the whole segment. The target frequency is
    ``f = scale · (f_low + c (f_high - f_low))`` cycles per step, with ``scale = 1``
    in regime A and ``freq_scale_b`` in regime B. Producing a new frequency needs new
    recurrent dynamics, so a readout alone cannot adapt to the switch.

    Args:
      f_low: lowest frequency of regime A, in cycles per step.
      f_high: highest frequency of regime A, in cycles per step.
      freq_scale_b: factor applied to every frequency in regime B.
      segment_min: shortest segment, in steps.
      segment_max: longest segment, in steps.
    """

    name = "sine"
    input_size = 2
    output_size = 1

    def __init__(
        self,
        f_low: float = 0.02,
        f_high: float = 0.05,
        freq_scale_b: float = 1.5,
        segment_min: int = 60,
        segment_max: int = 140,
    ):
        check_positive("f_low", f_low)
        check_positive("f_high", f_high)
        check_positive("freq_scale_b", freq_scale_b)
        if f_high < f_low:
            raise ValueError(
                f"f_high must be >= f_low; got f_low={f_low}, f_high={f_high}"
            )
        check_int_range("segment_min", segment_min, 2, 10**6)
        check_int_range("segment_max", segment_max, segment_min, 10**6)
        self.f_low = f_low
        self.f_high = f_high
        self.freq_scale_b = freq_scale_b
        self.segment_min = segment_min
        self.segment_max = segment_max

    def _sample(self, regime, steps, generator):
        starts = segment_starts(steps, self.segment_min, self.segment_max, generator)
        scale = 1.0 if regime == "A" else self.freq_scale_b
        inputs = torch.zeros(steps, 2, dtype=torch.float64)
        targets = torch.zeros(steps, 1, dtype=torch.float64)
        start_steps = torch.nonzero(starts).flatten().tolist() + [steps]
        for t0, t1 in zip(start_steps[:-1], start_steps[1:]):
            cue = float(torch.rand((), generator=generator, dtype=torch.float64))
            freq = scale * (self.f_low + cue * (self.f_high - self.f_low))
            phase = torch.arange(t1 - t0, dtype=torch.float64)
            inputs[t0:t1, 0] = cue
            inputs[t0, 1] = 1.0
            targets[t0:t1, 0] = torch.sin(2 * math.pi * freq * phase)
        mask = torch.ones(steps, dtype=torch.bool)
        return Stream(inputs, targets, mask, starts)
