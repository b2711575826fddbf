"""Teacher RNN task: follow a random tanh RNN whose recurrent weights change at the
switch."""

from __future__ import annotations

import math

import torch

from .._validation import check_int_range, check_non_negative, check_positive
from ._base import Stream, Task, segment_starts


class TeacherTask(Task):
    """Predict the output of a random teacher RNN driven by the same input.

    The teacher is ``z_t = tanh(W z_{t-1} + U x_t)``, ``y_t = C z_t``, with input
    ``x_t`` low-pass filtered Gaussian noise. The teacher's weights are drawn from
    ``teacher_seed`` (not from the stream's generator), so every stream of one task
    follows the same teacher. In regime B the recurrent weights become
    ``W_B = ((1 - α) W + α W') · ρ_B / ρ((1 - α) W + α W')`` with a fresh ``W'``, so the
    memory the task needs changes while the input and output maps stay. The target
    depends on inputs many steps back, so the student must change its recurrent
    weights, not only its readout, to follow the switch.

    Args:
      input_size: m, input channels.
      output_size: d, output channels.
      teacher_size: units of the teacher.
      spectral_radius: ρ of the teacher's recurrent weights in both regimes.
      spectral_radius_b: ρ in regime B; a larger value than ``spectral_radius``
        makes regime B need a longer memory. None means ``spectral_radius``.
      input_gain: scale of the teacher's input weights; a small gain keeps the
        teacher near its linear regime, where memory lasts longer.
      switch_mix: α, the share of fresh recurrent weights after the switch.
      input_smoothing: time constant of the input filter, in steps (0 for white).
      segment_length: steps per segment, for the error-density options.
      teacher_seed: seed of the teacher's weights.
    """

    name = "teacher"

    def __init__(
        self,
        input_size: int = 3,
        output_size: int = 2,
        teacher_size: int = 32,
        spectral_radius: float = 0.5,
        spectral_radius_b: float | None = 0.97,
        input_gain: float = 0.3,
        switch_mix: float = 0.5,
        input_smoothing: float = 2.0,
        segment_length: int = 100,
        teacher_seed: int = 0,
    ):
        check_int_range("input_size", input_size, 1, 10**4)
        check_int_range("output_size", output_size, 1, 10**4)
        check_int_range("teacher_size", teacher_size, 1, 10**4)
        check_positive("spectral_radius", spectral_radius)
        check_non_negative("switch_mix", switch_mix)
        if switch_mix > 1:
            raise ValueError(
                f"switch_mix must be in [0, 1]; got switch_mix={switch_mix}"
            )
        check_non_negative("input_smoothing", input_smoothing)
        check_int_range("segment_length", segment_length, 1, 10**9)
        self.input_size = input_size
        self.output_size = output_size
        self.teacher_size = teacher_size
        self.input_smoothing = input_smoothing
        self.segment_length = segment_length
        g = torch.Generator().manual_seed(teacher_seed)
        n = teacher_size

        def recurrent():
            w = torch.randn(n, n, generator=g, dtype=torch.float64) / math.sqrt(n)
            return w * spectral_radius / torch.linalg.eigvals(w).abs().max()

        w_a = recurrent()
        w_b = (1 - switch_mix) * w_a + switch_mix * recurrent()
        radius_b = spectral_radius if spectral_radius_b is None else spectral_radius_b
        check_positive("spectral_radius_b", radius_b)
        w_b = w_b * radius_b / torch.linalg.eigvals(w_b).abs().max()
        self.recurrent = {"A": w_a, "B": w_b}
        self.input_weights = input_gain * torch.randn(
            n, input_size, generator=g, dtype=torch.float64
        )
        readout = torch.randn(output_size, n, generator=g, dtype=torch.float64)
        self.readout = readout / math.sqrt(n)

    def _sample(self, regime, steps, generator):
        return self.sample_batch(regime, steps, 1, generator)[0]

    def sample_batch(self, regime, steps, batch, generator):
        """Draw ``batch`` streams at once; the teacher runs batched."""
        check_int_range("steps", steps, 1, 10**9)
        check_int_range("batch", batch, 1, 10**6)
        noise = torch.randn(
            steps, batch, self.input_size, generator=generator, dtype=torch.float64
        )
        keep = (
            math.exp(-1.0 / self.input_smoothing) if self.input_smoothing > 0 else 0.0
        )
        # The gain keeps the filtered input at unit variance.
        gain = math.sqrt(1 - keep**2)
        inputs = torch.empty_like(noise)
        inputs[0] = noise[0]
        for t in range(1, steps):
            inputs[t] = keep * inputs[t - 1] + gain * noise[t]
        drive = inputs @ self.input_weights.T  # (T, B, n)
        w = self.recurrent[regime]
        z = torch.zeros(batch, self.teacher_size, dtype=torch.float64)
        states = torch.empty(steps, batch, self.teacher_size, dtype=torch.float64)
        for t in range(steps):
            z = torch.tanh(z @ w.T + drive[t])
            states[t] = z
        targets = states @ self.readout.T  # (T, B, d)
        streams = []
        for b in range(batch):
            starts = segment_starts(
                steps, self.segment_length, self.segment_length, generator
            )
            mask = torch.ones(steps, dtype=torch.bool)
            streams.append(Stream(inputs[:, b], targets[:, b], mask, starts))
        return streams
