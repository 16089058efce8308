"""What a job kind contributes to the generic lifecycle: input validation, compute, result."""

from __future__ import annotations

import enum
import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.config import Settings
from jobs.validation_reads import ValidationReads

if TYPE_CHECKING:
    from jobs.context import RunContext


class JobKind(enum.StrEnum):
    REPORT = "REPORT"
    MARKET_ANALYSIS = "MARKET_ANALYSIS"
    GIS_EXPORT = "GIS_EXPORT"
    VALUATION = "VALUATION"


class BadInput(ValueError):
    """Rejected client input; becomes a BAD_USER_INPUT GraphQL error naming `field`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def under(self, prefix: str) -> BadInput:
        """The same refusal for a run input nested at `prefix` (a template's `report`)."""
        return BadInput(f"{prefix}.{self.field}", self.message)


class JobFailure(Exception):
    """A deterministic failure of a job's computation (bad or missing data).

    Carries a stable `code` for clients and metrics; retrying will not help.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ValidatedInput:
    county_id: str
    parameters: dict[str, Any]
    columns: dict[str, Any] = field(default_factory=dict)


Validator = Callable[[ValidationReads, Mapping[str, Any], Settings], Awaitable[ValidatedInput]]
Computer = Callable[["RunContext"], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class KindSpec:
    kind: JobKind
    model: type[Any]
    metric_prefix: str
    type_label: str
    """Metric label naming the kind's variant, and the row column that holds its value."""
    validate: Validator
    compute: Computer
    result_columns: Callable[[dict[str, Any]], dict[str, Any]] = lambda _result: {}

    @functools.cached_property
    def kind_columns(self) -> tuple[str, ...]:
        """Columns of this kind's table beyond the shared lifecycle ones."""
        from jobs.table import SHARED_COLUMNS

        return tuple(
            attr.key
            for attr in self.model.__mapper__.column_attrs
            if attr.key not in SHARED_COLUMNS
        )
