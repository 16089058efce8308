"""Job names and descriptions: defaulted, limited, and searchable over real HTTP."""

from __future__ import annotations

from typing import Any

from tests.conftest import RunningApp
from tests.graphql_client import gql, gql_data

RUN = """mutation($input: RunReportInput!) {
  runReport(input: $input) { id name description changeCursor }
}"""
SEARCH = """query($search: String, $changedAfter: String) {
  jobs(search: $search, changedAfter: $changedAfter, first: 50) {
    totalCount edges { node { id name description } }
  }
}"""
RATIO = {"countyId": "TESTCO", "reportType": "SALES_RATIO_STUDY"}


async def run(app: RunningApp, **fields: Any) -> dict[str, Any]:
    data = await gql_data(app.url, RUN, {"input": {**RATIO, **fields}})
    return dict(data["runReport"])


async def found(app: RunningApp, search: str, changed_after: str | None = None) -> list[str]:
    data = await gql_data(app.url, SEARCH, {"search": search, "changedAfter": changed_after})
    return sorted(edge["node"]["name"] for edge in data["jobs"]["edges"])


async def test_default_name_comes_from_kind_county_and_year(
    app_server: RunningApp, county: str
) -> None:
    job = await run(app_server, parameters={"salesRatioStudy": {"taxYear": 2024}}, description=None)
    assert job["name"] == "Sales ratio study, TESTCO, 2024"
    assert job["description"] is None
    roll = await gql_data(
        app_server.url,
        'mutation { runReport(input: {countyId: "TESTCO", reportType: ASSESSMENT_ROLL}) { name } }',
    )
    assert roll["runReport"]["name"] == "Assessment roll, TESTCO"
    named = await run(app_server, name="  April board packet ", description="for the board")
    assert (named["name"], named["description"]) == ("April board packet", "for the board")


async def test_search_matches_name_or_description_literally(
    app_server: RunningApp, county: str
) -> None:
    before = await run(app_server, name="Older review")
    await run(app_server, name="North 100% review", description="parcels near the river")
    await run(app_server, name="South review", description="Board_2025 packet")
    await run(app_server, name="Board2025 draft")
    assert await found(app_server, "REVIEW") == [
        "North 100% review",
        "Older review",
        "South review",
    ]
    assert await found(app_server, "River") == ["North 100% review"]
    assert await found(app_server, "100%") == ["North 100% review"]
    assert await found(app_server, "board_") == ["South review"]
    assert await found(app_server, "%") == ["North 100% review"]
    assert await found(app_server, "nothing like it") == []
    assert await found(app_server, "review", changed_after=before["changeCursor"]) == [
        "North 100% review",
        "South review",
    ]


async def test_name_description_and_search_limits_are_bad_user_input(
    app_server: RunningApp, county: str
) -> None:
    cases = [
        (RUN, {"input": {**RATIO, "name": "x" * 201}}, "name", "at most 200 are allowed"),
        (RUN, {"input": {**RATIO, "name": "   "}}, "name", "blank"),
        (RUN, {"input": {**RATIO, "description": "x" * 2001}}, "description", "2000 are allowed"),
        (SEARCH, {"search": "x" * 201}, "search", "1 to 200"),
        (SEARCH, {"search": ""}, "search", "1 to 200"),
    ]
    for query, variables, field, allowed in cases:
        body = await gql(app_server.url, query, variables)
        error = body["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", body
        assert error["extensions"]["field"] == field
        assert allowed in error["message"]
    listed = await gql_data(app_server.url, "{ jobs { totalCount } }")
    assert listed["jobs"]["totalCount"] == 0
