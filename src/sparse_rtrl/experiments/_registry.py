"""The registry of reproduction experiments, their claims and the verdict rules.

An experiment is a set of independent units of work. A unit is one call
``run(config, seed)`` of a module-level function with a picklable config that
returns a list of JSON-serialisable records, so the same unit runs in this process,
in a process pool or on a Ray cluster. The driver stores each unit's records under
``runs/<experiment>/<key>.json`` as soon as the unit finishes, and the report
summarises the stored records into measured figures and judges each claim by its
rule.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ._store import config_key

SCALES = ("tiny", "quick", "default")
CONSISTENT = "consistent"
NOT_REPRODUCED = "not reproduced"
# The seeds disagree too much, or the effect is too small, to decide either way.
INCONCLUSIVE = "inconclusive"
NO_DATA = "no data"
VERDICTS = (CONSISTENT, NOT_REPRODUCED, INCONCLUSIVE, NO_DATA)

# Config fields that set how many seeds run rather than what one seed computes. They
# stay out of a unit's key, so a rerun with more seeds reuses the finished ones.
_SEED_FIELDS = ("seeds", "first_seed")


@dataclass(frozen=True)
class Estimate:
    """One measured number: the mean over seeds and its uncertainty.

    Attributes:
      label: what was measured, such as ``k=0`` or ``exact``.
      mean: mean over seeds (or the statistic itself, for a CV).
      std: standard deviation across seeds, or the bootstrap standard error when
        ``spread`` is ``"se"``.
      count: number of seeds behind ``mean``.
      spread: ``"std"`` or ``"se"``.
    """

    label: str
    mean: float
    std: float
    count: int
    spread: str = "std"

    @property
    def finite(self) -> bool:
        return self.count > 0 and math.isfinite(self.mean)

    def text(self, unit: str = "%", digits: int = 1) -> str:
        if not self.finite:
            return f"{self.label}: n/a" if self.label else "n/a"
        spread = "" if self.spread == "std" else " (SE)"
        std = self.std if math.isfinite(self.std) else math.nan
        body = f"{self.mean:.{digits}f} ± {std:.{digits}f}{unit}{spread}"
        return f"{self.label}: {body}" if self.label else body


@dataclass(frozen=True)
class Measurement:
    """The measured figure of a claim: one or more estimates and a note.

    Attributes:
      estimates: the numbers the verdict rule reads, in the order it expects.
      unit: unit appended to each number in the report ("%" or "").
      note: conditions of the measurement, such as ``n=64, 5 seeds``.
      digits: decimals shown in the report.
    """

    estimates: tuple[Estimate, ...] = ()
    unit: str = "%"
    note: str = ""
    digits: int = 1

    @property
    def has_data(self) -> bool:
        return bool(self.estimates) and all(e.finite for e in self.estimates)

    def text(self) -> str:
        if not self.estimates:
            return "not run"
        body = "; ".join(e.text(self.unit, self.digits) for e in self.estimates)
        return f"{body} ({self.note})" if self.note else body


class VerdictRule(Protocol):
    """A rule that turns a measurement into a verdict and states itself in words."""

    def describe(self) -> str: ...

    def verdict(self, measurement: Measurement) -> str: ...


def _check_count(measurement: Measurement, count: int) -> None:
    if len(measurement.estimates) < count:
        raise ValueError(
            f"the rule needs {count} estimates; got {len(measurement.estimates)}"
        )


def _sigma(estimate: Estimate) -> float:
    return estimate.std if math.isfinite(estimate.std) else 0.0


def _standard_error(estimate: Estimate) -> float:
    """Return the standard error of the mean: σ/√seeds, or σ itself for an SE."""
    if estimate.spread == "se":
        return _sigma(estimate)
    return _sigma(estimate) / math.sqrt(max(estimate.count, 1))


@dataclass(frozen=True)
class Within:
    """Consistent when the published value lies within the measured mean ± tolerance.

    The tolerance is ``max(2σ, margin)``, where σ is the estimate's spread, so a
    measurement from few seeds with a tiny spread is not judged more strictly than
    ``margin`` allows. When ``2σ > max_spread`` (``3 · margin`` unless given) the
    seeds disagree too much to test the value, and the verdict is inconclusive.
    """

    value: float
    margin: float
    max_spread: float | None = None

    @property
    def spread_limit(self) -> float:
        return 3 * self.margin if self.max_spread is None else self.max_spread

    def describe(self) -> str:
        return (
            f"within (margin {self.margin:g}): consistent when the published value "
            f"lies in measured mean ± max(2σ, {self.margin:g}); inconclusive when "
            f"2σ > {self.spread_limit:g}"
        )

    def verdict(self, measurement: Measurement) -> str:
        if not measurement.has_data:
            return NO_DATA
        _check_count(measurement, 1)
        estimate = measurement.estimates[0]
        if 2 * _sigma(estimate) > self.spread_limit:
            return INCONCLUSIVE
        tolerance = max(2 * _sigma(estimate), self.margin)
        inside = abs(self.value - estimate.mean) <= tolerance
        return CONSISTENT if inside else NOT_REPRODUCED


@dataclass(frozen=True)
class InRange:
    """Consistent when the measured mean, ± 2 standard errors, overlaps the range.

    The standard error is σ/√seeds, so the rule tests whether the mean over seeds can
    lie in the published range, not whether single seeds can.
    """

    low: float
    high: float

    def describe(self) -> str:
        return (
            f"range: consistent when measured mean ± 2σ/√seeds overlaps "
            f"[{self.low:g}, {self.high:g}]"
        )

    def verdict(self, measurement: Measurement) -> str:
        if not measurement.has_data:
            return NO_DATA
        _check_count(measurement, 1)
        estimate = measurement.estimates[0]
        half = 2 * _standard_error(estimate)
        overlaps = (
            estimate.mean - half <= self.high and estimate.mean + half >= self.low
        )
        return CONSISTENT if overlaps else NOT_REPRODUCED


@dataclass(frozen=True)
class Step:
    """Consistent when recovery steps from zero at k = 0 to most of it at k = 1.

    Reads two estimates, recovery at k = 0 and at k = 1 (in percent, where exact
    RTRL is 100). Consistent when the k = 0 mean lies within ``max(2σ, margin)`` of
    zero and the k = 1 mean lies above the midpoint ``(R(k=0) + 100) / 2``, that is,
    one path per unit closes more of the gap than all the remaining paths together.
    Inconclusive when 2σ of either exceeds ``3 · margin``.
    """

    margin: float

    def describe(self) -> str:
        return (
            f"step: consistent when R(k=0) lies within max(2σ, {self.margin:g}) of 0 "
            "and R(k=1) lies above (R(k=0) + 100) / 2; inconclusive when 2σ > "
            f"{3 * self.margin:g}"
        )

    def verdict(self, measurement: Measurement) -> str:
        if not measurement.has_data:
            return NO_DATA
        _check_count(measurement, 2)
        zero, one = measurement.estimates[:2]
        if 2 * max(_sigma(zero), _sigma(one)) > 3 * self.margin:
            return INCONCLUSIVE
        near_zero = abs(zero.mean) <= max(2 * _sigma(zero), self.margin)
        jumps = one.mean > (zero.mean + 100.0) / 2
        return CONSISTENT if near_zero and jumps else NOT_REPRODUCED


@dataclass(frozen=True)
class Similar:
    """Consistent when all estimates agree: max − min of the means ≤ tolerance.

    The tolerance is ``max(2σ_max, margin)`` with σ_max the largest spread among
    the estimates. Inconclusive when ``2σ_max > 3 · margin``.
    """

    margin: float

    def describe(self) -> str:
        return (
            "similar: consistent when max − min of the measured means is at most "
            f"max(2σ_max, {self.margin:g}); inconclusive when 2σ_max > "
            f"{3 * self.margin:g}"
        )

    def verdict(self, measurement: Measurement) -> str:
        if not measurement.has_data:
            return NO_DATA
        _check_count(measurement, 2)
        means = [e.mean for e in measurement.estimates]
        largest = max(_sigma(e) for e in measurement.estimates)
        if 2 * largest > 3 * self.margin:
            return INCONCLUSIVE
        spread = max(means) - min(means)
        return CONSISTENT if spread <= max(2 * largest, self.margin) else NOT_REPRODUCED


@dataclass(frozen=True)
class AllIncrease:
    """Consistent when every estimate is an increase of more than 2 standard errors.

    Each estimate is a per-seed change with its across-seed σ. Not reproduced when
    some mean change is zero or negative, and inconclusive when every mean is
    positive but some lies within 2σ/√seeds of zero.
    """

    def describe(self) -> str:
        return (
            "all increase: consistent when every mean change exceeds 2σ/√seeds; not "
            "reproduced when one is ≤ 0; inconclusive otherwise"
        )

    def verdict(self, measurement: Measurement) -> str:
        if not measurement.has_data:
            return NO_DATA
        _check_count(measurement, 1)
        estimates = measurement.estimates
        if any(e.count < 2 for e in estimates):
            return NO_DATA
        if any(e.mean <= 0 for e in estimates):
            return NOT_REPRODUCED
        if all(e.mean > 2 * _standard_error(e) for e in estimates):
            return CONSISTENT
        return INCONCLUSIVE


@dataclass(frozen=True)
class Less:
    """Consistent when the first estimate lies below the second by 2 combined σ.

    Consistent when ``second − first > 2 √(σ₁² + σ₂²)``, not reproduced when
    ``second − first ≤ 0``, and inconclusive in between.
    """

    def describe(self) -> str:
        return (
            "less: consistent when second − first exceeds 2 √(σ₁² + σ₂²); not "
            "reproduced when it is ≤ 0; inconclusive otherwise"
        )

    def verdict(self, measurement: Measurement) -> str:
        if not measurement.has_data:
            return NO_DATA
        _check_count(measurement, 2)
        first, second = measurement.estimates[:2]
        difference = second.mean - first.mean
        if difference <= 0:
            return NOT_REPRODUCED
        combined = math.hypot(_sigma(first), _sigma(second))
        return CONSISTENT if difference > 2 * combined else INCONCLUSIVE


@dataclass(frozen=True)
class Claim:
    """A published claim and how to judge it from an experiment's summary.

    Attributes:
      key: stable id; a claim that tests one part of a published claim uses
        ``published-key/part`` (``lorenz-cv/sparse``).
      text: the claim, as the report's first column shows it.
      published: the published figure, as the report's second column shows it.
      measure: ``measure(summary) -> Measurement`` from the experiment's summary.
      rule: the verdict rule.
    """

    key: str
    text: str
    published: str
    measure: Callable[[dict[str, Any]], Measurement]
    rule: VerdictRule


@dataclass(frozen=True)
class Unit:
    """One unit of work: an experiment's condition run with one seed."""

    experiment: str
    condition: str
    config: Any
    seed: int

    @property
    def key(self) -> str:
        return unit_key(self.experiment, self.config, self.seed)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Return a dataclass or dict config as a plain dict (nested dataclasses too)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(
        f"a unit config must be a dataclass instance or a dict; got {type(config)}"
    )


def unit_key(experiment: str, config: Any, seed: int) -> str:
    """Return the store key of ``(experiment, config, seed)``.

    The key hashes the experiment name, every config field except ``seeds`` and
    ``first_seed``, and the seed, so changed settings give a new key and a rerun
    with more seeds finds the seeds it already ran.
    """
    data = {k: v for k, v in config_to_dict(config).items() if k not in _SEED_FIELDS}
    digest = config_key({"experiment": experiment, "config": data, "seed": seed})
    return f"seed{seed}-{digest}"


def _default_seeds() -> dict[str, int]:
    return {"tiny": 2, "quick": 3, "default": 5}


@dataclass(frozen=True)
class Experiment:
    """A registered reproduction experiment.

    Attributes:
      name: folder name under ``runs/`` and the name ``--only`` takes; lowercase
        letters, digits and hyphens.
      title: heading of the experiment's section in the report.
      description: one paragraph for the report: what runs and what it measures.
      configs: ``configs(scale) -> {condition label: config}`` with scale one of
        ``tiny``, ``quick`` and ``default``. Each config is a picklable dataclass or
        dict.
      run: module-level ``run(config, seed, **options) -> list[dict]``. The driver
        passes ``cache_dir`` (a directory the unit may use for reusable
        intermediate files, or None) and ``progress`` (bool) when ``run`` accepts
        them. Records must be JSON-serialisable. An exception marks the unit failed.
      summarize: ``summarize(results) -> summary`` where ``results`` maps each
        condition label to its stored unit results (dicts with ``seed``,
        ``status``, ``records``, ``error``); the summary must be
        JSON-serialisable.
      claims: the claims this experiment tests.
      figures: optional ``figures(summary, results, out_dir) -> [png paths]``.
      table: optional ``table(summary) -> markdown`` for the report section.
      seeds: seed count per scale; ``--seeds`` overrides it.
      cost: optional relative cost of one unit of a config. The runner starts the
        expensive units first, so a pool does not end waiting on one long unit.
    """

    name: str
    title: str
    description: str
    configs: Callable[[str], dict[str, Any]]
    run: Callable[..., list[dict[str, Any]]]
    summarize: Callable[[dict[str, list[dict[str, Any]]]], dict[str, Any]]
    claims: tuple[Claim, ...] = ()
    figures: Callable[..., list[Path]] | None = None
    table: Callable[[dict[str, Any]], str] | None = None
    seeds: Mapping[str, int] = field(default_factory=_default_seeds)
    cost: Callable[[Any], float] | None = None

    def __post_init__(self):
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.name):
            raise ValueError(
                "experiment name must be lowercase letters, digits and hyphens; "
                f"got name={self.name!r}"
            )
        missing = [scale for scale in SCALES if scale not in self.seeds]
        if missing:
            raise ValueError(
                f"experiment {self.name!r} has no seed count for scales {missing}"
            )

    def seed_count(self, scale: str, override: int | None = None) -> int:
        """Return the number of seeds at ``scale``, or ``override`` when given."""
        return self.seeds[scale] if override is None else override

    def units(self, scale: str, seeds: int | None = None) -> list[Unit]:
        """Return every (condition, seed) unit of this experiment at ``scale``."""
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {list(SCALES)}; got {scale!r}")
        count = self.seed_count(scale, seeds)
        return [
            Unit(self.name, condition, config, seed)
            for condition, config in self.configs(scale).items()
            for seed in range(count)
        ]


EXPERIMENTS: dict[str, Experiment] = {}


def register_experiment(experiment: Experiment) -> Experiment:
    """Add ``experiment`` to ``EXPERIMENTS`` under its name, replacing an old one."""
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def get_experiment(name: str) -> Experiment:
    """Return the registered experiment ``name``, or raise listing the valid names."""
    if name not in EXPERIMENTS:
        raise ValueError(
            f"experiment must be one of {sorted(EXPERIMENTS)}; got {name!r}"
        )
    return EXPERIMENTS[name]
