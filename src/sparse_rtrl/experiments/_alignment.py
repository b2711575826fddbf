"""Gradient alignment: how close a learner's cell gradient is to exact RTRL's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._validation import check_shape
from ..learners import ExactRTRL, Learner


@dataclass
class AlignmentResult:
    """Per-step comparison of a learner's cell gradient with exact RTRL's.

    Steps without a comparison hold NaN: steps with no target or ``learn`` off,
    learners without a cell gradient (``frozen``, ``readout``), a cosine where
    either gradient is zero, and a norm ratio where the exact gradient is zero.

    Attributes:
      cosine: (T,) cosine between the learner's and the exact cell gradient.
      norm_ratio: (T,) ``‖g_learner‖ / ‖g_exact‖``.
      learner_norm: (T,) ``‖g_learner‖``.
      exact_norm: (T,) ``‖g_exact‖``.
    """

    cosine: np.ndarray
    norm_ratio: np.ndarray
    learner_norm: np.ndarray
    exact_norm: np.ndarray

    @property
    def mean_cosine(self) -> float:
        """Mean of the finite cosines; NaN when there are none."""
        return _finite_stat(self.cosine, np.mean)

    @property
    def median_norm_ratio(self) -> float:
        """Median of the finite norm ratios; NaN when there are none."""
        return _finite_stat(self.norm_ratio, np.median)

    def summary(self) -> dict[str, Any]:
        """Return the mean cosine, median norm ratio and step counts as a dict."""
        return {
            "mean_cosine": self.mean_cosine,
            "median_norm_ratio": self.median_norm_ratio,
            "valid_steps": int(np.isfinite(self.cosine).sum()),
            "steps": int(self.cosine.size),
        }


def _finite_stat(values: np.ndarray, stat) -> float:
    # numpy's nanmean warns on an all-NaN input, and warnings are errors in tests.
    finite = values[np.isfinite(values)]
    return float(stat(finite)) if finite.size else math.nan


def gradient_alignment(
    learner: Learner,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    error_mask: torch.Tensor | None = None,
) -> AlignmentResult:
    """Run ``learner`` along a stream beside an exact RTRL shadow and compare.

    The shadow is an ``ExactRTRL`` on the same model with ``shadow = True``, so it
    never writes ``.grad`` or steps an optimizer. Both restart from the learner's
    current hidden state with zero traces. At every step the shadow steps first, so
    both see the parameters before the learner's optimizer (if any) updates them.
    The learner then steps and learns as usual, so the parameters follow the
    learner's own trajectory.

    Args:
      learner: any learner; its optimizer, if any, keeps training the model.
      inputs: (T, m) input stream.
      targets: (T, d) target stream.
      error_mask: (T,) bool, where the error reaches the parameters; every step when
        omitted. Masked steps advance both learners without comparing.

    Returns:
      The per-step cosine and norm ratio (NaN where undefined, see
      ``AlignmentResult``).
    """
    steps = inputs.shape[0]
    check_shape("inputs", inputs, (steps, learner.cell.input_size))
    check_shape("targets", targets, (steps, learner.model.output_size))
    if error_mask is None:
        error_mask = torch.ones(steps, dtype=torch.bool)
    check_shape("error_mask", error_mask, (steps,))

    shadow = ExactRTRL(learner.model, loss_fn=learner.loss_fn)
    shadow.shadow = True
    start = learner.state.hidden.clone()
    learner.reset(start)
    shadow.reset(start)

    cosine = np.full(steps, math.nan)
    ratio = np.full(steps, math.nan)
    learner_norm = np.full(steps, math.nan)
    exact_norm = np.full(steps, math.nan)
    for t in range(steps):
        learn = bool(error_mask[t])
        shadow.last_cell_gradient = None
        learner.last_cell_gradient = None
        shadow.step(inputs[t], targets[t], learn=learn)
        learner.step(inputs[t], targets[t], learn=learn)
        exact = shadow.last_cell_gradient
        estimate = learner.last_cell_gradient
        if exact is None or estimate is None:
            continue
        exact = exact.double()
        estimate = estimate.double()
        norm_exact = torch.linalg.vector_norm(exact).item()
        norm_estimate = torch.linalg.vector_norm(estimate).item()
        learner_norm[t] = norm_estimate
        exact_norm[t] = norm_exact
        if norm_exact > 0:
            ratio[t] = norm_estimate / norm_exact
        if norm_exact > 0 and norm_estimate > 0:
            dot = torch.dot(exact, estimate).item()
            cosine[t] = dot / (norm_exact * norm_estimate)
    return AlignmentResult(cosine, ratio, learner_norm, exact_norm)
