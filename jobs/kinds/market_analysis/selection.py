"""Loading the sales an analysis asks for, and refusing to analyse nothing."""

from __future__ import annotations

from jobs.context import RunContext
from jobs.params import SalesSelection
from jobs.sales_data import SalesColumns, load_sales
from jobs.spec import JobFailure

ARMS_LENGTH = "arm's-length "


async def load_selected_sales(ctx: RunContext, params: SalesSelection) -> SalesColumns:
    await ctx.progress("loading sales", percent=5)
    async with ctx.sessions() as session:
        sales = await load_sales(
            session,
            ctx.county_id,
            date_from=params.sale_date_from,
            date_to=params.sale_date_to,
            property_class=params.property_class,
            arms_length_only=params.arms_length_only,
        )
    if len(sales) == 0:
        raise JobFailure(
            "NO_SALES",
            f"no {ARMS_LENGTH if params.arms_length_only else ''}sales in {ctx.county_id} "
            f"match the selection ({describe(params)})",
        )
    await ctx.progress("computing", processed=len(sales), total=len(sales), percent=40)
    return sales


def describe(params: SalesSelection) -> str:
    parts = [
        f"from {params.sale_date_from}" if params.sale_date_from else "",
        f"to {params.sale_date_to}" if params.sale_date_to else "",
        f"class {params.property_class}" if params.property_class else "",
    ]
    return ", ".join(p for p in parts if p) or "all dates"
