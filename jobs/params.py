"""Job parameters validated by pydantic models, reported as BAD_USER_INPUT naming the field.

Each job variant declares its parameters once, as a model with `extra="forbid"`; the GraphQL
input types are generated from these models (schema/inputs.py), so a field's type, default and
description are written here and nowhere else. A closed choice is a `Literal`; give it a name
with `TypeAliasType` when GraphQL should call its enum something other than model + field.
Errors name the field by its GraphQL path (`parameters.salesRatioStudy.iqrFactor`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypeAliasType

from jobs.spec import BadInput

P = TypeVar("P", bound=BaseModel)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def graphql_name(key: str) -> str:
    """`iqr_factor` -> `iqrFactor`: how GraphQL spells a field (Strawberry's auto-camel-case)."""
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def graphql_path(field: str, loc: tuple[int | str, ...]) -> str:
    """A pydantic error location below `field`, spelled as the GraphQL path of that value."""
    path = field
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else f"{path}.{graphql_name(part)}"
    return path


def parse_params(model: type[P], raw: Any, *, max_bytes: int, field: str = "parameters") -> P:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise BadInput(field, f"must be an object, got {type(raw).__name__}")
    size = len(json.dumps(raw, default=str))
    if size > max_bytes:
        raise BadInput(field, f"is {size} bytes; at most {max_bytes} bytes are allowed")
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = graphql_path(field, tuple(err["loc"]))
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(graphql_name(name) for name in model.model_fields) or "none"
            raise BadInput(where, f"unknown parameter; allowed: {allowed}") from None
        raise BadInput(where, str(err["msg"])) from None


def choice(field: str, value: str, allowed: Mapping[str, Any] | tuple[str, ...]) -> str:
    """Match `value` case-insensitively against `allowed`, returning the canonical spelling."""
    names = tuple(allowed)
    for name in names:
        if name.lower() == str(value).strip().lower():
            return name
    raise BadInput(field, f"{value!r} is not one of: {', '.join(names)}")


class SalesSelection(Params):
    """Which sales a study or analysis reads; shared by every variant that reads sales."""

    model_config = ConfigDict(title="SalesFilter")

    sale_date_from: dt.date | None = Field(
        default=None, description="first sale date to include (default: the variant's own)"
    )
    sale_date_to: dt.date | None = Field(
        default=None, description="last sale date to include (default: the variant's own)"
    )
    property_class: str | None = Field(
        default=None, max_length=64, description="only parcels of this property class"
    )
    zip_codes: list[str] | None = Field(
        default=None, max_length=100, description="only parcels in these ZIP codes"
    )
    neighborhoods: list[str] | None = Field(
        default=None, max_length=100, description="only parcels in these neighborhoods"
    )
    arms_length_only: bool = Field(default=True, description="leave out non-arm's-length sales")

    @model_validator(mode="after")
    def _dates_in_order(self) -> SalesSelection:
        if self.sale_date_from and self.sale_date_to and self.sale_date_from > self.sale_date_to:
            raise ValueError("saleDateFrom must not be after saleDateTo")
        return self

    def describe(self) -> str:
        """The selection in words, for a message that says why nothing matched."""
        parts = [
            f"from {self.sale_date_from}" if self.sale_date_from else "",
            f"to {self.sale_date_to}" if self.sale_date_to else "",
            f"class {self.property_class}" if self.property_class else "",
            f"ZIP {', '.join(self.zip_codes)}" if self.zip_codes else "",
            f"neighborhood {', '.join(self.neighborhoods)}" if self.neighborhoods else "",
        ]
        return ", ".join(p for p in parts if p) or "all dates"


OutputFormat = TypeAliasType("OutputFormat", Literal["csv", "xlsx", "html"])
"""A result file a caller can ask for: CSV the main table, XLSX every table, HTML the report."""


def output_formats_field(*default: str) -> Any:
    """The `outputFormats` field with a variant's own default: the files it wrote before the
    caller could choose, so a client that never asks gets what it always got."""
    return Field(
        default=list(default),
        description="result files to write, each format at most once: CSV the main table, "
        "XLSX one workbook with every table as a sheet, HTML the printable report "
        "(sales ratio study only)",
    )


class FileOutputs(Params):
    """A variant whose result files the caller picks; `outputFormats` is declared here once.

    A variant with a printable report sets `html_report` and its own default (the files it
    wrote before formats could be chosen); the others offer CSV and XLSX.
    """

    html_report: ClassVar[bool] = False

    output_formats: list[OutputFormat] = output_formats_field("csv")

    @field_validator("output_formats")
    @classmethod
    def _offered_once_each(cls, formats: list[str]) -> list[str]:
        offered = [f for f in get_args(OutputFormat.__value__) if f != "html" or cls.html_report]
        allowed = ", ".join(f.upper() for f in offered)
        if not formats:
            raise PydanticCustomError(
                "output_formats",
                "must name at least one format; allowed: {allowed}",
                {"allowed": allowed},
            )
        for index, name in enumerate(formats):
            if name not in offered:
                raise PydanticCustomError(
                    "output_formats",
                    "{format} is not offered for this type (it has no printable report); "
                    "allowed: {allowed}",
                    {"format": name.upper(), "allowed": allowed},
                )
            if name in formats[:index]:
                raise PydanticCustomError(
                    "output_formats",
                    "{format} is given twice; name each format at most once",
                    {"format": name.upper()},
                )
        return formats
