"""The adding problem as an online stream: one error at the end of each segment."""

from __future__ import annotations

import torch

from .._validation import check_choice, check_int_range
from ._base import REGIMES, Stream, Task


class AddingTask(Task):
    """Report a weighted sum of two marked values at the end of each segment.

    The stream is cut into segments of ``segment_length`` steps. Input 0 is a value
    ``u_t ~ U(0, 1)`` at every step. Input 1 marks two steps of the segment, one in
    its first half and one in its second half before the last step. Input 2 is 1 at
    the last step of the segment, where the target is due. The target at that
    last step is ``a u₁ + b u₂`` for the marked values ``u₁`` (earlier) and ``u₂``,
    with ``(a, b) = (1, 1)`` in regime A (the standard adding problem) and
    ``(1, second_weight_b)`` in regime B. The error mask is
    True only at the last step of each complete segment, so the learner gets no
    error in between, and a final incomplete segment gets none. Targets elsewhere
    are zero.

    Regime B keeps the inputs and changes what must be computed from them: with
    ``b = −1`` a network that only stored the running sum cannot produce it, so the
    recurrent weights, not only the readout, must change.

    Args:
      segment_length: steps per segment, at least 4.
      second_weight_b: ``b`` in regime B.
    """

    name = "adding"
    input_size = 3
    output_size = 1

    def __init__(self, segment_length: int = 20, second_weight_b: float = -1.0):
        check_int_range("segment_length", segment_length, 4, 10**6)
        self.segment_length = segment_length
        self.weights = {"A": (1.0, 1.0), "B": (1.0, float(second_weight_b))}

    def _sample(self, regime, steps, generator):
        return self.sample_batch(regime, steps, 1, generator)[0]

    def sample_batch(self, regime, steps, batch, generator):
        """Draw ``batch`` streams; all segments are drawn in one call per quantity."""
        check_choice("regime", regime, REGIMES)
        check_int_range("steps", steps, 1, 10**9)
        check_int_range("batch", batch, 1, 10**6)
        length = self.segment_length
        segments = -(-steps // length)  # ceil
        half = length // 2
        values = torch.rand(
            batch, segments, length, generator=generator, dtype=torch.float64
        )
        first = torch.randint(0, half, (batch, segments, 1), generator=generator)
        second = torch.randint(
            half, length - 1, (batch, segments, 1), generator=generator
        )

        markers = torch.zeros(batch, segments, length, dtype=torch.float64)
        markers.scatter_(2, first, 1.0)
        markers.scatter_(2, second, 1.0)
        query = torch.zeros(batch, segments, length, dtype=torch.float64)
        query[:, :, -1] = 1.0
        weight_first, weight_second = self.weights[regime]
        total = weight_first * values.gather(2, first)
        total = total + weight_second * values.gather(2, second)
        targets = torch.zeros(batch, segments, length, dtype=torch.float64)
        targets[:, :, -1:] = total

        inputs = torch.stack([values, markers, query], dim=-1)  # (B, segs, L, 3)
        inputs = inputs.reshape(batch, segments * length, 3)[:, :steps]
        targets = targets.reshape(batch, segments * length, 1)[:, :steps]
        position = torch.arange(steps) % length
        mask = position == length - 1  # (T,)
        starts = position == 0
        return [
            Stream(inputs[i].clone(), targets[i].clone(), mask.clone(), starts.clone())
            for i in range(batch)
        ]
