"""Job templates through GraphQL: save, list, change, delete, run with overrides, and who
may do which, against the real server and database."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.builders import issue_token
from tests.conftest import RunningApp
from tests.graphql_client import bearer, gql, gql_data

TEMPLATE = """id kind name description owner visibility countyId createdAt updatedAt
  input { report { countyId reportType name visibility priority
    parameters { salesRatioStudy { groupBy iqrFactor trim } assessmentRoll { taxYear } } } }"""
CREATE = f"""
mutation($name: String!, $input: JobRunInput!, $description: String) {{
  createJobTemplate(name: $name, input: $input, description: $description) {{ {TEMPLATE} }}
}}"""
UPDATE = f"""
mutation($id: ID!, $name: String, $input: JobRunInput) {{
  updateJobTemplate(id: $id, name: $name, input: $input) {{ {TEMPLATE} }}
}}"""
DELETE = "mutation($id: ID!) { deleteJobTemplate(id: $id) }"
LIST = f"query($kind: JobKind) {{ jobTemplates(kind: $kind) {{ {TEMPLATE} }} }}"
ONE = f"query($id: ID!) {{ jobTemplate(id: $id) {{ {TEMPLATE} }} }}"
RUN = """
mutation($id: ID!, $overrides: JobRunOverrides) {
  runFromTemplate(templateId: $id, overrides: $overrides) {
    id kind name status priority templateId scheduleId late visibility
    ... on ReportJob { reportType parameters { salesRatioStudy { groupBy iqrFactor } } }
  }
}"""
JOB = "query($id: ID!) { job(id: $id) { id templateId } }"
COUNT = "query { jobs { totalCount } }"

STUDY = {
    "countyId": "TESTCO",
    "reportType": "SALES_RATIO_STUDY",
    "name": "Neighborhood ratio study",
    "parameters": {"salesRatioStudy": {"groupBy": "NEIGHBORHOOD", "iqrFactor": 2.0}},
}


def error(body: dict[str, Any]) -> tuple[str, str | None]:
    assert body.get("errors"), body
    extensions = body["errors"][0]["extensions"]
    return extensions["code"], extensions.get("field")


async def test_template_crud_and_run_with_overrides(app_server: RunningApp, county: str) -> None:
    url = app_server.url
    saved = (
        await gql_data(
            url,
            CREATE,
            {"name": "Monthly study", "input": {"report": STUDY}, "description": "for the board"},
        )
    )["createJobTemplate"]
    assert saved["kind"] == "REPORT"
    assert saved["name"] == "Monthly study"
    assert saved["description"] == "for the board"
    assert saved["countyId"] == county
    assert saved["visibility"] == "PRIVATE"
    # The saved input reads back typed, with GraphQL's defaults filled in.
    report = saved["input"]["report"]
    assert (report["reportType"], report["name"], report["priority"]) == (
        "SALES_RATIO_STUDY",
        "Neighborhood ratio study",
        0,
    )
    assert report["visibility"] == "PRIVATE"
    study = report["parameters"]["salesRatioStudy"]
    assert (study["groupBy"], study["iqrFactor"], study["trim"]) == ("NEIGHBORHOOD", 2.0, "IQR")
    assert report["parameters"]["assessmentRoll"] is None
    copy = await gql_data(url, CREATE, {"name": "Copy", "input": {"report": STUDY}})
    assert copy["createJobTemplate"]["input"] == saved["input"]

    listed = (await gql_data(url, LIST, {"kind": "REPORT"}))["jobTemplates"]
    assert [t["name"] for t in listed] == ["Copy", "Monthly study"]
    assert (await gql_data(url, LIST, {"kind": "VALUATION"}))["jobTemplates"] == []

    # Overrides replace the fields they give; the rest is the saved input.
    job = (
        await gql_data(
            url,
            RUN,
            {
                "id": saved["id"],
                "overrides": {"report": {"priority": 5, "visibility": "COUNTY"}},
            },
        )
    )["runFromTemplate"]
    assert job["templateId"] == saved["id"]
    assert job["scheduleId"] is None and job["late"] is False
    assert job["status"] == "PENDING"
    assert job["name"] == "Neighborhood ratio study"
    assert (job["priority"], job["visibility"]) == (5, "COUNTY")
    assert job["parameters"]["salesRatioStudy"] == {"groupBy": "NEIGHBORHOOD", "iqrFactor": 2.0}

    # A given `parameters` replaces the saved one whole (its own defaults apply).
    other = (
        await gql_data(
            url,
            RUN,
            {
                "id": saved["id"],
                "overrides": {"report": {"parameters": {"salesRatioStudy": {"iqrFactor": 3.0}}}},
            },
        )
    )["runFromTemplate"]
    assert other["parameters"]["salesRatioStudy"] == {"groupBy": "NONE", "iqrFactor": 3.0}
    assert other["priority"] == 0

    updated = (
        await gql_data(
            url,
            UPDATE,
            {
                "id": saved["id"],
                "name": "Monthly roll",
                "input": {"report": {"countyId": county, "reportType": "ASSESSMENT_ROLL"}},
            },
        )
    )["updateJobTemplate"]
    assert updated["name"] == "Monthly roll"
    assert updated["description"] == "for the board"
    assert updated["input"]["report"]["reportType"] == "ASSESSMENT_ROLL"
    assert updated["updatedAt"] > saved["updatedAt"]
    rolled = (await gql_data(url, RUN, {"id": saved["id"]}))["runFromTemplate"]
    assert rolled["reportType"] == "ASSESSMENT_ROLL"

    assert (await gql_data(url, DELETE, {"id": saved["id"]}))["deleteJobTemplate"] == saved["id"]
    assert (await gql_data(url, ONE, {"id": saved["id"]}))["jobTemplate"] is None
    # The jobs keep the id of the template they came from.
    assert (await gql_data(url, JOB, {"id": job["id"]}))["job"]["templateId"] == saved["id"]
    assert error(await gql(url, RUN, {"id": saved["id"]}))[0] == "NOT_FOUND"
    assert error(await gql(url, DELETE, {"id": saved["id"]}))[0] == "NOT_FOUND"


BAD_TEMPLATES = [
    ("out of range", {"report": {**STUDY, "parameters": {"salesRatioStudy": {"iqrFactor": 0}}}},
     "report.parameters.salesRatioStudy.iqrFactor"),
    ("unknown county", {"report": {**STUDY, "countyId": "NOPE"}}, "report.countyId"),
    ("branch of another type", {"report": {**STUDY, "parameters": {"assessmentRoll": {}}}},
     "report.parameters.assessmentRoll"),
    ("one-off control", {"report": {**STUDY, "scheduledFor": "2030-01-01T00:00:00Z"}},
     "report.scheduledFor"),
    ("bad layer list", {"gisExport": {"countyId": "TESTCO", "exportFormat": "CSV", "layers": []}},
     "gisExport.layers"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "run", "field"), BAD_TEMPLATES, ids=[c[0] for c in BAD_TEMPLATES])
async def test_bad_template_names_the_field_and_saves_nothing(
    app_server: RunningApp, county: str, engine: AsyncEngine, case: str, run: Any, field: str
) -> None:
    body = await gql(app_server.url, CREATE, {"name": "t", "input": run})
    assert error(body) == ("BAD_USER_INPUT", field), body
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM job_templates")) == 0


async def test_blank_name_and_two_branches_are_refused(app_server: RunningApp, county: str) -> None:
    body = await gql(app_server.url, CREATE, {"name": " ", "input": {"report": STUDY}})
    assert error(body) == ("BAD_USER_INPUT", "name")
    both = {"report": STUDY, "valuation": {"countyId": county}}
    body = await gql(app_server.url, CREATE, {"name": "t", "input": both})
    assert body["errors"] and "exactly one" in body["errors"][0]["message"].lower(), body


async def test_bad_overrides_name_the_field_and_start_nothing(
    app_server: RunningApp, county: str
) -> None:
    url = app_server.url
    saved = (await gql_data(url, CREATE, {"name": "t", "input": {"report": STUDY}}))[
        "createJobTemplate"
    ]
    cases = [
        ({"report": {"parameters": {"salesRatioStudy": {"iqrFactor": -1}}}},
         "report.parameters.salesRatioStudy.iqrFactor"),
        ({"report": {"reportType": "ASSESSMENT_ROLL"}}, "report.parameters.salesRatioStudy"),
        ({"report": {"priority": 10}}, "report.priority"),
        ({"valuation": {"countyId": county}}, "overrides.valuation"),
    ]  # fmt: skip
    for overrides, field in cases:
        body = await gql(url, RUN, {"id": saved["id"], "overrides": overrides})
        assert error(body) == ("BAD_USER_INPUT", field), (overrides, body)
    assert error(await gql(url, RUN, {"id": "nope"})) == ("BAD_USER_INPUT", "templateId")
    assert (await gql_data(url, COUNT))["jobs"]["totalCount"] == 0


async def test_templates_follow_job_visibility_and_ownership(
    auth_server: RunningApp, county: str, engine: AsyncEngine
) -> None:
    url = auth_server.url
    alice = bearer(await issue_token(engine, "alice", ["report:run"], team="north"))
    dave = bearer(await issue_token(engine, "dave", ["report:run"], team="north"))
    reader = bearer(await issue_token(engine, "rita", ["report:read"], team="north"))
    bob = bearer(await issue_token(engine, "bob", ["report:run"], team="south"))
    root = bearer(await issue_token(engine, "root", ["admin"]))

    async def call(who: dict[str, str], query: str, **variables: Any) -> dict[str, Any]:
        return await gql(url, query, variables, **who)

    team = {"report": {**STUDY, "visibility": "TEAM"}}
    created = await call(alice, CREATE, name="Team study", input=team)
    tid = created["data"]["createJobTemplate"]["id"]
    private = await call(alice, CREATE, name="Mine", input={"report": STUDY})
    pid = private["data"]["createJobTemplate"]["id"]

    def names(body: dict[str, Any]) -> list[str]:
        return [t["name"] for t in body["data"]["jobTemplates"]]

    assert names(await call(alice, LIST)) == ["Mine", "Team study"]
    assert names(await call(dave, LIST)) == ["Team study"]
    assert names(await call(reader, LIST)) == ["Team study"]
    assert names(await call(bob, LIST)) == []
    assert names(await call(root, LIST)) == ["Mine", "Team study"]
    assert (await call(bob, ONE, id=tid))["data"]["jobTemplate"] is None
    assert (await call(dave, ONE, id=pid))["data"]["jobTemplate"] is None

    # A teammate runs it as their own job, but may not change or delete it.
    job = (await call(dave, RUN, id=tid))["data"]["runFromTemplate"]
    assert job["templateId"] == tid and job["visibility"] == "TEAM"
    assert error(await call(dave, UPDATE, id=tid, name="x"))[0] == "FORBIDDEN"
    assert error(await call(dave, DELETE, id=tid))[0] == "FORBIDDEN"
    assert error(await call(reader, RUN, id=tid))[0] == "FORBIDDEN"
    assert error(await call(bob, RUN, id=tid))[0] == "NOT_FOUND"
    assert error(await call(bob, UPDATE, id=tid, name="x"))[0] == "NOT_FOUND"
    assert error(await gql(url, LIST))[0] == "UNAUTHENTICATED"

    renamed = await call(root, UPDATE, id=tid, name="Renamed by admin")
    assert renamed["data"]["updateJobTemplate"]["owner"] == "alice"
    assert (await call(alice, DELETE, id=tid))["data"]["deleteJobTemplate"] == tid
