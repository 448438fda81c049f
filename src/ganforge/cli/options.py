"""Click options derived from annotated settings (`ganforge.options`), for every command.

    @click.command()
    @options_from(TrainConfig)
    def train(**params): cfg = TrainConfig(**values_for(TrainConfig, params))

Each setting's flag, default, help text and choices come from its declaration; bounds and the
finer checks are the library's, so a bad value gets the same sentence from the CLI and the API.
"""

from __future__ import annotations

import inspect

import click

from ganforge.options import Setting, settings


def _click_option(s: Setting):
    decls = [f"{s.flag}/--no-{s.flag[2:]}"] if s.type is bool else [s.flag]
    if s.opt.short:
        decls.insert(0, s.opt.short)
    required = s.default is inspect.Parameter.empty
    kwargs = {"help": s.opt.help, "required": required}
    if not required:
        kwargs["default"] = s.default
        kwargs["show_default"] = s.opt.default_text if s.default is None and s.opt.default_text else s.default is not None
    if s.type is not bool:
        kwargs["type"] = click.Choice([str(c) for c in s.opt.choices]) if s.opt.choices else s.type
    if s.opt.metavar:
        kwargs["metavar"] = s.opt.metavar
    return click.option(*decls, s.name, **kwargs)


def options_from(obj, exclude=()):
    """A decorator adding one option per annotated setting of `obj` (a dataclass or a function),
    in declaration order."""

    def decorate(f):
        for s in reversed(settings(obj)):
            if s.opt.cli and s.name not in exclude:
                f = _click_option(s)(f)
        return f

    return decorate


def values_for(obj, params: dict) -> dict:
    """`obj`'s settings picked out of click's params, with Choice strings turned back into the
    setting's type (`--channels 3` -> 3)."""
    out = {}
    for s in settings(obj):
        if s.name in params:
            value = params[s.name]
            out[s.name] = s.type(value) if value is not None and s.opt.choices and s.type in (int, float) else value
    return out
