"""Property: whatever a client sends as GraphQL input, the answer is data or a client error.

Hypothesis generates run inputs (known and random names, out-of-range numbers, arbitrary
JSON in place of the typed `parameters` and `areaOfInterest`, long and odd strings) and
query arguments; a
server error is any 5xx, or an error coded INTERNAL_SERVER_ERROR / SERVICE_UNAVAILABLE, or
one without a code. The inputs include what JSON allows and nothing can store: NaN and
Infinity, lone UTF-16 surrogates, datetimes and cursors whose dates overflow in UTC,
JSON nested past any parser. A second property sends arbitrary bytes as the body. The
server runs in the test's event loop; the generated requests come from a thread, with a
synchronous client.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.builders import issue_token
from tests.conftest import RunningApp
from tests.graphql_client import bearer
from tests.test_job_flow import mutation

EXAMPLES = 200
SERVER_ERRORS = {"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", None}

ints = st.integers(-(2**40), 2**40) | st.integers(-3, 12)
surrogates = st.characters(categories=["Cs"])
strings = (
    st.text(max_size=80)
    | st.text(max_size=400)
    | st.text(st.characters(categories=["L", "N", "Cs"]), max_size=20)
)
deeply_nested = st.integers(30, 900).map(lambda depth: _nest(depth))
json_values = (
    st.recursive(
        st.none()
        | st.booleans()
        | ints
        | st.floats()  # NaN and +-Infinity too: json.dumps sends them as NaN / Infinity
        | st.text(max_size=40)
        | surrogates,
        lambda inner: st.lists(inner, max_size=6) | st.dictionaries(strings, inner, max_size=4),
        max_leaves=40,
    )
    | deeply_nested
)
offsets = st.timedeltas(dt.timedelta(hours=-14), dt.timedelta(hours=14)).map(dt.timezone)
cursors = st.tuples(
    st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59), timezones=offsets),
    st.uuids(),
).map(
    lambda pair: base64.urlsafe_b64encode(
        json.dumps([pair[0].isoformat(), str(pair[1])]).encode()
    ).decode()
)
enum_values = st.sampled_from(["NONE", "IQR", "NEIGHBORHOOD", "HEDONIC", "COMPARABLES", "YEAR"])
known_parameters = st.dictionaries(
    st.sampled_from(
        ["taxYear", "groupBy", "trim", "iqrFactor", "sales", "method", "k", "period", "x"]
    ),
    json_values | enum_values,
    max_size=4,
)
branches = st.dictionaries(
    st.sampled_from(["salesRatioStudy", "assessmentRoll", "priceTrend", "timeAdjustment", "x"]),
    known_parameters | json_values,
    max_size=2,
)
geometry = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["Polygon", "MultiPolygon", "Feature", "Point", "x"]),
        "coordinates": st.lists(
            st.floats(-400, 400) | st.lists(json_values, max_size=5), max_size=6
        ),
    }
)
corners = st.floats(-400, 400) | json_values
area = (
    st.fixed_dictionaries(
        {
            "bbox": st.fixed_dictionaries(
                {"minLon": corners, "minLat": corners, "maxLon": corners, "maxLat": corners}
            )
        }
    )
    | st.fixed_dictionaries({"geometry": geometry | json_values})
    | st.dictionaries(st.sampled_from(["bbox", "geometry"]), json_values)
)
counties = st.sampled_from(["TESTCO", "testco", ""]) | strings
controls = {
    "priority": ints,
    "retentionDays": ints,
    "idempotencyKey": strings,
    "scheduledFor": st.datetimes(
        dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31), timezones=st.none() | offsets
    ).map(dt.datetime.isoformat)
    | strings,
    "parameters": branches | known_parameters | json_values,
}


def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def run_input(required: dict[str, Any], **optional: Any) -> Any:
    """The variables of a run mutation: `input` with the required and some optional fields."""
    fields = st.fixed_dictionaries(required, optional={**controls, **optional})
    return fields.map(lambda value: {"input": value})


OPERATIONS = st.one_of(
    st.tuples(
        st.just(mutation("runReport")),
        run_input(
            {
                "reportType": st.sampled_from(["SALES_RATIO_STUDY", "ASSESSMENT_ROLL"]) | strings,
                "countyId": counties,
            }
        ),
    ),
    st.tuples(
        st.just(mutation("runMarketAnalysis")),
        run_input(
            {
                "analysisType": st.sampled_from(["PRICE_TREND", "TIME_ADJUSTMENT"]) | strings,
                "countyId": counties,
            }
        ),
    ),
    st.tuples(
        st.just(mutation("runGisExport")),
        run_input(
            {
                "exportFormat": st.sampled_from(["GEOJSON", "KML", "CSV"]) | strings,
                "countyId": counties,
                "layers": st.lists(st.sampled_from(["PARCELS", "SALES"]) | strings, max_size=20),
            },
            areaOfInterest=area | json_values,
        ),
    ),
    st.tuples(
        st.just(mutation("runValuation")),
        run_input({"countyId": counties}, propertyId=strings),
    ),
    st.tuples(
        st.just("query ($id: ID!) { job(id: $id) { id status } }"),
        st.fixed_dictionaries({"id": strings | st.uuids().map(str)}),
    ),
    st.tuples(
        st.just(
            "query ($first: Int, $after: String, $c: String) "
            "{ jobs(first: $first, after: $after, countyId: $c) { totalCount } }"
        ),
        st.fixed_dictionaries(
            {"first": ints, "after": st.none() | strings | cursors, "c": strings}
        ),
    ),
)


def fuzz(base_url: str, headers: dict[str, str]) -> tuple[int, list[Any]]:
    cases = 0
    server_errors: list[Any] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        # Fresh cases on a developer's machine; the same cases in CI, so a red build is
        # reproducible and never comes from a draw of the dice.
        derandomize=os.environ.get("CI") == "true",
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(OPERATIONS)
    def one(operation: tuple[str, dict[str, Any]]) -> None:
        nonlocal cases
        query, variables = operation
        cases += 1
        body = json.dumps({"query": query, "variables": variables})
        response = client.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
        if response.status_code >= 500:
            server_errors.append((variables, response.status_code, response.text[:300]))
            return
        if response.status_code != 200:
            return
        for error in response.json().get("errors") or []:
            if (error.get("extensions") or {}).get("code") in SERVER_ERRORS:
                server_errors.append((variables, error))

    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        one()
    return cases, server_errors


async def test_generated_inputs_never_cause_a_server_error(
    auth_server: RunningApp, engine: AsyncEngine, county: str
) -> None:
    headers = bearer(await issue_token(engine, "fuzzer", ["admin"]))
    cases, server_errors = await asyncio.to_thread(fuzz, auth_server.url, headers)
    print(f"\nfuzzed GraphQL inputs: {cases} cases, {len(server_errors)} server errors")
    assert cases >= EXAMPLES
    assert not server_errors, server_errors[:5]


def fuzz_bodies(base_url: str, headers: dict[str, str]) -> tuple[int, list[Any]]:
    cases = 0
    server_errors: list[Any] = []

    @settings(
        max_examples=EXAMPLES // 2,
        deadline=None,
        database=None,
        derandomize=os.environ.get("CI") == "true",
    )
    @given(
        st.binary(max_size=300)
        | st.text(max_size=300).map(str.encode)
        | st.builds(
            lambda q, junk: (json.dumps({"query": q})[:-1] + junk).encode(),
            st.sampled_from(["{ counties { countyId } }", "subscription { jobsUpdated { id } }"]),
            st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
        ),
        st.sampled_from(["application/json", "text/plain", "multipart/form-data", ""]),
        st.sampled_from(["POST", "GET"]),
    )
    def one(body: bytes, content_type: str, method: str) -> None:
        nonlocal cases
        cases += 1
        if method == "GET":
            response = client.get("/graphql", params={"query": body.decode("latin-1")})
        else:
            response = client.post("/graphql", content=body, headers={"content-type": content_type})
        if response.status_code >= 500 or "json" not in response.headers.get("content-type", ""):
            server_errors.append((body, response.status_code, response.text[:300]))

    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        one()
    return cases, server_errors


async def test_arbitrary_bodies_get_json_answers_never_a_server_error(
    auth_server: RunningApp, engine: AsyncEngine
) -> None:
    headers = bearer(await issue_token(engine, "fuzzer", ["admin"]))
    cases, server_errors = await asyncio.to_thread(fuzz_bodies, auth_server.url, headers)
    print(f"\nfuzzed request bodies: {cases} cases, {len(server_errors)} server errors")
    assert cases >= EXAMPLES // 2
    assert not server_errors, server_errors[:5]
