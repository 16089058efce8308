"""Kinds whose input names a variant (`report_type`, `analysis_type`).

Each variant brings its parameters model and its run function; choosing, validating and
dispatching is written here once. A run's `parameters` hold at most one branch, named after
a variant (`{"sales_ratio_study": {...}}`, GraphQL's `@oneOf` input), and that branch must be
the chosen variant's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.config import Settings
from jobs.context import RunContext
from jobs.params import Params, choice, graphql_name, parse_params
from jobs.spec import BadInput

Run = Callable[[RunContext, Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Variant:
    params: type[Params]
    run: Run


@dataclass(frozen=True)
class Variants:
    field: str
    """The GraphQL input field naming the variant, for error messages (e.g. `reportType`)."""
    column: str
    """The input key and row column that hold it (e.g. `report_type`)."""
    choices: Mapping[str, Variant]

    def parse(self, raw: Mapping[str, Any], settings: Settings) -> tuple[str, Params]:
        name = choice(self.field, raw[self.column], tuple(self.choices))
        branch = graphql_name(name)
        given = raw.get("parameters") or {}
        for key in given:
            if key != name:
                raise BadInput(
                    f"parameters.{graphql_name(key)}",
                    f"does not match {self.field} {name.upper()}; "
                    f"its parameters go in parameters.{branch}",
                )
        params = parse_params(
            self.choices[name].params,
            given.get(name),
            max_bytes=settings.max_parameters_bytes,
            field=f"parameters.{branch}",
        )
        return name, params

    async def compute(self, ctx: RunContext) -> dict[str, Any]:
        variant = self.choices[ctx.columns[self.column]]
        return await variant.run(ctx, variant.params(**ctx.parameters))
