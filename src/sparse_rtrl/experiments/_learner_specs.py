"""Learner specs: strings such as ``sparse:k=8,selection=topk`` that name a
registered learner and its options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..learners import LEARNERS, Learner, RecurrentModel

OPTIMIZERS = ("adam", "sgd")


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("yes", "no", "on", "off"):
        return lowered in ("yes", "on")
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@dataclass(frozen=True)
class LearnerSpec:
    """A learner name and its keyword options, parsed from ``name[:key=value,...]``."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> LearnerSpec:
        name, _, rest = text.strip().partition(":")
        if name not in LEARNERS:
            raise ValueError(
                f"learner must be one of {sorted(LEARNERS)}; got learner={name!r}"
            )
        options = {}
        for item in filter(None, (part.strip() for part in rest.split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(
                    f"learner option must look like key=value; got {item!r} in {text!r}"
                )
            key = key.strip()
            if key in options:
                raise ValueError(f"learner option {key!r} is given twice in {text!r}")
            options[key] = _parse_value(value.strip())
        return cls(name, options)

    @property
    def label(self) -> str:
        if not self.options:
            return self.name
        body = ",".join(f"{key}={value}" for key, value in sorted(self.options.items()))
        return f"{self.name}:{body}"


def check_learner_options(spec: LearnerSpec) -> None:
    """Raise ``ValueError`` for an option the learner does not take or of the
    wrong type (a bool option given ``maybe``, an int option given ``2.5``)."""
    import inspect

    parameters = inspect.signature(LEARNERS[spec.name].__init__).parameters
    internal = ("self", "model", "optimizer", "generator", "loss_fn")
    valid = sorted(name for name in parameters if name not in internal)
    for key, value in spec.options.items():
        if key not in valid:
            raise ValueError(
                f"learner {spec.name!r} has no option {key!r}; valid options: {valid}"
            )
        default = parameters[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ValueError(
                f"learner option {key} must be true or false; got {key}={value!r}"
            )
        if (
            isinstance(default, int)
            and not isinstance(default, bool)
            and (isinstance(value, bool) or not isinstance(value, int))
        ):
            raise ValueError(f"learner option {key} must be an integer; got {value!r}")
        if isinstance(default, float) and not isinstance(value, int | float):
            raise ValueError(f"learner option {key} must be a number; got {value!r}")


def make_optimizer(name: str, params: list[torch.nn.Parameter], lr: float):
    """Build ``torch.optim.Adam`` or plain ``SGD`` over ``params``."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}; got {name!r}")


def build_learner(
    spec: LearnerSpec,
    model: RecurrentModel,
    optimizer: str,
    lr: float,
    defaults: dict[str, Any],
    generator: torch.Generator,
) -> Learner:
    """Build the learner of ``spec`` with its own optimizer.

    Options in ``spec`` override ``defaults``; a default is passed only to a learner
    whose constructor accepts it. Frozen learners get no optimizer, the readout
    learner one over the readout alone, every other learner one over all parameters.
    """
    import inspect

    cls = LEARNERS[spec.name]
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {key: value for key, value in defaults.items() if key in accepted}
    check_learner_options(spec)
    kwargs.update(spec.options)
    if "generator" in accepted:
        kwargs["generator"] = generator
    if not cls.trains_cell and not cls.trains_readout:
        opt = None
    elif not cls.trains_cell:
        opt = make_optimizer(optimizer, list(model.readout.parameters()), lr)
    else:
        opt = make_optimizer(optimizer, list(model.parameters()), lr)
    return cls(model, opt, **kwargs)
