"""Data streams with a regime switch."""

from ._adding import AddingTask
from ._base import (
    ERROR_DENSITIES,
    REGIMES,
    Stream,
    Task,
    apply_error_density,
    segment_starts,
)
from ._bci_options import make_bci_task
from ._delay import DelayTask
from ._lorenz import LorenzTask, integrate_lorenz
from ._sine import SineTask
from ._teacher import TeacherTask

TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Add a task class (or a factory with a ``name``) to ``TASKS``."""
    TASKS[cls.name] = cls
    return cls


def make_task(name: str, **options) -> Task:
    """Build the registered task ``name`` with keyword ``options``."""
    if name not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}; got task={name!r}")
    return TASKS[name](**options)


register_task(SineTask)
register_task(TeacherTask)
register_task(make_bci_task)
register_task(DelayTask)
register_task(LorenzTask)
register_task(AddingTask)

__all__ = [
    "ERROR_DENSITIES",
    "REGIMES",
    "TASKS",
    "AddingTask",
    "DelayTask",
    "LorenzTask",
    "SineTask",
    "TeacherTask",
    "Stream",
    "Task",
    "apply_error_density",
    "integrate_lorenz",
    "make_task",
    "register_task",
    "segment_starts",
]
