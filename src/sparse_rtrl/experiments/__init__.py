"""Experiments that test the claims, their metrics and the result store."""

from ._adaptation import (
    DEFAULT_LEARNERS,
    AdaptationConfig,
    format_table,
    run_adaptation,
    run_seed,
    run_seeds,
    summarize,
    write_outputs,
)
from ._learner_specs import LearnerSpec, build_learner, make_optimizer
from ._metrics import coefficient_of_variation, condition_number, mean_std, recovery
from ._store import CorruptResultError, ResultStore, config_key

__all__ = [
    "DEFAULT_LEARNERS",
    "AdaptationConfig",
    "CorruptResultError",
    "LearnerSpec",
    "ResultStore",
    "build_learner",
    "coefficient_of_variation",
    "condition_number",
    "config_key",
    "format_table",
    "make_optimizer",
    "mean_std",
    "recovery",
    "run_adaptation",
    "run_seed",
    "run_seeds",
    "summarize",
    "write_outputs",
]
