// The GraphQL documents the examples send; graphql-codegen types them (src/gql/).
import { graphql } from "./gql/index.js";

export const RunRatioStudy = graphql(`
  mutation RunRatioStudy($input: RunReportInput!) {
    runReport(input: $input) { id status }
  }
`);

export const WatchJob = graphql(`
  subscription WatchJob($id: ID!) {
    jobUpdated(id: $id) {
      __typename id status progress { percent step }
      ... on ReportJob { result { ratioStudy { overall { count medianRatio cod prd } } } }
    }
  }
`);
