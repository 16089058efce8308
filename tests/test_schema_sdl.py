"""The exported SDL is the contract clients read; it must match the code."""

from schema.schema import SDL_PATH, export_sdl


def test_exported_sdl_matches_the_schema() -> None:
    assert SDL_PATH.read_text() == export_sdl(), (
        "schema/schema.graphql is stale: regenerate it with `python -m schema.schema`"
    )


def test_contract_names_are_in_the_sdl() -> None:
    sdl = SDL_PATH.read_text()
    for name in (
        "interface Job",
        "type ReportJob implements Job",
        "type MarketAnalysisJob implements Job",
        "type GisExportJob implements Job",
        "type ValuationJob implements Job",
        "jobUpdated(id: ID!, after: String = null): Job!",
        "jobsUpdated(kind: JobKind = null, countyId: String = null, status: JobStatus = null, "
        "after: String = null): Job!",
        "changeCursor: String!",
        "changedAfter: String = null",
        "runReport(input: RunReportInput!): ReportJob!",
        "cancelJob(id: ID!): Job!",
        "retryJob(id: ID!): Job!",
        "counties: [County!]!",
        "medianRatioCi: Interval",
        "countUsed: Int!",
    ):
        assert name in sdl, name
