"""Start a sales ratio study over HTTP and watch it to the end over a websocket, with gql.

pip install "gql[httpx,websockets]>=4"
TERRAFUSION_URL=http://127.0.0.1:8000/graphql TERRAFUSION_TOKEN=tf_... python ratio_study.py
"""

import asyncio
import os

from gql import Client, gql
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

URL = os.environ.get("TERRAFUSION_URL", "http://127.0.0.1:8000/graphql")
AUTH = {"Authorization": f"Bearer {os.environ.get('TERRAFUSION_TOKEN', '')}"}

RUN_RATIO_STUDY = gql("""
    mutation RunRatioStudy($input: RunReportInput!) {
      runReport(input: $input) { id status }
    }
""")
WATCH_JOB = gql("""
    subscription WatchJob($id: ID!) {
      jobUpdated(id: $id) {
        id status progress { percent step }
        ... on ReportJob { result { ratioStudy { overall { count medianRatio cod prd } } } }
      }
    }
""")


async def main() -> None:
    RUN_RATIO_STUDY.variable_values = {
        "input": {
            "countyId": os.environ.get("COUNTY_ID", "COUNTY01"),
            "reportType": "SALES_RATIO_STUDY",
            "parameters": {"salesRatioStudy": {"groupBy": "NEIGHBORHOOD"}},
        }
    }
    async with Client(transport=HTTPXAsyncTransport(url=URL, headers=AUTH)) as http:
        job = (await http.execute(RUN_RATIO_STUDY))["runReport"]
    print(f"submitted {job['id']} {job['status']}", flush=True)

    WATCH_JOB.variable_values = {"id": job["id"]}
    websocket = WebsocketsTransport(url=URL.replace("http", "ws", 1), init_payload=AUTH)
    async with Client(transport=websocket) as session:
        async for update in session.subscribe(WATCH_JOB):  # ends after the final status
            job = update["jobUpdated"]
            progress = job["progress"] or {}
            print(f"{job['status']} {progress.get('percent', 0)}% {progress.get('step') or ''}")
            if study := (job.get("result") or {}).get("ratioStudy"):
                overall = study["overall"]
                print(
                    f"sales {overall['count']}, median ratio {overall['medianRatio']}, "
                    f"COD {overall['cod']}, PRD {overall['prd']}"
                )


if __name__ == "__main__":
    asyncio.run(main())
