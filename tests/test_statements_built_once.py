"""Statements built once with bound values (the assessment roll's, the county checks') must
be the SQL the same statement built per call with its values is, with the values bound in
the same places: the server runs exactly what it ran before."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from app.models import Assessment, Parcel
from jobs import county_data
from jobs.kinds.report import assessment_roll

DIALECT = postgresql.asyncpg.dialect()  # type: ignore[attr-defined]


def _sql(statement: Any, params: dict[str, Any] | None = None) -> tuple[str, list[Any]]:
    compiled = statement.compile(dialect=DIALECT)
    values = compiled.construct_params(params)
    return compiled.string, [values[name] for name in compiled.positiontup]


def test_the_rolls_statements_are_the_ones_built_per_run() -> None:
    totals, first_page, next_page = assessment_roll._statements()
    where = {"county_id": "C1", "tax_year": 2024}
    assert _sql(totals, where) == _sql(assessment_roll._totals_query("C1", 2024))
    assert _sql(first_page, where) == _sql(assessment_roll._roll_page("C1", 2024, None))
    assert _sql(next_page, {**where, "after": "P9"}) == _sql(
        assessment_roll._roll_page("C1", 2024, "P9")
    )


def test_the_county_checks_are_the_statements_built_per_call() -> None:
    params = {"county_id": "C1"}
    assert _sql(county_data._one_parcel(), params) == _sql(
        select(Parcel.id).where(Parcel.county_id == "C1").limit(1)
    )
    assert _sql(county_data._tax_years(), params) == _sql(
        select(Assessment.tax_year)
        .where(Assessment.county_id == "C1")
        .distinct()
        .order_by(Assessment.tax_year)
    )
