"""Online gradient estimators sharing one interface."""

from ._base import Learner, LearnerState, RecurrentModel, mse_loss
from ._bptt import pretrain_bptt
from ._controls import Frozen, ReadoutOnly
from ._rtrl import ExactRTRL, SparseRTRL

LEARNERS: dict[str, type[Learner]] = {}


def register_learner(cls: type[Learner]) -> type[Learner]:
    """Add a learner class to ``LEARNERS`` under its ``name``."""
    LEARNERS[cls.name] = cls
    return cls


for _cls in (Frozen, ReadoutOnly, ExactRTRL, SparseRTRL):
    register_learner(_cls)

__all__ = [
    "LEARNERS",
    "ExactRTRL",
    "Frozen",
    "Learner",
    "LearnerState",
    "ReadoutOnly",
    "RecurrentModel",
    "SparseRTRL",
    "mse_loss",
    "pretrain_bptt",
    "register_learner",
]
