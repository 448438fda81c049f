"""Settings that carry their own help text, choices and bounds.

A setting is declared once, as a dataclass field or a keyword argument whose type is wrapped in
`Annotated[type, Opt(...)]`:

    lr_g: Annotated[float, Opt("Generator learning rate.", above=0)] = 2e-4

The library checks values against these declarations (`check`), and the command line derives its
options from them (`ganforge.cli.options`), so a default, a help text, a list of choices or a
bound is written in exactly one place and the Python API refuses what the CLI refuses.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from ganforge.errors import GanforgeError

__all__ = ["Opt", "Setting", "settings", "check", "check_value", "flag"]


@dataclass(frozen=True)
class Opt:
    help: str
    choices: tuple | None = None
    min: float | None = None  # inclusive bounds
    max: float | None = None
    above: float | None = None  # exclusive bounds
    below: float | None = None
    short: str | None = None  # a one-letter alias such as "-n"
    long: str | None = None  # the option's name when it is not --the-setting-name
    default_text: str | None = None  # shown for a default of None ("by size", ...)
    metavar: str | None = None  # how --help names the value
    check: Callable[[Any], None] | None = None  # a further check that raises GanforgeError
    cli: bool = True  # False: a Python-only setting, no command-line option


@dataclass(frozen=True)
class Setting:
    name: str
    type: type  # int, float, str or bool
    default: Any
    opt: Opt
    optional: bool  # None is accepted (it means "pick for me")
    exact: bool  # the annotation allows this one type only (not, say, a string or a list)

    @property
    def flag(self) -> str:
        return self.opt.long or flag(self.name)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _plain_type(annotation) -> tuple[type, bool, bool]:
    """(type, optional, exact): `int | None` -> (int, True, True); `str | Sequence[str]` -> (str, False, False)."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    optional = type(None) in args
    others = [a for a in args if a is not type(None)]
    for arg in others:
        if arg in (bool, int, float, str):
            return arg, optional, len(others) == 1
    return str, optional, False


def settings(obj) -> list[Setting]:
    """The annotated settings of a dataclass or a function, in declaration order."""
    hints = typing.get_type_hints(obj, include_extras=True)
    if dataclasses.is_dataclass(obj):
        defaults = {f.name: f.default for f in dataclasses.fields(obj)}
    else:
        defaults = {n: p.default for n, p in inspect.signature(obj).parameters.items()}
    out = []
    for name, default in defaults.items():
        hint = hints.get(name)
        if typing.get_origin(hint) is not Annotated:
            continue
        opt = next((m for m in hint.__metadata__ if isinstance(m, Opt)), None)
        if opt is None:
            continue
        kind, optional, exact = _plain_type(hint.__origin__)
        out.append(Setting(name, kind, default, opt, optional or default is None, exact))
    return out


def _describe(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_value(s: Setting, value) -> None:
    """Raise GanforgeError, naming the setting, when `value` breaks its declaration."""
    if value is None:
        if s.optional:
            return
        raise GanforgeError(f"{s.flag} needs a value.")
    if s.type is bool:
        if not isinstance(value, bool):
            raise GanforgeError(f"{s.flag} is on or off (True or False), not {value!r}.")
        return
    if s.type in (int, float):
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if s.type is int and not is_int:
            raise GanforgeError(f"{s.flag} must be a whole number, not {value!r}.")
        if s.type is float and not (is_int or isinstance(value, float)):
            raise GanforgeError(f"{s.flag} must be a number, not {value!r}.")
        if not math.isfinite(value):
            raise GanforgeError(f"{s.flag} must be a finite number, not {value}.")
    elif s.type is str and s.exact and not isinstance(value, str):
        raise GanforgeError(f"{s.flag} must be text, not {value!r}.")
    o = s.opt
    if o.choices is not None and value not in o.choices:
        raise GanforgeError(f"{s.flag} must be one of {', '.join(map(str, o.choices))}, not {value!r}.")
    if o.min is not None and value < o.min:
        raise GanforgeError(f"{s.flag} must be at least {_describe(o.min)}, not {_describe(value)}.")
    if o.max is not None and value > o.max:
        raise GanforgeError(f"{s.flag} must be at most {_describe(o.max)}, not {_describe(value)}.")
    if o.above is not None and not value > o.above:
        raise GanforgeError(f"{s.flag} must be greater than {_describe(o.above)}, not {_describe(value)}.")
    if o.below is not None and not value < o.below:
        raise GanforgeError(f"{s.flag} must be less than {_describe(o.below)}, not {_describe(value)}.")
    if o.check is not None:
        o.check(value)


def check(obj, values: dict) -> None:
    """Check every value in `values` that `obj` (a dataclass or a function) declares."""
    for s in settings(obj):
        if s.name in values:
            check_value(s, values[s.name])
