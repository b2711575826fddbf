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
from ._bci import BCIConfig, format_bci_table, r_squared, run_bci
from ._learner_specs import LearnerSpec, build_learner, make_optimizer
from ._metrics import coefficient_of_variation, condition_number, mean_std, recovery
from ._store import CorruptResultError, ResultStore, config_key

__all__ = [
    "DEFAULT_LEARNERS",
    "AdaptationConfig",
    "BCIConfig",
    "CorruptResultError",
    "LearnerSpec",
    "ResultStore",
    "build_learner",
    "coefficient_of_variation",
    "condition_number",
    "config_key",
    "format_bci_table",
    "format_table",
    "make_optimizer",
    "mean_std",
    "r_squared",
    "recovery",
    "run_bci",
    "run_adaptation",
    "run_seed",
    "run_seeds",
    "summarize",
    "write_outputs",
]
