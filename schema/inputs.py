"""GraphQL types generated from the kinds' pydantic parameter models: one source of truth.

A parameter is declared once, as a pydantic field in `jobs/kinds/<kind>/params.py`; from it
come its GraphQL input field (type, default, description, range), its output field on the
job type (the parameters the job ran with) and its validation. Mapping:

* `Literal["a", "b_c"]` -> a GraphQL enum `A`, `B_C` whose Python values are the lower-case
  strings the engine, the database and the metric labels use. Its name is the literal's
  `TypeAliasType` name, else model + field (`PriceTrendPeriod`).
* a nested model -> a nested input (and output) type; `list[X]` -> `[X!]`.
* `Field(description=...)` -> the SDL description, with numeric and length bounds appended;
  the bounds themselves stay in pydantic and fail as BAD_USER_INPUT naming the GraphQL path.
* a default -> the SDL default; a `None` default -> a nullable field without one.

A model's GraphQL name is its `title` (config) else its class name with `Params` spelled out
(`SalesRatioStudyParams` -> `SalesRatioStudyParameters`); the output type adds `Output`.
A kind with variants gets a `@oneOf` input with one branch per variant, its output twin and
the enum naming the variant, from its `Variants` table.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import enum
import inspect
import types
import typing
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any, Literal

import annotated_types
import strawberry
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from typing_extensions import TypeAliasType

from jobs.variants import Variants

SCALARS: tuple[type, ...] = (bool, int, float, str, dt.date, dt.datetime)
OUTPUT_SUFFIX = "Output"

_enums: dict[str, type[enum.Enum]] = {}


def _pascal(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


def _doc(obj: Any) -> str | None:
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else None
    return inspect.cleandoc(doc) if doc else None


def choice_enum(
    name: str,
    values: Iterable[str],
    descriptions: Mapping[str, str | None] | None = None,
    description: str | None = None,
) -> type[enum.Enum]:
    """A GraphQL enum whose members are the upper-case spellings of `values`.

    The members' Python values are `values` themselves, so `Member.value` is what the engine
    stores and what metric labels show. One enum per name: asking again returns it.
    """
    values = tuple(values)
    known = _enums.get(name)
    if known is not None:
        if tuple(m.value for m in known) != values:
            raise TypeError(f"enum {name} declared twice with different values")
        return known
    descriptions = descriptions or {}
    members = {
        value.upper(): strawberry.enum_value(value, description=descriptions.get(value))
        for value in values
    }
    cls = enum.Enum(name, members)  # type: ignore[misc]
    cls.__module__ = __name__
    _enums[name] = strawberry.enum(cls, name=name, description=description)
    return _enums[name]


def schema_enum(alias: TypeAliasType) -> type[enum.Enum]:
    """The GraphQL enum of a named `Literal` (`ValuationMethod`), for a field outside a model."""
    return choice_enum(alias.__name__, typing.get_args(alias.__value__))


def variant_enum(name: str, variants: Variants, description: str | None = None) -> type[enum.Enum]:
    """The enum naming a kind's variants (`ReportType`); each value described by its model."""
    described = {key: _doc(v.params) for key, v in variants.choices.items()}
    return choice_enum(name, variants.choices, described, description)


def type_name(model: type[BaseModel]) -> str:
    title = model.model_config.get("title")
    if title:
        return title
    name = model.__name__
    return name.removesuffix("Params") + "Parameters" if name.endswith("Params") else name


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        if len(args) != 1:
            raise TypeError(f"cannot map the union {annotation!r} to GraphQL")
        return args[0], nullable
    return annotation, False


def _graphql_type(annotation: Any, model: type[BaseModel], field: str, output: bool) -> Any:
    """The Strawberry annotation for one (non-null) pydantic type."""
    if isinstance(annotation, TypeAliasType):
        value = annotation.__value__
        if typing.get_origin(value) is Literal:
            return schema_enum(annotation)
        return _graphql_type(value, model, field, output)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        name = type_name(model).removesuffix("Parameters") + _pascal(field)
        return choice_enum(name, typing.get_args(annotation))
    if origin is list:
        (item,) = typing.get_args(annotation)
        return list[_graphql_type(item, model, field, output)]  # type: ignore[misc]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return output_type(annotation) if output else input_type(annotation)
    if annotation in SCALARS:
        return annotation
    raise TypeError(f"{model.__name__}.{field}: no GraphQL type for {annotation!r}")


_BOUNDS = (
    (annotated_types.Gt, "gt", "> {}"),
    (annotated_types.Ge, "ge", ">= {}"),
    (annotated_types.Lt, "lt", "< {}"),
    (annotated_types.Le, "le", "<= {}"),
    (annotated_types.MinLen, "min_length", "at least {} {}"),
    (annotated_types.MaxLen, "max_length", "at most {} {}"),
)


def _description(info: FieldInfo, tp: Any) -> str | None:
    unit = "items" if typing.get_origin(tp) is list else "characters"
    bounds = [
        text.format(getattr(rule, attr), unit)
        for rule in info.metadata
        for kind, attr, text in _BOUNDS
        if isinstance(rule, kind)
    ]
    parts = [info.description or "", f"({', '.join(bounds)})" if bounds else ""]
    return " ".join(p for p in parts if p) or None


IMMUTABLE = (str, int, float, enum.Enum, dt.date, tuple, frozenset, type(None))
"""Defaults every job's parameters may share (bool is an int; a datetime a date)."""


def _default(info: FieldInfo, tp: Any) -> Any:
    """The GraphQL default of a field: its pydantic default in GraphQL terms, or UNSET."""
    default = info.default
    if default is PydanticUndefined or default is None:
        return strawberry.UNSET
    return _as_graphql(default, tp)


def _as_graphql(value: Any, tp: Any) -> Any:
    """A pydantic value in the terms of its Strawberry type (enum members for enum values)."""
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        return [_as_graphql(v, item) for v in value]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    return value


def _build(model: type[BaseModel], output: bool) -> type:
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__module__": __name__}
    for name, info in model.model_fields.items():
        inner, nullable = _unwrap_optional(info.annotation)
        tp = _graphql_type(inner, model, name, output)
        has_default = info.default is not PydanticUndefined and info.default is not None
        if output:
            # What the job ran with: every value the model holds, null only where it may be.
            # A job stored before a field existed ran with its default, and shows it.
            annotations[name] = tp | None if nullable else tp
            shown = _default(info, tp)
            if not has_default:
                namespace[name] = strawberry.field(description=_description(info, tp))
            elif isinstance(shown, IMMUTABLE):  # shared as it is: a copy per job is waste
                namespace[name] = strawberry.field(
                    default=shown, description=_description(info, tp)
                )
            else:
                namespace[name] = strawberry.field(
                    default_factory=lambda d=shown: copy.copy(d),
                    description=_description(info, tp),
                )
            continue
        default = _default(info, tp)
        required = not nullable and (has_default or info.is_required())
        annotations[name] = tp if required else tp | None
        if isinstance(default, list):
            namespace[name] = strawberry.field(
                default_factory=lambda d=default: list(d), description=_description(info, tp)
            )
        else:
            namespace[name] = strawberry.field(default=default, description=_description(info, tp))
    namespace["__annotations__"] = annotations
    name = type_name(model) + (OUTPUT_SUFFIX if output else "")
    cls = type(name, (), namespace)
    decorate = strawberry.type if output else strawberry.input
    return decorate(cls, name=name, description=_doc(model))  # type: ignore[no-any-return]


@cache
def input_type(model: type[BaseModel]) -> type:
    """The GraphQL input type of a parameters model."""
    return _build(model, output=False)


@cache
def output_type(model: type[BaseModel]) -> type:
    """The GraphQL object type showing the parameters a job ran with."""
    return _build(model, output=True)


def _one_of(name: str, variants: Variants, output: bool, description: str | None) -> type:
    make = output_type if output else input_type
    annotations = {key: make(v.params) | None for key, v in variants.choices.items()}
    namespace: dict[str, Any] = {"__module__": __name__, "__annotations__": annotations}
    for key, v in variants.choices.items():
        namespace[key] = strawberry.field(
            default=None if output else strawberry.UNSET, description=_doc(v.params)
        )
    cls = type(name, (), namespace)
    if output:
        return strawberry.type(cls, name=name, description=description)  # type: ignore[no-any-return]
    return strawberry.input(cls, name=name, description=description, one_of=True)  # type: ignore[no-any-return]


def one_of_input(name: str, variants: Variants, description: str | None = None) -> type:
    """`@oneOf` input with one branch per variant, e.g. `ReportParameters.salesRatioStudy`."""
    return _one_of(name, variants, output=False, description=description)


def one_of_output(name: str, variants: Variants, description: str | None = None) -> type:
    """The parameters a job ran with, under its variant's branch (the others are null)."""
    return _one_of(name + OUTPUT_SUFFIX, variants, output=True, description=description)


def variant_types(
    variants: Variants, enum_name: str, parameters_name: str, what: str
) -> tuple[type[enum.Enum], type, type]:
    """A kind's variant enum (`ReportType`), its `@oneOf` parameters input and their output."""
    return (
        variant_enum(enum_name, variants, f"What a {what} computes."),
        one_of_input(
            parameters_name,
            variants,
            f"A {what}'s parameters: give the one branch that matches `{variants.field}`.",
        ),
        one_of_output(
            parameters_name,
            variants,
            f"The parameters the {what} ran with, under its `{variants.field}`'s branch.",
        ),
    )


def plain(value: Any) -> Any:
    """A Strawberry input as the plain dict the lifecycle validates.

    Enums become their lower-case values, nested inputs dicts with snake_case keys; a field
    left out (UNSET) or given as null is dropped, so pydantic applies its own default.
    """
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):
        return [plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(v)
            for f in dataclasses.fields(value)
            if (v := getattr(value, f.name)) is not None and v is not strawberry.UNSET
        }
    return value
