"""Bad input is refused with BAD_USER_INPUT naming the field, and leaves nothing behind."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from tests.conftest import RunningApp
from tests.graphql_client import gql
from tests.test_job_flow import mutation

JOB_TABLES = ("report_jobs", "market_analysis_jobs", "gis_export_jobs", "valuation_jobs")

STUDY = {"reportType": "SALES_RATIO_STUDY", "countyId": "TESTCO"}

CASES: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("malformed job id", 'query { job(id: "not-a-uuid") { id } }', None, "id"),
    (
        "unknown report type",
        mutation("runReport"),
        {"input": {"reportType": "SALES_RATIO", "countyId": "TESTCO"}},
        "reportType",
    ),
    (
        "missing required field",
        mutation("runReport"),
        {"input": {"countyId": "TESTCO"}},
        "reportType",
    ),
    (
        "unknown county",
        mutation("runReport"),
        {"input": {"reportType": "SALES_RATIO_STUDY", "countyId": "NOPE"}},
        "countyId",
    ),
    (
        "unknown parameter",
        mutation("runReport"),
        {"input": {**STUDY, "parameters": {"salesRatioStudy": {"grupBy": "NEIGHBORHOOD"}}}},
        "grupBy",
    ),
    (
        "bad parameter value",
        mutation("runReport"),
        {"input": {**STUDY, "parameters": {"salesRatioStudy": {"trim": "SOMETIMES"}}}},
        "parameters.salesRatioStudy.trim",
    ),
    (
        "parameter out of range",
        mutation("runReport"),
        {"input": {**STUDY, "parameters": {"salesRatioStudy": {"iqrFactor": 0}}}},
        "parameters.salesRatioStudy.iqrFactor",
    ),
    (
        "parameters of another report type",
        mutation("runReport"),
        {"input": {**STUDY, "parameters": {"assessmentRoll": {"taxYear": 2024}}}},
        "parameters.assessmentRoll",
    ),
    (
        "two parameter branches",
        mutation("runReport"),
        {"input": {**STUDY, "parameters": {"salesRatioStudy": {}, "assessmentRoll": {}}}},
        "ReportParameters",
    ),
    (
        "sale dates out of order",
        mutation("runReport"),
        {
            "input": {
                **STUDY,
                "parameters": {
                    "salesRatioStudy": {
                        "sales": {"saleDateFrom": "2024-06-01", "saleDateTo": "2024-01-01"}
                    }
                },
            }
        },
        "parameters.salesRatioStudy.sales",
    ),
    (
        "tax year without assessments",
        mutation("runReport"),
        {
            "input": {
                "reportType": "ASSESSMENT_ROLL",
                "countyId": "TESTCO",
                "parameters": {"assessmentRoll": {"taxYear": 1990}},
            }
        },
        "parameters.assessmentRoll.taxYear",
    ),
    (
        "class filter without an IAAO COD range",
        mutation("runReport"),
        {
            "input": {
                **STUDY,
                "parameters": {"salesRatioStudy": {"sales": {"propertyClass": "farm"}}},
            }
        },
        "parameters.salesRatioStudy.codStandard",
    ),
    (
        "NUL character in a string",
        mutation("runReport"),
        {"input": {"reportType": "SALES_RATIO_STUDY", "countyId": "TEST\u0000CO"}},
        "countyId",
    ),
    (
        "NUL character in a filter",
        'query { jobs(countyId: "TEST\\u0000CO") { totalCount } }',
        None,
        "countyId",
    ),
    (
        "unknown analysis type",
        mutation("runMarketAnalysis"),
        {"input": {"analysisType": "VIBES", "countyId": "TESTCO"}},
        "analysisType",
    ),
    (
        "market parameters of another analysis type",
        mutation("runMarketAnalysis"),
        {
            "input": {
                "analysisType": "PRICE_TREND",
                "countyId": "TESTCO",
                "parameters": {"timeAdjustment": {"method": "LOGLINEAR"}},
            }
        },
        "parameters.timeAdjustment",
    ),
    (
        "unknown export format",
        mutation("runGisExport"),
        {"input": {"exportFormat": "DWG", "countyId": "TESTCO", "layers": ["PARCELS"]}},
        "exportFormat",
    ),
    (
        "unknown layer",
        mutation("runGisExport"),
        {"input": {"exportFormat": "GEOJSON", "countyId": "TESTCO", "layers": ["ROADS"]}},
        "layers",
    ),
    (
        "zoning layer of a county without zoning",
        mutation("runGisExport"),
        {
            "input": {
                "exportFormat": "GEOJSON",
                "countyId": "TESTCO",
                "layers": ["PARCELS", "ZONING"],
            }
        },
        "layers[1]: county TESTCO has no zoning layer",
    ),
    (
        "empty layers",
        mutation("runGisExport"),
        {"input": {"exportFormat": "GEOJSON", "countyId": "TESTCO", "layers": []}},
        "layers",
    ),
    (
        "bbox out of range",
        mutation("runGisExport"),
        {
            "input": {
                "exportFormat": "GEOJSON",
                "countyId": "TESTCO",
                "layers": ["PARCELS"],
                "areaOfInterest": {
                    "bbox": {"minLon": -122.5, "minLat": 47.0, "maxLon": -122.0, "maxLat": 95.0}
                },
            }
        },
        "areaOfInterest.bbox.maxLat",
    ),
    (
        "geometry that is not a polygon",
        mutation("runGisExport"),
        {
            "input": {
                "exportFormat": "GEOJSON",
                "countyId": "TESTCO",
                "layers": ["PARCELS"],
                "areaOfInterest": {"geometry": {"type": "Point", "coordinates": [0, 0]}},
            }
        },
        "areaOfInterest.geometry",
    ),
    (
        "unclosed polygon ring",
        mutation("runGisExport"),
        {
            "input": {
                "exportFormat": "GEOJSON",
                "countyId": "TESTCO",
                "layers": ["PARCELS"],
                "areaOfInterest": {
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1.5]]],
                    }
                },
            }
        },
        "areaOfInterest.geometry",
    ),
    (
        "unknown parcel",
        mutation("runValuation"),
        {"input": {"countyId": "TESTCO", "propertyId": "NO-SUCH-PARCEL"}},
        "propertyId",
    ),
    (
        "county-wide comparables",
        mutation("runValuation"),
        {"input": {"countyId": "TESTCO", "parameters": {"method": "COMPARABLES"}}},
        "parameters.method",
    ),
    (
        "no output format",
        mutation("runReport"),
        {"input": {**STUDY, "parameters": {"salesRatioStudy": {"outputFormats": []}}}},
        "parameters.salesRatioStudy.outputFormats: must name at least one format; "
        "allowed: CSV, XLSX, HTML",
    ),
    (
        "an output format twice",
        mutation("runReport"),
        {
            "input": {
                **STUDY,
                "parameters": {"salesRatioStudy": {"outputFormats": ["XLSX", "XLSX"]}},
            }
        },
        "parameters.salesRatioStudy.outputFormats: XLSX is given twice",
    ),
    (
        "an HTML roll",
        mutation("runReport"),
        {
            "input": {
                "reportType": "ASSESSMENT_ROLL",
                "countyId": "TESTCO",
                "parameters": {"assessmentRoll": {"outputFormats": ["CSV", "HTML"]}},
            }
        },
        "parameters.assessmentRoll.outputFormats: HTML is not offered for this type "
        "(it has no printable report); allowed: CSV, XLSX",
    ),
    (
        "an HTML market analysis",
        mutation("runMarketAnalysis"),
        {
            "input": {
                "analysisType": "TIME_ADJUSTMENT",
                "countyId": "TESTCO",
                "parameters": {"timeAdjustment": {"outputFormats": ["HTML"]}},
            }
        },
        "parameters.timeAdjustment.outputFormats: HTML is not offered",
    ),
    (
        "an output format that is not one",
        mutation("runMarketAnalysis"),
        {
            "input": {
                "analysisType": "PRICE_TREND",
                "countyId": "TESTCO",
                "parameters": {"priceTrend": {"outputFormats": ["PDF"]}},
            }
        },
        "outputFormats",
    ),
    (
        "oversized parameters",
        mutation("runReport"),
        {
            "input": {
                **STUDY,
                "parameters": {"salesRatioStudy": {"sales": {"propertyClass": "x" * 20_000}}},
            }
        },
        "parameters",
    ),
]


@pytest.mark.parametrize(("case", "query", "variables", "field"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_is_refused_and_leaves_nothing(
    app_server: RunningApp,
    county: str,
    engine: AsyncEngine,
    redis: Redis,
    settings: Settings,
    case: str,
    query: str,
    variables: dict[str, Any] | None,
    field: str,
) -> None:
    body = await gql(app_server.url, query, variables)
    assert body.get("errors"), body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert field in error["message"], error["message"]
    async with engine.connect() as conn:
        for table in JOB_TABLES:
            assert (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar() == 0
    assert await redis.zcard(settings.queue_name) == 0
