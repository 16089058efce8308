// Start a sales ratio study with graphql-request, then watch it to the end with graphql-ws.
// TERRAFUSION_URL (http://127.0.0.1:8000/graphql), TERRAFUSION_TOKEN, COUNTY_ID (COUNTY01).
import { print } from "graphql";
import { GraphQLClient } from "graphql-request";
import { CloseCode, createClient } from "graphql-ws";
import WebSocket from "ws";
import type { RunReportInput, WatchJobSubscription } from "./gql/graphql.js";
import { RunRatioStudy, WatchJob } from "./operations.js";

const url = process.env.TERRAFUSION_URL ?? "http://127.0.0.1:8000/graphql";
const token = process.env.TERRAFUSION_TOKEN ?? "";

const input: RunReportInput = {
  countyId: process.env.COUNTY_ID ?? "COUNTY01",
  reportType: "SALES_RATIO_STUDY",
  parameters: { salesRatioStudy: { groupBy: "NEIGHBORHOOD" } },
};

const http = new GraphQLClient(url, { headers: { Authorization: `Bearer ${token}` } });
const { runReport } = await http.request(RunRatioStudy, { input });
console.log(`submitted ${runReport.id} ${runReport.status}`);

const ws = createClient({
  url: url.replace(/^http/, "ws"),
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  // A refused or revoked token closes with 4403: retrying cannot help, so stop at once.
  // Other drops (a server restart, a flaky network) are retried a few times.
  retryAttempts: 3,
  shouldRetry: (closed) => (closed as { code?: number }).code !== CloseCode.Forbidden,
});

try {
  const updates = ws.iterate<WatchJobSubscription>({
    query: print(WatchJob),
    variables: { id: runReport.id },
  });
  for await (const { data, errors } of updates) {
    if (errors?.length) throw new Error(errors.map((e) => e.message).join("; "));
    const job = data!.jobUpdated;
    console.log(`${job.status} ${job.progress?.percent ?? 0}% ${job.progress?.step ?? ""}`);
    if (job.__typename === "ReportJob" && job.result?.ratioStudy) {
      const { count, medianRatio, cod, prd } = job.result.ratioStudy.overall;
      console.log(`sales ${count}, median ratio ${medianRatio}, COD ${cod}, PRD ${prd}`);
    }
  }
} catch (error) {
  const refused = (error as { code?: number }).code === CloseCode.Forbidden;
  console.error(refused ? "the server refused the token (4403 Forbidden); not retrying" : error);
  process.exitCode = 1;
} finally {
  await ws.dispose();
}
