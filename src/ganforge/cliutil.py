"""Click options generated from a dataclass, so each default and help text is written once."""

from __future__ import annotations

import dataclasses
import typing

import click


def _base_type(annotation):
    """`int | None` -> int; plain types unchanged."""
    if isinstance(annotation, str):
        annotation = eval(annotation, {"int": int, "float": float, "str": str, "bool": bool, "None": type(None)})  # noqa: S307 - our own annotations
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def dataclass_options(cls, exclude=()):
    """A decorator adding one --option per field of `cls` (field metadata: help, choices, cli)."""

    def decorate(f):
        for fld in reversed(dataclasses.fields(cls)):
            meta = fld.metadata
            if fld.name in exclude or meta.get("cli") is False:
                continue
            flag = "--" + fld.name.replace("_", "-")
            typ = _base_type(fld.type)
            kwargs = {"default": fld.default, "help": meta.get("help"), "show_default": fld.default is not None}
            if typ is bool:
                decl = [f"{flag}/--no-{fld.name.replace('_', '-')}"]
            else:
                decl = [flag]
                kwargs["type"] = click.Choice([str(c) for c in meta["choices"]]) if meta.get("choices") else typ
            f = click.option(*decl, fld.name, **kwargs)(f)
        return f

    return decorate


def dataclass_kwargs(cls, params: dict) -> dict:
    """Pick `cls`'s fields out of click's params, converting Choice strings back to their type."""
    out = {}
    for fld in dataclasses.fields(cls):
        if fld.name in params:
            value, typ = params[fld.name], _base_type(fld.type)
            out[fld.name] = typ(value) if value is not None and typ in (int, float) else value
    return out
