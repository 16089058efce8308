"""The client examples under examples/, each run against a live server and worker to COMPLETED.

The TypeScript ones need Node and npm (their dependencies come from examples/package-lock.json
with `npm ci`, which `.ci/run` does first); without `node` they are skipped, saying so.
graphql-codegen runs once per module over a live server's schema (introspection over HTTP),
and its output is checked for inputs typed `any` or `unknown`, then compiled with tsc.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import revoke_token
from app.config import Settings
from app.db import create_session_factory
from tests.builders import issue_token
from tests.conftest import RunningApp, WorkerControl, serve_app
from tests.graphql_client import gql_data

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NODE = shutil.which("node")
NPM = shutil.which("npm")
needs_node = pytest.mark.skipif(
    NODE is None or NPM is None, reason="node/npm not installed: TypeScript examples not run"
)


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float


async def run(command: list[str], env: dict[str, str], timeout: float = 120) -> Run:
    """Run `command` in examples/ with `env` added; its exit code and combined output."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=EXAMPLES,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        message = f"{command} still running after {timeout} s:\n{out.decode()}"
        raise AssertionError(message) from None
    return Run(process.returncode or 0, out.decode(), time.monotonic() - started)


def client_env(app: RunningApp, token: str, county: str) -> dict[str, str]:
    return {
        "TERRAFUSION_URL": f"{app.url}/graphql",
        "TERRAFUSION_TOKEN": token,
        "COUNTY_ID": county,
    }


@pytest.fixture(scope="module")
async def built(database_url: str, redis_url: str) -> AsyncIterator[Path]:
    """examples/ with its npm dependencies, types generated from a live server, compiled."""
    if NODE is None or NPM is None:
        pytest.skip("node/npm not installed: TypeScript examples not run")
    if not (EXAMPLES / "node_modules").is_dir():
        installed = await run([NPM, "ci", "--no-audit", "--no-fund"], {}, timeout=600)
        assert installed.returncode == 0, installed.output
    prefix = f"tf-test:{uuid.uuid4().hex[:10]}"
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        queue_name=f"{prefix}:queue",
        events_channel=f"{prefix}:events",
        auth_disabled=True,
    )
    async with serve_app(settings) as app:
        shutil.rmtree(EXAMPLES / "src" / "gql", ignore_errors=True)
        codegen = await run(
            [NPM, "run", "--silent", "codegen"], {"TERRAFUSION_URL": f"{app.url}/graphql"}
        )
        assert codegen.returncode == 0, codegen.output
        introspection = await gql_data(app.url, "{ __schema { types { name kind } } }")
    inputs = [t["name"] for t in introspection["__schema"]["types"] if t["kind"] == "INPUT_OBJECT"]
    (EXAMPLES / "src" / "gql" / "input-types.txt").write_text("\n".join(inputs))
    shutil.rmtree(EXAMPLES / "dist", ignore_errors=True)
    build = await run([NPM, "run", "--silent", "build"], {})
    assert build.returncode == 0, build.output
    yield EXAMPLES


def input_field_types(generated: str, inputs: list[str]) -> dict[str, str]:
    """`Input.field` -> its TypeScript type, with `Scalars['X']['input']` resolved."""
    scalars = dict(re.findall(r"^  (\w+): \{ input: (.+?); output: .+?; \}$", generated, re.M))
    declarations = {}
    for chunk in re.sub(r"/\*\*.*?\*/", "", generated, flags=re.S).split("\n\n"):
        if found := re.match(r"\s*export type (\w+) =(.*)", chunk, re.S):
            declarations[found.group(1)] = found.group(2)
    fields: dict[str, str] = {}
    for name in inputs:
        assert name in declarations, f"codegen generated no type for the input {name}"
        for field, ts_type in re.findall(r"(\w+)\??: ([^;]+);", declarations[name]):
            fields[f"{name}.{field}"] = re.sub(
                r"Scalars\['(\w+)'\]\['input'\]", lambda m: f"({scalars[m.group(1)]})", ts_type
            )
    return fields


@needs_node
async def test_codegen_types_every_input_field(built: Path) -> None:
    generated = (built / "src" / "gql" / "schema-types.ts").read_text()
    inputs = (built / "src" / "gql" / "input-types.txt").read_text().split()
    assert "RunReportInput" in inputs and "JobOrder" in inputs
    fields = input_field_types(generated, inputs)
    assert len(fields) > 30
    untyped = {f: t for f, t in fields.items() if re.search(r"\b(any|unknown)\b", t)}
    assert not untyped, f"input fields graphql-codegen types as any/unknown: {untyped}"


@pytest.fixture
async def caller_token(engine: AsyncEngine) -> str:
    return await issue_token(engine, "front-end", ["report:run"])


@needs_node
@pytest.mark.parametrize("script", ["ratio-study", "apollo"])
async def test_typescript_example_runs_to_completed(
    built: Path,
    auth_server: RunningApp,
    worker: WorkerControl,
    county: str,
    caller_token: str,
    script: str,
) -> None:
    await worker.start()
    result = await run(
        [NPM, "run", "--silent", script], client_env(auth_server, caller_token, county)
    )
    assert result.returncode == 0, result.output
    assert_completed(result.output)
    if script == "apollo":
        job_id = result.output.split()[1]
        assert f"cached ReportJob:{job_id} COMPLETED" in result.output, result.output


def assert_completed(output: str) -> None:
    """The example printed the submitted job, its progress, COMPLETED and the study."""
    lines = output.splitlines()
    assert re.match(r"submitted [0-9a-f-]{36} PENDING$", lines[0]), output
    assert any(line.startswith("COMPLETED 100") for line in lines), output
    assert re.search(r"sales \d+, median ratio [\d.]+, COD [\d.]+, PRD [\d.]+", output), output


@needs_node
async def test_graphql_ws_example_stops_at_once_when_its_token_is_revoked(
    built: Path,
    auth_server: RunningApp,
    auth_settings: Settings,
    engine: AsyncEngine,
    county: str,
    caller_token: str,
) -> None:
    # No worker: the job stays PENDING, so the example waits on its subscription.
    process = await asyncio.create_subprocess_exec(
        NPM or "npm",
        "run",
        "--silent",
        "ratio-study",
        cwd=EXAMPLES,
        env={**os.environ, **client_env(auth_server, caller_token, county)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 60)
    assert first.startswith(b"submitted "), first
    assert (await asyncio.wait_for(process.stdout.readline(), 30)).startswith(b"PENDING")
    revoked_at = time.monotonic()
    await revoke_token(create_session_factory(engine), "front-end")
    rest = (await asyncio.wait_for(process.stdout.read(), 30)).decode()
    await process.wait()
    took = time.monotonic() - revoked_at
    assert process.returncode != 0
    assert "refused the token (4403 Forbidden); not retrying" in rest, rest
    # Closed within a re-check (0.2 s) and not retried: the default client took 41 s.
    assert took < 10, took


async def test_python_gql_example_runs_to_completed(
    auth_server: RunningApp, worker: WorkerControl, county: str, caller_token: str
) -> None:
    await worker.start()
    result = await run(
        [sys.executable, "python/ratio_study.py"], client_env(auth_server, caller_token, county)
    )
    assert result.returncode == 0, result.output
    assert_completed(result.output)
