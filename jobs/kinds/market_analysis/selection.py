"""Loading the sales an analysis asks for, and refusing to analyse nothing."""

from __future__ import annotations

from jobs.context import RunContext
from jobs.params import SalesSelection
from jobs.sales_data import SalesColumns, load_sales
from jobs.spec import JobFailure

ARMS_LENGTH = "arm's-length "


async def load_selected_sales(ctx: RunContext, selection: SalesSelection) -> SalesColumns:
    await ctx.progress("loading sales", percent=5)
    async with ctx.sessions() as session:
        sales = await load_sales(
            session,
            ctx.county_id,
            date_from=selection.sale_date_from,
            date_to=selection.sale_date_to,
            property_class=selection.property_class,
            zip_codes=selection.zip_codes,
            neighborhoods=selection.neighborhoods,
            arms_length_only=selection.arms_length_only,
        )
    if len(sales) == 0:
        raise JobFailure(
            "NO_SALES",
            f"no {ARMS_LENGTH if selection.arms_length_only else ''}sales in {ctx.county_id} "
            f"match the selection ({selection.describe()})",
        )
    await ctx.progress("computing", processed=len(sales), total=len(sales), percent=40)
    return sales
