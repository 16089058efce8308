"""Job parameters validated by pydantic models, reported as BAD_USER_INPUT naming the field.

Each job variant declares its parameters once as a model with `extra="forbid"`; the message
for an unknown name lists the names that are allowed, so a GraphiQL user can fix the call.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jobs.spec import BadInput

P = TypeVar("P", bound=BaseModel)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_params(model: type[P], raw: Any, *, max_bytes: int, field: str = "parameters") -> P:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise BadInput(field, f"must be a JSON object, got {type(raw).__name__}")
    size = len(json.dumps(raw, default=str))
    if size > max_bytes:
        raise BadInput(field, f"is {size} bytes; at most {max_bytes} bytes are allowed")
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"])
        where = f"{field}.{path}" if path else field
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(model.model_fields) or "none"
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

    sale_date_from: dt.date | None = None
    sale_date_to: dt.date | None = None
    property_class: str | None = Field(default=None, max_length=64)
    arms_length_only: bool = True

    @model_validator(mode="after")
    def _dates_in_order(self) -> SalesSelection:
        if self.sale_date_from and self.sale_date_to and self.sale_date_from > self.sale_date_to:
            raise ValueError("sale_date_from must not be after sale_date_to")
        return self
