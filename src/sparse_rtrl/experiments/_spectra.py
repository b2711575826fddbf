"""Spectra of the Jacobian and the influence matrix along an adaptation run, and the
alignment of sparse gradients with exact ones."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._validation import NonFiniteError, check_int_range, resolve_dtype
from ..tasks import apply_error_density, make_task
from ._adaptation import AdaptationConfig, pretrained_model
from ._learner_specs import LearnerSpec, build_learner
from ._metrics import condition_number, mean_std


@dataclass
class SpectraConfig:
    """One spectra run: exact RTRL adapts; shadow learners follow without updating.

    Attributes:
      adaptation: task, network, pretraining, optimizer and step counts; its
        ``learners`` are ignored, the adapting learner is always exact RTRL.
      shadows: learner specs that compute a gradient on the same trajectory as
        shadows (``learner.shadow = True``), for the cosine to exact RTRL.
      sample_every: steps between two spectrum samples.
    """

    adaptation: AdaptationConfig
    shadows: tuple[str, ...] = ("sparse:k=0", "sparse:k=4")
    sample_every: int = 20

    def validate(self) -> None:
        self.adaptation.validate()
        check_int_range("sample_every", self.sample_every, 1, 10**9)
        for text in self.shadows:
            LearnerSpec.parse(text)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Return ``a·b / (|a| |b|)``; NaN when either vector is zero."""
    norms = float(torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b))
    if norms == 0:
        return math.nan
    return float(torch.dot(a.flatten(), b.flatten())) / norms


def singular_values(matrix: torch.Tensor) -> list[float]:
    """Return the singular values of ``matrix`` (rows, columns) in float64, largest
    first."""
    return torch.linalg.svdvals(matrix.detach().to(torch.float64)).tolist()


def run_spectra(
    config: SpectraConfig,
    seed: int,
    cache_dir: str | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Adapt with exact RTRL after the switch and record spectra and cosines.

    Uses the pretrained model and the streams of ``run_seed`` for the same
    adaptation settings and seed. At every ``sample_every``-th adaptation step,
    records the singular values and condition number of ``J_t`` (S, S) at the
    current state and input, and of the influence matrices ``M_t`` (S, P) of exact
    RTRL and of each shadow. Each shadow steps before exact RTRL, so both see the
    parameters of the previous step. For each shadow, the cosine between its cell
    gradient and exact RTRL's is averaged over the learning steps since the
    previous sample.

    Returns:
      One record with ``status`` ``ok`` (or ``failed`` with ``error`` after a
      NaN or Inf), ``steps`` (the sampled adaptation steps), ``jacobian_sv`` and
      ``jacobian_condition``, ``influence_condition`` (learner -> list) and
      ``cosine`` (shadow -> list).
    """
    config.validate()
    adaptation = config.adaptation
    task = make_task(adaptation.task, **adaptation.task_options)
    dtype = resolve_dtype(adaptation.dtype)
    cache = Path(cache_dir) / "pretrained" if cache_dir else None
    if cache is not None:
        from ._claims import ensure_pretrained

        ensure_pretrained(adaptation, seed, Path(cache_dir))
    model = pretrained_model(adaptation, task, seed, cache)

    data = torch.Generator().manual_seed(20_000 + seed)
    warmup = task.sample("A", max(adaptation.warmup_steps, 1), data)
    adapt = task.sample("B", adaptation.adapt_steps, data)
    adapt = apply_error_density(
        adapt, adaptation.error_density, adaptation.error_period
    )
    warmup = warmup.to(dtype, adaptation.device)
    adapt = adapt.to(dtype, adaptation.device)

    model = copy.deepcopy(model)
    defaults = adaptation.learner_defaults()
    generator = torch.Generator().manual_seed(30_000 + seed)
    exact = build_learner(
        LearnerSpec.parse("exact"),
        model,
        adaptation.optimizer,
        adaptation.lr,
        defaults,
        generator,
    )
    shadows = {}
    for text in config.shadows:
        spec = LearnerSpec.parse(text)
        shadow = build_learner(
            spec, model, adaptation.optimizer, adaptation.lr, defaults, generator
        )
        # A shadow computes its gradient but never steps its optimizer.
        shadow.shadow = True
        shadows[spec.label] = shadow
    learners = [*shadows.values(), exact]

    record: dict[str, Any] = {
        "learner": "exact",
        "seed": seed,
        "steps": [],
        "jacobian_sv": [],
        "jacobian_condition": [],
        "influence_condition": {label: [] for label in ["exact", *shadows]},
        "cosine": {label: [] for label in shadows},
    }
    window = {label: [] for label in shadows}
    step = -1
    try:
        for step in range(adaptation.warmup_steps):
            for learner in learners:
                learner.step(warmup.inputs[step], warmup.targets[step], learn=False)
        for t in range(len(adapt)):
            step = adaptation.warmup_steps + t
            x, y = adapt.inputs[t], adapt.targets[t]
            learn = bool(adapt.error_mask[t])
            previous = exact.state.hidden.clone()
            for learner in learners:
                learner.step(x, y, learn=learn)
            if learn:
                reference = exact.last_cell_gradient
                for label, shadow in shadows.items():
                    window[label].append(cosine(shadow.last_cell_gradient, reference))
            if (t + 1) % config.sample_every == 0:
                _sample(record, t, model, previous, x, exact, shadows, window)
        record["status"] = "ok"
    except NonFiniteError as error:
        record["status"] = "failed"
        record["error"] = f"spectra, seed {seed}, step {step}: {error}"
    return [record]


def _sample(record, t, model, previous, x, exact, shadows, window) -> None:
    with torch.no_grad():
        _, jacobian, _ = model.cell.step_with_jacobians(previous, x)
    values = singular_values(jacobian)
    record["steps"].append(t)
    record["jacobian_sv"].append(values)
    record["jacobian_condition"].append(condition_number(values))
    conditions = record["influence_condition"]
    conditions["exact"].append(condition_number(singular_values(exact.influence)))
    for label, shadow in shadows.items():
        conditions[label].append(condition_number(singular_values(shadow.influence)))
        finite = [c for c in window[label] if math.isfinite(c)]
        record["cosine"][label].append(float(np.mean(finite)) if finite else math.nan)
        window[label].clear()


def summarize_spectra(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Summarise spectra units across seeds.

    Returns ``jacobian_condition``: mean, std and count over seeds of the per-seed
    median of cond(J_t), and the min and max over every sample; ``influence``:
    learner -> the same for cond(M_t); ``cosine``: shadow -> mean, std, count over
    seeds of the per-seed mean cosine; ``failures``; and per-sample series for the
    figures (``series``: seed -> steps, condition numbers, mean singular values
    of J_t, cosines).
    """
    records = [
        record
        for units in results.values()
        for unit in units
        if unit["status"] == "ok"
        for record in unit["records"]
        if record.get("status") == "ok" and record.get("steps")
    ]
    failures = [
        {"seed": unit["seed"], "error": unit["error"]}
        for units in results.values()
        for unit in units
        if unit["status"] != "ok"
    ] + [
        {"seed": record["seed"], "error": record.get("error")}
        for units in results.values()
        for unit in units
        for record in unit["records"]
        if record.get("status") != "ok"
    ]

    def across_seeds(per_seed: list[float], samples: list[float]) -> dict[str, Any]:
        mean, std, count = mean_std(per_seed)
        finite = [s for s in samples if math.isfinite(s)]
        return {
            "mean": mean,
            "std": std,
            "count": count,
            "min": min(finite) if finite else math.nan,
            "max": max(finite) if finite else math.nan,
            "per_seed": per_seed,
        }

    jacobian = across_seeds(
        [float(np.median(r["jacobian_condition"])) for r in records],
        [c for r in records for c in r["jacobian_condition"]],
    )
    labels = sorted({label for r in records for label in r["influence_condition"]})
    influence = {
        label: across_seeds(
            [
                float(np.median(r["influence_condition"][label]))
                for r in records
                if r["influence_condition"].get(label)
            ],
            [c for r in records for c in r["influence_condition"].get(label, [])],
        )
        for label in labels
    }
    shadow_labels = sorted({label for r in records for label in r["cosine"]})
    cosines = {}
    for label in shadow_labels:
        per_seed = [
            float(np.nanmean(r["cosine"][label]))
            for r in records
            if r["cosine"].get(label) and np.isfinite(r["cosine"][label]).any()
        ]
        mean, std, count = mean_std(per_seed)
        cosines[label] = {"mean": mean, "std": std, "count": count}
    series = {
        str(r["seed"]): {
            "steps": r["steps"],
            "jacobian_condition": r["jacobian_condition"],
            "influence_condition": r["influence_condition"],
            "jacobian_sv_mean": np.mean(r["jacobian_sv"], axis=0).tolist(),
            "cosine": r["cosine"],
        }
        for r in records
    }
    return {
        "jacobian_condition": jacobian,
        "influence": influence,
        "cosine": cosines,
        "failures": failures,
        "series": series,
    }
