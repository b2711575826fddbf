"""Delayed recall: reproduce the input of D steps ago; regime B changes D."""

from __future__ import annotations

import torch

from .._validation import check_choice, check_int_range
from ._base import REGIMES, Stream, Task, segment_starts


class DelayTask(Task):
    """Output the input of ``D`` steps ago: ``y_t = x_{t-D}``.

    Inputs are i.i.d. standard normal in every channel, so the target at step ``t``
    carries no information about ``x_t`` and the network must hold ``x_{t-D}`` in its
    state for ``D`` steps. Regime A uses ``D = delay`` and regime B ``D = delay_b``,
    with the same input statistics. The switch changes only how far back the target
    lies, so adapting to it needs credit assigned through the recurrent weights. The
    first ``D`` steps of a stream have no target: their targets are zero and their
    error mask is False.

    Args:
      channels: m = d, input and output channels.
      delay: D in regime A, in steps.
      delay_b: D in regime B, in steps.
      segment_length: steps per segment, for the error-density options.
    """

    name = "delay"

    def __init__(
        self,
        channels: int = 1,
        delay: int = 5,
        delay_b: int = 8,
        segment_length: int = 100,
    ):
        check_int_range("channels", channels, 1, 10**4)
        check_int_range("delay", delay, 1, 10**4)
        check_int_range("delay_b", delay_b, 1, 10**4)
        check_int_range("segment_length", segment_length, 1, 10**9)
        self.input_size = channels
        self.output_size = channels
        self.delays = {"A": delay, "B": delay_b}
        self.segment_length = segment_length

    def _sample(self, regime, steps, generator):
        return self.sample_batch(regime, steps, 1, generator)[0]

    def sample_batch(self, regime, steps, batch, generator):
        """Draw ``batch`` streams with one normal draw for all of them."""
        check_choice("regime", regime, REGIMES)
        check_int_range("steps", steps, 1, 10**9)
        check_int_range("batch", batch, 1, 10**6)
        delay = self.delays[regime]
        inputs = torch.randn(
            steps, batch, self.input_size, generator=generator, dtype=torch.float64
        )
        targets = torch.zeros_like(inputs)
        targets[delay:] = inputs[: max(steps - delay, 0)]
        mask = torch.arange(steps) >= delay  # (T,)
        streams = []
        for b in range(batch):
            starts = segment_starts(
                steps, self.segment_length, self.segment_length, generator
            )
            streams.append(Stream(inputs[:, b], targets[:, b], mask.clone(), starts))
        return streams
