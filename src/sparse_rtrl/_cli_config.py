"""Click options generated from experiment config dataclasses."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any

import click

from .experiments._learner_specs import _parse_value


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _without_none(hint):
    """Return ``X`` for ``X | None`` (and ``Optional[X]``), else ``hint``."""
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if type(None) in typing.get_args(hint) and len(args) == 1:
        return args[0]
    return hint


def config_options(config_cls: type) -> Callable:
    """Decorate a click command with one option per field of ``config_cls``.

    Scalars become typed options, booleans ``--x/--no-x``, tuples of strings a
    repeatable option (``--learner``), and dicts repeatable ``key=value`` options
    (``--task-option``). Every option defaults to None, meaning "keep the config's
    default", so ``config_from_options`` sees only what the user set.
    """
    hints = typing.get_type_hints(config_cls)

    def decorate(command: Callable) -> Callable:
        for item in reversed(dataclasses.fields(config_cls)):
            if not item.metadata.get("cli", True):
                continue
            hint = hints[item.name]
            default = (
                item.default
                if item.default is not dataclasses.MISSING
                else item.default_factory()
            )
            help_text = f"{item.metadata.get('help', '')} [default: {default}]"
            hint = _without_none(hint)
            origin = typing.get_origin(hint)
            choices = item.metadata.get("choices")
            if choices:
                option = click.option(
                    _flag(item.name),
                    type=click.Choice(list(choices)),
                    default=None,
                    help=help_text,
                )
            elif hint is bool:
                option = click.option(
                    f"{_flag(item.name)}/--no-{item.name.replace('_', '-')}",
                    default=None,
                    help=help_text,
                )
            elif origin is tuple:
                singular = item.name[:-1] if item.name.endswith("s") else item.name
                option = click.option(
                    _flag(singular),
                    item.name,
                    multiple=True,
                    help=help_text + " (repeat the option for several)",
                )
            elif origin is dict:
                singular = item.name[:-1] if item.name.endswith("s") else item.name
                option = click.option(
                    _flag(singular),
                    item.name,
                    multiple=True,
                    metavar="KEY=VALUE",
                    help=help_text + " (repeat the option for several)",
                )
            else:
                kind = {int: int, float: float, str: str}.get(hint, str)
                option = click.option(
                    _flag(item.name), type=kind, default=None, help=help_text
                )
            command = option(command)
        return command

    return decorate


def config_from_options(config_cls: type, options: dict[str, Any], **overrides):
    """Build ``config_cls`` from click option values, ignoring unset ones."""
    hints = typing.get_type_hints(config_cls)
    values: dict[str, Any] = dict(overrides)
    for item in dataclasses.fields(config_cls):
        if not item.metadata.get("cli", True):
            continue
        value = options.get(item.name)
        if value is None or value == ():
            continue
        origin = typing.get_origin(_without_none(hints[item.name]))
        if origin is dict:
            parsed = {}
            for pair in value:
                key, sep, text = pair.partition("=")
                if not sep or not key:
                    raise click.BadParameter(
                        f"expected KEY=VALUE; got {pair!r}", param_hint=_flag(item.name)
                    )
                parsed[key] = _parse_value(text)
            value = parsed
        elif origin is tuple:
            value = tuple(value)
        values[item.name] = value
    return config_cls(**values)
