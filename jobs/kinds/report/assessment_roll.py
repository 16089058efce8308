"""Assessment roll: every parcel's values for a tax year, with totals by class and area."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Assessment, Parcel
from jobs.context import RunContext
from jobs.county_data import require_tax_year
from jobs.kinds.report.params import AssessmentRollParams
from jobs.kinds.report.sheets import assessment_roll_sheets
from jobs.outputs import ResultFiles

BATCH = 5000
COLUMNS = (
    "parcel_id",
    "address",
    "zip_code",
    "neighborhood",
    "property_class",
    "land_value",
    "improvement_value",
    "assessed_value",
)


def _join(tax_year: int) -> Any:
    return and_(
        Assessment.county_id == Parcel.county_id,
        Assessment.parcel_id == Parcel.parcel_id,
        Assessment.tax_year == tax_year,
    )


async def _group_totals(
    session: AsyncSession, county_id: str, tax_year: int, column: Any
) -> list[dict[str, Any]]:
    label = func.coalesce(column, "(none)")
    query = (
        select(
            label,
            func.count(Parcel.id),
            func.coalesce(func.sum(Assessment.land_value), 0.0),
            func.coalesce(func.sum(Assessment.improvement_value), 0.0),
            func.coalesce(func.sum(Assessment.assessed_value), 0.0),
            func.percentile_cont(0.5).within_group(Assessment.assessed_value),
        )
        .select_from(Parcel)
        .outerjoin(Assessment, _join(tax_year))
        .where(Parcel.county_id == county_id)
        .group_by(label)
        .order_by(label)
    )
    return [
        {
            "group": group,
            "parcel_count": count,
            "total_land_value": land,
            "total_improvement_value": improvement,
            "total_assessed_value": assessed,
            "median_assessed_value": median,
        }
        for group, count, land, improvement, assessed, median in (
            await session.execute(query)
        ).all()
    ]


async def _roll_totals(
    session: AsyncSession, county_id: str, tax_year: int, parcels: int
) -> dict[str, Any]:
    assessed, land_total, improvement_total, assessed_total = (
        await session.execute(
            select(
                func.count(Assessment.id),
                func.coalesce(func.sum(Assessment.land_value), 0.0),
                func.coalesce(func.sum(Assessment.improvement_value), 0.0),
                func.coalesce(func.sum(Assessment.assessed_value), 0.0),
            )
            .select_from(Parcel)
            .join(Assessment, _join(tax_year))
            .where(Parcel.county_id == county_id)
        )
    ).one()
    return {
        "tax_year": tax_year,
        "parcel_count": parcels,
        "assessed_parcel_count": assessed,
        "total_land_value": land_total,
        "total_improvement_value": improvement_total,
        "total_assessed_value": assessed_total,
        "by_property_class": await _group_totals(
            session, county_id, tax_year, Parcel.property_class
        ),
        "by_neighborhood": await _group_totals(session, county_id, tax_year, Parcel.neighborhood),
    }


async def run(ctx: RunContext, params: AssessmentRollParams) -> dict[str, Any]:
    await ctx.progress("loading roll", percent=2)
    async with ctx.sessions() as session:
        tax_year = await require_tax_year(session, ctx.county_id, params.tax_year)
        total = (
            await session.scalar(select(func.count()).where(Parcel.county_id == ctx.county_id)) or 0
        )
        query = (
            select(
                Parcel.parcel_id,
                Parcel.address,
                Parcel.zip_code,
                Parcel.neighborhood,
                Parcel.property_class,
                Assessment.land_value,
                Assessment.improvement_value,
                Assessment.assessed_value,
            )
            .outerjoin(Assessment, _join(tax_year))
            .where(Parcel.county_id == ctx.county_id)
            .order_by(Parcel.parcel_id)
            .execution_options(yield_per=BATCH)
        )
        written = 0
        async with ResultFiles(
            ctx, params.output_formats, f"assessment_roll_{tax_year}.xlsx"
        ) as out:
            roll_table = out.main_table(f"assessment_roll_{tax_year}.csv", "Roll", COLUMNS)
            stream = await session.stream(query)
            async for rows in stream.partitions(BATCH):
                written += await roll_table.write(rows)
                await ctx.progress(
                    "writing roll",
                    processed=written,
                    total=total,
                    percent=5 + 80 * written / max(total, 1),
                )
            await ctx.progress("totals", processed=written, total=total, percent=90)
            roll = await _roll_totals(session, ctx.county_id, tax_year, written)
            assessment_roll_sheets(out, roll)
    return {
        "assessment_roll": roll,
        "files": out.files,
        "summary": {
            "tax_year": tax_year,
            "parcels": written,
            "assessed_parcels": roll["assessed_parcel_count"],
        },
    }
