// Start a sales ratio study and watch it with Apollo Client over HTTP only: subscriptions use
// the multipart HTTP protocol, so no websocket link is needed.
// TERRAFUSION_URL (http://127.0.0.1:8000/graphql), TERRAFUSION_TOKEN, COUNTY_ID (COUNTY01).
import { ApolloClient, HttpLink, InMemoryCache } from "@apollo/client";
import type { RunReportInput } from "./gql/graphql.js";
import { RunRatioStudy, WatchJob } from "./operations.js";

const client = new ApolloClient({
  link: new HttpLink({
    uri: process.env.TERRAFUSION_URL ?? "http://127.0.0.1:8000/graphql",
    headers: { Authorization: `Bearer ${process.env.TERRAFUSION_TOKEN ?? ""}` },
  }),
  cache: new InMemoryCache(),
});

const input: RunReportInput = {
  countyId: process.env.COUNTY_ID ?? "COUNTY01",
  reportType: "SALES_RATIO_STUDY",
  parameters: { salesRatioStudy: { groupBy: "NEIGHBORHOOD" } },
};

const { data } = await client.mutate({ mutation: RunRatioStudy, variables: { input } });
const id = data!.runReport.id;
console.log(`submitted ${id} ${data!.runReport.status}`);

await new Promise<void>((resolve, reject) => {
  client.subscribe({ query: WatchJob, variables: { id } }).subscribe({
    next: ({ data, error }) => {
      if (error) return reject(error);
      const job = data!.jobUpdated;
      console.log(`${job.status} ${job.progress?.percent ?? 0}% ${job.progress?.step ?? ""}`);
      if (job.__typename === "ReportJob" && job.result?.ratioStudy) {
        const { count, medianRatio, cod, prd } = job.result.ratioStudy.overall;
        console.log(`sales ${count}, median ratio ${medianRatio}, COD ${cod}, PRD ${prd}`);
      }
    },
    error: reject,
    complete: resolve, // the server ends the stream after the job's final status
  });
});
// Every update was normalised into one cache entry, `ReportJob:<uuid>` (`__typename:id`).
const entry = client.cache.identify({ __typename: "ReportJob", id })!;
const store = client.cache.extract() as Record<string, { status?: string }>;
console.log(`cached ${entry} ${store[entry]?.status}`);
