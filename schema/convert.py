"""Build Strawberry objects from the JSON snapshots that queries and events share.

Result types are plain typed declarations; this one converter fills any of them from a
dict by reading their type hints, so a new result type needs no hand-written mapping.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import types
import typing
from functools import cache
from typing import Any


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def build(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return build(inner[0], value) if len(inner) == 1 else value
    if origin is list:
        (item,) = typing.get_args(tp)
        return [build(item, v) for v in value]
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            return build_object(tp, value)
        if issubclass(tp, enum.Enum):
            return tp(value)
        if tp is dt.datetime:
            return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
        if tp is dt.date:
            return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
        if tp is float and isinstance(value, int):
            return float(value)
    return value


def build_object(cls: type, data: dict[str, Any]) -> Any:
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.init:  # a field with a resolver: computed when queried
            continue
        if f.name in data:
            kwargs[f.name] = build(hints[f.name], data[f.name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs[f.name] = None
    return cls(**kwargs)
