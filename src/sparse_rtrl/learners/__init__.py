"""Online gradient estimators sharing one interface."""

from ._base import Learner, LearnerState, RecurrentModel, mse_loss
from ._batched import BatchedRTRL
from ._bptt import pretrain_bptt
from ._controls import Frozen, ReadoutOnly
from ._kfrtrl import KFRTRL
from ._rtrl import ExactRTRL, SparseRTRL
from ._snap import SnAp1, SnAp2
from ._tbptt import TruncatedBPTT
from ._traces import RFLO, EProp
from ._uoro import UORO

LEARNERS: dict[str, type[Learner]] = {}


def register_learner(cls: type[Learner]) -> type[Learner]:
    """Add a learner class to ``LEARNERS`` under its ``name``."""
    LEARNERS[cls.name] = cls
    return cls


for _cls in (Frozen, ReadoutOnly, ExactRTRL, SparseRTRL):
    register_learner(_cls)
for _cls in (SnAp1, SnAp2, UORO, KFRTRL, RFLO, EProp, TruncatedBPTT):
    register_learner(_cls)

__all__ = [
    "LEARNERS",
    "BatchedRTRL",
    "EProp",
    "ExactRTRL",
    "Frozen",
    "KFRTRL",
    "Learner",
    "LearnerState",
    "RFLO",
    "ReadoutOnly",
    "RecurrentModel",
    "SnAp1",
    "SnAp2",
    "SparseRTRL",
    "TruncatedBPTT",
    "UORO",
    "mse_loss",
    "pretrain_bptt",
    "register_learner",
]
