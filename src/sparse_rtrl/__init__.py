"""Online learning of recurrent networks with sparse real-time recurrent learning."""

from ._validation import NonFiniteError
from .cells import Cell, TanhRNNCell
from .learners import (
    LEARNERS,
    ExactRTRL,
    Frozen,
    Learner,
    ReadoutOnly,
    RecurrentModel,
    SparseRTRL,
    register_learner,
)
from .paths import SELECTIONS, PathSelector
from .tasks import TASKS, SineTask, Stream, Task, make_task, register_task

__version__ = "0.1.0"

__all__ = [
    "LEARNERS",
    "SELECTIONS",
    "TASKS",
    "Cell",
    "ExactRTRL",
    "Frozen",
    "Learner",
    "NonFiniteError",
    "PathSelector",
    "ReadoutOnly",
    "RecurrentModel",
    "SineTask",
    "SparseRTRL",
    "Stream",
    "Task",
    "TanhRNNCell",
    "make_task",
    "register_learner",
    "register_task",
]
