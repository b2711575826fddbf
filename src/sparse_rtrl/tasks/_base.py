"""Data streams with a regime switch, and the error-density wrapper."""

from __future__ import annotations

import abc
from dataclasses import dataclass, replace
from typing import ClassVar

import torch

from .._validation import check_choice, check_int_range

REGIMES = ("A", "B")
ERROR_DENSITIES = ("every", "periodic", "terminal")


@dataclass
class Stream:
    """One stream of a task.

    Attributes:
      inputs: (T, m) input ``x_t`` at each step.
      targets: (T, d) target ``y_t`` at each step.
      error_mask: (T,) bool, True where the error ``L_t`` is delivered to the learner.
      segment_start: (T,) bool, True at the first step of each segment (trial).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    error_mask: torch.Tensor
    segment_start: torch.Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def to(self, dtype: torch.dtype, device: torch.device | str = "cpu") -> Stream:
        return Stream(
            self.inputs.to(device=device, dtype=dtype),
            self.targets.to(device=device, dtype=dtype),
            self.error_mask.to(device),
            self.segment_start.to(device),
        )


class Task(abc.ABC):
    """A data stream generator with two regimes, ``A`` (pretraining) and ``B``.

    Subclasses set ``name``, ``input_size`` and ``output_size`` and implement
    ``_sample``. Every stream is a deterministic function of the generator's seed.
    """

    name: ClassVar[str]
    input_size: int
    output_size: int

    def sample(self, regime: str, steps: int, generator: torch.Generator) -> Stream:
        """Draw ``steps`` steps of regime ``regime`` ("A" or "B") in float64."""
        check_choice("regime", regime, REGIMES)
        check_int_range("steps", steps, 1, 10**9)
        stream = self._sample(regime, steps, generator)
        return stream

    def sample_batch(
        self, regime: str, steps: int, batch: int, generator: torch.Generator
    ) -> list[Stream]:
        """Draw ``batch`` independent streams; subclasses may batch the work."""
        return [self.sample(regime, steps, generator) for _ in range(batch)]

    @abc.abstractmethod
    def _sample(self, regime: str, steps: int, generator: torch.Generator) -> Stream:
        """Draw a stream; the error mask marks every step."""


def segment_starts(steps: int, low: int, high: int, generator: torch.Generator):
    """Return a (steps,) bool mask of segment starts, lengths drawn in [low, high]."""
    starts = torch.zeros(steps, dtype=torch.bool)
    t = 0
    while t < steps:
        starts[t] = True
        t += int(torch.randint(low, high + 1, (1,), generator=generator))
    return starts


def apply_error_density(stream: Stream, density: str, period: int = 10) -> Stream:
    """Thin out the error signal of ``stream``.

    Args:
      stream: the stream to thin; it is not modified.
      density: ``every`` (an error at every step), ``periodic`` (every ``period``
        steps) or ``terminal`` (only at the last step of each segment).
      period: spacing of the errors for ``periodic``, in steps.
    """
    check_choice("error density", density, ERROR_DENSITIES)
    steps = len(stream)
    if density == "every":
        mask = stream.error_mask.clone()
    elif density == "periodic":
        check_int_range("period", period, 1, steps)
        mask = torch.zeros(steps, dtype=torch.bool)
        mask[period - 1 :: period] = True
        mask &= stream.error_mask
    else:
        # The last step of a segment is the step before the next segment starts.
        mask = torch.zeros(steps, dtype=torch.bool)
        mask[:-1] = stream.segment_start[1:]
        mask[-1] = True
        mask &= stream.error_mask
    return replace(stream, error_mask=mask)
