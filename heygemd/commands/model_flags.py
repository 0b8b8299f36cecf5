"""Command-line flags made from a settings model's fields, so the CLI can never lose or mistype a setting.

Each field ``some_name`` becomes ``--some-name`` with the field's description and default as its
help; enums become choices, booleans ``--flag/--no-flag``, tuples of ints comma-separated lists.
Flags that are not given stay out of the parsed namespace (argparse.SUPPRESS), so the model's own
defaults and validation decide, exactly as for the config file and job.toml.
"""

from __future__ import annotations

import argparse
import enum
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def add_model_flags(
    group: argparse._ArgumentGroup, model: type[BaseModel], *, renamed: dict[str, str] | None = None
) -> None:
    """One flag per field of ``model`` (``renamed`` gives a field another flag name, for compatibility)."""
    renamed = renamed or {}
    for name, field in model.model_fields.items():
        kind = _unwrapped(field.annotation)
        default = field.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else getattr(default, "value", default)
        help_text = (field.description or name) + ("" if default is None else f" (default: {shown})")
        options: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help_text.replace("%", "%%")}
        flag = renamed.get(name, flag_name(name))
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
        elif isinstance(kind, type) and issubclass(kind, enum.Enum):
            group.add_argument(flag, choices=[member.value for member in kind], **options)
        elif typing.get_origin(kind) is tuple:
            count = len(typing.get_args(kind))
            group.add_argument(flag, type=_int_list(count), metavar=",".join(["N"] * count), **options)
        else:
            group.add_argument(flag, type=kind, **options)


def model_from_flags(model: type[M], args: argparse.Namespace) -> M:
    """The model from the flags given (the others keep the model's defaults); raises pydantic's ValidationError."""
    given = {name: getattr(args, name) for name in model.model_fields if hasattr(args, name)}
    return model.model_validate(given)


def _unwrapped(annotation: Any) -> Any:
    """``X | None`` -> X (an unset optional field is simply a flag not given)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [member for member in typing.get_args(annotation) if member is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _int_list(count: int):
    def parse(text: str) -> tuple[int, ...]:
        parts = text.replace(" ", "").split(",")
        if len(parts) != count:
            raise argparse.ArgumentTypeError(f"expected {count} comma-separated integers, got {text!r}")
        try:
            return tuple(int(part) for part in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected integers, got {text!r}") from None

    return parse
