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

CASES: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("malformed job id", 'query { job(id: "not-a-uuid") { id } }', None, "id"),
    (
        "unknown report type",
        mutation("runReport"),
        {"input": {"reportType": "sales_ratio", "countyId": "TESTCO"}},
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
        {"input": {"reportType": "sales_ratio_study", "countyId": "NOPE"}},
        "countyId",
    ),
    (
        "unknown parameter",
        mutation("runReport"),
        {
            "input": {
                "reportType": "sales_ratio_study",
                "countyId": "TESTCO",
                "parameters": {"grup_by": "neighborhood"},
            }
        },
        "parameters.grup_by",
    ),
    (
        "bad parameter value",
        mutation("runReport"),
        {
            "input": {
                "reportType": "sales_ratio_study",
                "countyId": "TESTCO",
                "parameters": {"trim": "sometimes"},
            }
        },
        "parameters.trim",
    ),
    (
        "tax year without assessments",
        mutation("runReport"),
        {
            "input": {
                "reportType": "assessment_roll",
                "countyId": "TESTCO",
                "parameters": {"tax_year": 1990},
            }
        },
        "parameters.tax_year",
    ),
    (
        "class filter without an IAAO COD range",
        mutation("runReport"),
        {
            "input": {
                "reportType": "sales_ratio_study",
                "countyId": "TESTCO",
                "parameters": {"property_class": "farm"},
            }
        },
        "parameters.cod_standard",
    ),
    (
        "NUL character in a string",
        mutation("runReport"),
        {"input": {"reportType": "sales_ratio_study", "countyId": "TEST\u0000CO"}},
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
        {"input": {"analysisType": "vibes", "countyId": "TESTCO"}},
        "analysisType",
    ),
    (
        "unknown export format",
        mutation("runGisExport"),
        {"input": {"exportFormat": "DWG", "countyId": "TESTCO", "layers": ["parcels"]}},
        "exportFormat",
    ),
    (
        "empty layers",
        mutation("runGisExport"),
        {"input": {"exportFormat": "GeoJSON", "countyId": "TESTCO", "layers": []}},
        "layers",
    ),
    (
        "bbox out of range",
        mutation("runGisExport"),
        {
            "input": {
                "exportFormat": "GeoJSON",
                "countyId": "TESTCO",
                "layers": ["parcels"],
                "areaOfInterest": {"type": "bbox", "coordinates": [-122.5, 47.0, -122.0, 95.0]},
            }
        },
        "areaOfInterest",
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
        {"input": {"countyId": "TESTCO", "parameters": {"method": "comparables"}}},
        "parameters.method",
    ),
    (
        "oversized parameters",
        mutation("runReport"),
        {
            "input": {
                "reportType": "sales_ratio_study",
                "countyId": "TESTCO",
                "parameters": {"property_class": "x" * 20_000},
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
