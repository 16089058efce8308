"""Build Strawberry objects from the JSON snapshots that queries and events share.

Result types are plain typed declarations; this one converter fills any of them from a
dict by reading their type hints, so a new result type needs no hand-written mapping.

Every query and every event builds a job this way, so the type hints are read once per
class: each field gets its conversion (or none, when the value is used as it is) the first
time the class is built, and each build after that only applies them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any

Convert = Callable[[Any], Any]
"""Turns a non-null JSON value into the field's Python value."""


def build(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    convert = converter(tp)
    return value if convert is None else convert(value)


def build_object(cls: type, data: dict[str, Any]) -> Any:
    kwargs = {}
    for name, convert, required in _plan(cls):
        if name in data:
            value = data[name]
            kwargs[name] = value if convert is None or value is None else convert(value)
        elif required:
            kwargs[name] = None
    return cls(**kwargs)


@cache
def _plan(cls: type) -> tuple[tuple[str, Convert | None, bool], ...]:
    """(field, its conversion, whether it has no default) for each field a build fills;
    a field with a resolver (not `init`) is computed when queried."""
    hints = typing.get_type_hints(cls)
    return tuple(
        (
            f.name,
            converter(hints[f.name]),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.init
    )


def converter(tp: Any) -> Convert | None:
    """The conversion for values of type `tp`; None when they are used as they are."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return converter(inner[0]) if len(inner) == 1 else None
    if origin is list:
        (item,) = typing.get_args(tp)
        each = converter(item)
        if each is None:
            return list
        return lambda values: [None if v is None else each(v) for v in values]
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            # Late: a type may contain itself.
            return lambda value: build_object(tp, value)
        if issubclass(tp, enum.Enum):
            return tp
        if tp is dt.datetime:
            return _datetime
        if tp is dt.date:
            return _date
        if tp is float:
            return _float
    return None


def _datetime(value: Any) -> Any:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)


def _date(value: Any) -> Any:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def _float(value: Any) -> Any:
    return float(value) if isinstance(value, int) else value
