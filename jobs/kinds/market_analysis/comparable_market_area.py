"""Comparable market areas: neighborhoods clustered by time-adjusted price per sqft and trend,
returned as typed areas and as a GeoJSON layer of their parcels' outlines.

The numerics are in `jobs.stats.market_areas`; this module reads the sales and the parcels,
time-adjusts with the county's own index and writes the files. What it does with thin data
(README, "Comparable market areas"): sales without a living area or a neighborhood, and
neighborhoods below `minSalesPerNeighborhood`, are left out and said so in `warnings`; fewer
neighborhoods than areas asked for give one area per neighborhood, with a warning; no
neighborhood with enough sales fails the job with INSUFFICIENT_SALES.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Text, cast, select

from app.models import Parcel
from jobs.context import RunContext
from jobs.kinds.market_analysis.params import ComparableMarketAreaParams
from jobs.kinds.market_analysis.selection import load_selected_sales
from jobs.outputs import ResultFiles
from jobs.spec import JobFailure
from jobs.stats.market import (
    InsufficientSalesError,
    TrendFit,
    log_linear_trend,
    time_adjustment_factors,
)
from jobs.stats.market_areas import NeighborhoodMarket, cluster_markets, neighborhood_markets

GEOJSON = "application/geo+json"
NEIGHBORHOODS_HEADER = [
    "neighborhood",
    "area_id",
    "sale_count",
    "median_price_per_sqft",
    "annual_trend_percent",
]
AREAS_HEADER = [
    "id",
    "name",
    "neighborhoods",
    "sale_count",
    "parcel_count",
    "median_price_per_sqft",
    "median_sale_price",
    "annual_trend_percent",
]
EXCLUDED_HEADER = ["neighborhood", "sale_count"]


def _trend(fit: TrendFit | None) -> dict[str, Any]:
    return {
        "annual_trend_percent": fit.annual_trend_pct if fit else None,
        "annual_trend_ci": (
            {"lower": fit.ci_low_pct, "upper": fit.ci_high_pct, "level": fit.level} if fit else None
        ),
    }


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


async def _parcel_shapes(
    ctx: RunContext, names: list[str]
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.object_]]:
    """The neighborhood and shapely geometry of every parcel in `names`."""
    async with ctx.sessions() as session:
        rows = (
            await session.execute(
                select(Parcel.neighborhood, cast(Parcel.geometry, Text)).where(
                    Parcel.county_id == ctx.county_id, Parcel.neighborhood.in_(names)
                )
            )
        ).all()
    hoods = np.array([r[0] for r in rows], dtype=object)
    geoms = shapely.from_geojson(np.array([r[1] for r in rows], dtype=object))
    return hoods, geoms


def area_outline(geoms: npt.NDArray[np.object_]) -> BaseGeometry | None:
    """The union of the polygons, joined by the convex hull of the parcels that are points
    (imported by lon,lat), whose extent is all a point layer can say."""
    present = geoms[~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)]
    if present.size == 0:
        return None
    points = shapely.get_type_id(present) == shapely.GeometryType.POINT.value
    parts = list(present[~points])
    if points.any():
        parts.append(shapely.convex_hull(shapely.multipoints(present[points])))
    outline = shapely.union_all(np.array(parts, dtype=object))
    return shapely.orient_polygons(outline, exterior_cw=False)  # RFC 7946 section 3.1.6


def _write_geojson(path: Path, features: list[tuple[BaseGeometry | None, dict[str, Any]]]) -> int:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write('{"type":"FeatureCollection","features":[\n')
        handle.write(
            ",\n".join(
                '{"type":"Feature","geometry":'
                + (shapely.to_geojson(geometry) if geometry is not None else "null")
                + ',"properties":'
                + json.dumps(properties, ensure_ascii=False, allow_nan=False)
                + "}"
                for geometry, properties in features
            )
        )
        handle.write("\n]}\n")
    return len(features)


async def run(ctx: RunContext, params: ComparableMarketAreaParams) -> dict[str, Any]:
    sales = await load_selected_sales(ctx, params.sales)
    warnings: list[str] = []
    dates, prices = sales.sale_date, sales.sale_price
    valuation_date: dt.date = params.valuation_date or dates.max().astype(object)
    await ctx.progress("time-adjusting prices", processed=0, total=len(sales), percent=45)
    if dates.min() == dates.max():
        adjusted = prices
        warnings.append(
            f"every sale is dated {dates.min()}: prices are not time-adjusted and "
            "neighborhoods are compared on price level alone"
        )
    else:
        try:
            adjusted = time_adjustment_factors(
                dates, prices, valuation_date, params.time_adjustment
            ).adjusted_prices
        except InsufficientSalesError as exc:
            raise JobFailure("INSUFFICIENT_SALES", str(exc)) from None

    area, hood = sales.living_area_sqft, sales.neighborhood
    has_area = np.isfinite(area) & (area > 0)
    has_hood = (hood != None) & (hood != "")  # noqa: E711
    usable = has_area & has_hood & np.isfinite(adjusted) & (adjusted > 0)
    if (~has_area).any():
        warnings.append(
            f"{_counted(int((~has_area).sum()), 'sale')} without a living area left out"
        )
    if (has_area & ~has_hood).any():
        missing = int((has_area & ~has_hood).sum())
        warnings.append(f"{_counted(missing, 'sale')} of parcels without a neighborhood left out")
    # From here on, only the usable sales.
    dates, hood, area = dates[usable], hood[usable].astype(str), area[usable]
    ppsf, adjusted_ppsf, adjusted = prices[usable] / area, adjusted[usable] / area, adjusted[usable]
    markets = neighborhood_markets(hood, dates, ppsf, adjusted_ppsf)
    minimum = params.min_sales_per_neighborhood
    eligible = [m for m in markets if m.sales >= minimum]
    excluded = [m for m in markets if m.sales < minimum]
    if excluded:
        warnings.append(
            f"{_counted(len(excluded), 'neighborhood')} with fewer than {minimum} sales left "
            f"out: {', '.join(m.name for m in excluded)}"
        )
    if not eligible:
        raise JobFailure(
            "INSUFFICIENT_SALES",
            f"no neighborhood in {ctx.county_id} has {minimum} or more sales with a living "
            f"area ({params.sales.describe()}); lower minSalesPerNeighborhood or widen the sales",
        )
    await ctx.progress("clustering neighborhoods", percent=60)
    # neighborhood_markets sorts by name, so a sale's market is found by binary search.
    market_of_sale = np.searchsorted(np.array([m.name for m in markets]), hood)
    eligible_market = np.array([m.sales >= minimum for m in markets])
    in_eligible = eligible_market[market_of_sale]
    county_trend = log_linear_trend(dates[in_eligible], ppsf[in_eligible])
    undefined = [m.name for m in eligible if m.trend is None]
    if undefined and county_trend is not None:
        warnings.append(
            f"trend undefined (sales on too few dates) in {', '.join(undefined)}: "
            "the county's trend stands in"
        )
    clustering = cluster_markets(
        eligible,
        area_count=params.area_count,
        max_areas=params.max_areas,
        trend_weight=params.trend_weight,
        fallback_slope=county_trend.slope_per_year if county_trend else 0.0,
    )
    if clustering.chosen_by == "neighborhood_count" and len(eligible) > 1:
        few = f"only {_counted(len(eligible), 'neighborhood')} have enough sales"
        warnings.append(
            (
                f"{params.area_count} areas were asked for, but {few}"
                if params.area_count is not None
                else f"{few}, too few to choose an area count"
            )
            + ": each is a market area of its own"
        )

    k = clustering.area_count
    area_of_market = np.full(len(markets), -1, dtype=np.intp)
    area_of_market[eligible_market] = clustering.labels
    # Number the areas by the median the result shows: that of their sales.
    levels = [np.median(adjusted_ppsf[area_of_market[market_of_sale] == a]) for a in range(k)]
    rank = np.argsort(np.argsort(levels, kind="stable"))
    labels = rank[clustering.labels]
    area_of_market[eligible_market] = labels
    area_of_sale = area_of_market[market_of_sale]
    members: list[list[NeighborhoodMarket]] = [[] for _ in range(k)]
    for market, label in zip(eligible, labels.tolist(), strict=True):
        members[label].append(market)

    await ctx.progress("outlining areas", percent=75)
    parcel_hood, parcel_geom = await _parcel_shapes(ctx, [m.name for m in eligible])
    areas: list[dict[str, Any]] = []
    features: list[tuple[BaseGeometry | None, dict[str, Any]]] = []
    for label, group in enumerate(members):
        names = [m.name for m in group]
        rows = area_of_sale == label
        in_area = np.isin(parcel_hood, names)
        summary = {
            "id": f"MA-{label + 1}",
            "name": f"Market area {label + 1}",
            "neighborhoods": names,
            "sale_count": int(rows.sum()),
            "parcel_count": int(in_area.sum()),
            "median_price_per_sqft": float(np.median(adjusted_ppsf[rows])),
            "median_sale_price": float(np.median(adjusted[rows])),
            **_trend(log_linear_trend(dates[rows], ppsf[rows])),
        }
        areas.append(summary)
        properties = {k: v for k, v in summary.items() if k != "annual_trend_ci"}
        properties["neighborhoods"] = "; ".join(names)
        features.append((area_outline(parcel_geom[in_area]), properties))
    neighborhoods = [
        {
            "neighborhood": m.name,
            "area_id": areas[label]["id"],
            "sale_count": m.sales,
            "median_price_per_sqft": m.median_price_per_sqft,
            **_trend(m.trend),
        }
        for m, label in zip(eligible, labels.tolist(), strict=True)
    ]

    excluded_rows = [{"neighborhood": m.name, "sale_count": m.sales} for m in excluded]
    await ctx.progress("writing files", percent=90)
    layer = ctx.new_file("market_areas.geojson")
    layer_rows = _write_geojson(layer, features)
    async with ResultFiles(ctx, params.output_formats, "market_areas.xlsx") as out:
        await out.main_table(
            "market_area_neighborhoods.csv", "Neighborhoods", NEIGHBORHOODS_HEADER
        ).write([[n[key] for key in NEIGHBORHOODS_HEADER] for n in neighborhoods])
        out.records("Areas", AREAS_HEADER, (properties for _, properties in features))
        out.records("Excluded", EXCLUDED_HEADER, excluded_rows)
    return {
        "trends": [],
        **_trend(county_trend),
        "market_areas": {
            "valuation_date": valuation_date.isoformat(),
            "time_adjustment_method": params.time_adjustment,
            "area_count": clustering.area_count,
            "chosen_by": clustering.chosen_by,
            "silhouette": clustering.silhouette,
            "areas": areas,
            "neighborhoods": neighborhoods,
            "excluded_neighborhoods": excluded_rows,
        },
        "warnings": warnings,
        "files": [ctx.result_file(layer, GEOJSON, layer_rows), *out.files],
        "summary": {"sales": len(sales), "sales_used": int(usable.sum())},
    }
