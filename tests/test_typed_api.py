"""The typed API as a front-end sees it: introspection of the live server, and the generator
that turns the kinds' pydantic parameter models into GraphQL types."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any, Literal

import pytest
import strawberry
from graphql import get_introspection_query, parse, validate
from pydantic import Field
from typing_extensions import TypeAliasType

from jobs.kinds.report.params import SalesRatioStudyParams
from jobs.params import Params, SalesSelection
from schema.inputs import input_type, output_type, plain
from schema.schema import build_schema
from tests.conftest import RunningApp
from tests.graphql_client import gql_data

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def types(app_server: RunningApp) -> dict[str, dict[str, Any]]:
    """Every named type of the live schema's introspection, by name."""
    query = get_introspection_query(one_of=True, specified_by_url=True)
    data = await gql_data(app_server.url, query)
    return {t["name"]: t for t in data["__schema"]["types"]}


def named(ref: dict[str, Any]) -> tuple[str, str]:
    """The (kind, name) of a type reference, under its NON_NULL / LIST wrappers."""
    while ref["ofType"] is not None:
        ref = ref["ofType"]
    return ref["kind"], ref["name"]


def fields(types: dict[str, dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    t = types[name]
    return {f["name"]: f for f in (t["inputFields"] or t["fields"] or [])}


def test_no_input_field_is_json(types: dict[str, dict[str, Any]]) -> None:
    inputs = [t for t in types.values() if t["kind"] == "INPUT_OBJECT"]
    assert {"RunReportInput", "SalesRatioStudyParameters", "AreaOfInterest"} <= {
        t["name"] for t in inputs
    }
    untyped = [
        f"{t['name']}.{f['name']}"
        for t in inputs
        for f in t["inputFields"]
        if named(f["type"])[1] == "JSON"
    ]
    assert untyped == []
    # Outputs: JSON is left only as the optional `summary` beside typed results.
    json_outputs = {
        f["name"]
        for t in types.values()
        if t["kind"] in ("OBJECT", "INTERFACE") and not t["name"].startswith("__")
        for f in t["fields"]
        if named(f["type"])[1] == "JSON"
    }
    assert json_outputs == {"summary"}


def test_every_closed_choice_is_an_enum(types: dict[str, dict[str, Any]]) -> None:
    cases = {
        ("RunReportInput", "reportType"): "ReportType",
        ("RunMarketAnalysisInput", "analysisType"): "AnalysisType",
        ("RunGisExportInput", "exportFormat"): "ExportFormat",
        ("RunGisExportInput", "layers"): "GisLayer",
        ("ValuationParameters", "method"): "ValuationMethod",
        ("SalesRatioStudyParameters", "groupBy"): "RatioGroupBy",
        ("SalesRatioStudyParameters", "trim"): "OutlierTrim",
        ("SalesRatioStudyParameters", "codStandard"): "CodStandard",
        ("PriceTrendParameters", "period"): "TrendPeriod",
        ("TimeAdjustmentParameters", "method"): "TimeAdjustmentMethod",
    }
    for (owner, field), enum_name in cases.items():
        assert named(fields(types, owner)[field]["type"]) == ("ENUM", enum_name), (owner, field)
    values = {
        name: [v["name"] for v in types[name]["enumValues"]]
        for name in ("ReportType", "ExportFormat", "ValuationMethod", "RatioGroupBy")
    }
    assert values["ReportType"] == ["SALES_RATIO_STUDY", "ASSESSMENT_ROLL"]
    assert values["ExportFormat"] == ["GEOJSON", "SHAPEFILE", "KML", "CSV", "GEOPACKAGE"]
    assert values["ValuationMethod"] == ["HEDONIC", "COMPARABLES", "GRADIENT_BOOSTING"]
    assert values["RatioGroupBy"] == [
        "NONE",
        "PROPERTY_CLASS",
        "NEIGHBORHOOD",
        "ZIP_CODE",
        "SALE_PRICE_QUARTILE",
        "SALE_PRICE_DECILE",
    ]
    # The job types answer with the same enums.
    assert named(fields(types, "ReportJob")["reportType"]["type"]) == ("ENUM", "ReportType")
    assert named(fields(types, "GisExportJob")["layers"]["type"]) == ("ENUM", "GisLayer")


def test_completion_inside_sales_ratio_study_parameters(types: dict[str, dict[str, Any]]) -> None:
    """What GraphiQL offers after `parameters: {salesRatioStudy: {`: it completes from the
    input type of each field along the path, as introspection gives it."""
    parameters = fields(types, "RunReportInput")["parameters"]
    assert named(parameters["type"]) == ("INPUT_OBJECT", "ReportParameters")
    assert types["ReportParameters"]["isOneOf"] is True
    assert set(fields(types, "ReportParameters")) == {"salesRatioStudy", "assessmentRoll"}
    branch = fields(types, "ReportParameters")["salesRatioStudy"]
    kind, study_type = named(branch["type"])
    assert (kind, study_type) == ("INPUT_OBJECT", "SalesRatioStudyParameters")
    offered = fields(types, study_type)
    assert {"groupBy", "trim", "taxYear", "iqrFactor", "sales", "codStandard"} <= set(offered)
    assert offered["groupBy"]["defaultValue"] == "NONE"
    assert offered["trim"]["defaultValue"] == "IQR"
    assert offered["iqrFactor"]["defaultValue"] == "1.5"
    assert "(> 0, <= 10)" in offered["iqrFactor"]["description"]
    assert all(f["description"] for f in offered.values()), offered
    assert named(offered["sales"]["type"]) == ("INPUT_OBJECT", "SalesFilter")
    assert types["AreaOfInterest"]["isOneOf"] is True
    geometry = fields(types, "AreaOfInterest")["geometry"]
    assert named(geometry["type"]) == ("SCALAR", "GeoJSON")
    assert "rfc7946" in types["GeoJSON"]["specifiedByURL"]


Shade = TypeAliasType("Shade", Literal["light_grey", "dark"])


class Knobs(Params):
    """Knobs of a kind that does not exist yet."""

    shade: Shade = Field(default="dark", description="how dark")
    tone: Literal["warm", "cool"] = "cool"
    level: int = Field(default=3, ge=1, le=5, description="how much")
    when: dt.date | None = None
    tags: list[str] | None = Field(default=None, max_length=4)
    sales: SalesSelection = Field(default_factory=SalesSelection)


class Extended(SalesRatioStudyParams):
    """A ratio study with one more knob, declared in pydantic only."""

    smoothing: Literal["off", "light"] = Field(default="off", description="a new knob")


KnobsInput = input_type(Knobs)
ExtendedInput = input_type(Extended)
KnobsOutput = output_type(Knobs)


@strawberry.type
class Query:
    @strawberry.field
    def echo(self, knobs: KnobsInput, more: ExtendedInput) -> str:  # type: ignore[valid-type]
        return json.dumps([plain(knobs), plain(more)])

    @strawberry.field
    def shown(self) -> KnobsOutput | None:  # type: ignore[valid-type]
        return None


def test_a_new_pydantic_field_appears_in_graphql_with_its_type_default_and_description() -> None:
    sdl = strawberry.Schema(query=Query).as_str()
    assert "enum Shade {\n  LIGHT_GREY\n  DARK\n}" in sdl
    assert "enum KnobsTone {\n  WARM\n  COOL\n}" in sdl  # unnamed Literal: model + field
    assert '"""how dark"""\n  shade: Shade! = DARK' in sdl
    assert '"""how much (>= 1, <= 5)"""\n  level: Int! = 3' in sdl
    assert "  when: Date\n" in sdl
    assert '"""(at most 4 items)"""\n  tags: [String!]' in sdl
    assert "  sales: SalesFilter\n" in sdl
    assert '"""a new knob"""\n  smoothing: ExtendedSmoothing! = OFF' in sdl
    assert "type KnobsOutput {" in sdl and "  shade: Shade!\n" in sdl

    result = strawberry.Schema(query=Query).execute_sync(
        '{ echo(knobs: {shade: LIGHT_GREY, tags: ["a"], sales: {zipCodes: ["98001"]}},'
        " more: {smoothing: LIGHT, groupBy: NEIGHBORHOOD}) }"
    )
    assert result.errors is None, result.errors
    knobs, more = json.loads(result.data["echo"])
    # Back to the engine's lower-case values; what was left out is left to pydantic.
    assert knobs == {
        "shade": "light_grey",
        "tone": "cool",
        "level": 3,
        "tags": ["a"],
        "sales": {"zip_codes": ["98001"], "arms_length_only": True},
    }
    assert Knobs.model_validate(knobs).sales.zip_codes == ["98001"]
    assert Extended.model_validate(more).smoothing == "light"
    assert Extended.model_validate(more).group_by == "neighborhood"


def test_example_operations_fit_the_schema() -> None:
    """GraphiQL's default document and the README's examples are valid against the schema,
    so a renamed field or enum value cannot leave them behind."""
    schema = build_schema()
    document = ROOT / "app" / "static" / "graphiql" / "default-document.graphql"
    examples = [document.read_text()]
    examples += re.findall(r"```graphql\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(examples) >= 5
    for text in examples:
        assert validate(schema._schema, parse(text)) == [], text
