"""Value a county through the GraphQL API and print the holdout statistics of the result.

    python bench/compare_valuations.py --url http://127.0.0.1:8000/graphql --token TOKEN \
        --county AMES [--method HEDONIC] [--features GARAGE_SPACES,...] [--holdout-fraction 0.2]

Why: the comparison an assessor reads is the one in the job's result (for GRADIENT_BOOSTING
the trees' and the hedonic model's ratio statistics on the same time-ordered holdout), so
this asks the running server for exactly that, as a client would, rather than calling the
models itself. Used for the Ames figures in BENCHMARKS.md (see bench/ames_county.py for the county).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from typing import Any

STATS = "count countUsed medianRatio cod prd prb mki"
RUN = """
mutation($input: RunValuationInput!) { runValuation(input: $input) { id } }
"""
POLL = f"""
query($id: ID!) {{ job(id: $id) {{ status ... on ValuationJob {{
  error {{ code message }}
  result {{ method valuationDate parcelsValued features warnings
    holdout {{ {STATS} }} hedonicHoldout {{ {STATS} }} }} }} }} }}
"""


def _post(url: str, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body: dict[str, Any] = json.load(response)
    if body.get("errors"):
        raise SystemExit(json.dumps(body["errors"], indent=2))
    return body["data"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000/graphql")
    parser.add_argument("--token", required=True)
    parser.add_argument("--county", required=True)
    parser.add_argument("--method", default="GRADIENT_BOOSTING", help="ValuationMethod")
    parser.add_argument("--features", default="", help="comma-separated ValuationFeature names")
    parser.add_argument("--holdout-fraction", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    parameters: dict[str, Any] = {
        "method": args.method,
        "holdoutFraction": args.holdout_fraction,
    }
    if args.features:
        parameters["features"] = args.features.split(",")
    run = _post(
        args.url,
        args.token,
        RUN,
        {"input": {"countyId": args.county, "parameters": parameters}},
    )
    job_id = run["runValuation"]["id"]
    deadline = time.monotonic() + args.timeout
    while True:
        job = _post(args.url, args.token, POLL, {"id": job_id})["job"]
        if job["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} still {job['status']} after {args.timeout:g} s")
        time.sleep(1)
    json.dump(job, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if job["status"] == "COMPLETED" else 1


if __name__ == "__main__":
    raise SystemExit(main())
