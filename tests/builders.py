"""Test data in one place."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import create_token, revoke_token
from app.db import create_session_factory
from app.demo_data import load_demo_county
from jobs.access import Caller
from jobs.lifecycle import Lifecycle
from jobs.registry import KINDS
from jobs.spec import JobKind

TEST_COUNTY = "TESTCO"
ROLL = {"report_type": "assessment_roll", "county_id": TEST_COUNTY}


async def load_small_county(engine: AsyncEngine, parcels: int = 400, seed: int = 7) -> str:
    await load_demo_county(engine, TEST_COUNTY, parcels, seed=seed)
    return TEST_COUNTY


async def issue_token(
    engine: AsyncEngine, name: str, permissions: list[str], *, revoked: bool = False
) -> str:
    """A token as `terrafusion token create` makes it (and revokes it, if asked)."""
    sessions = create_session_factory(engine)
    token = await create_token(sessions, name, permissions)
    if revoked:
        await revoke_token(sessions, name)
    return token


async def finished_report(
    lifecycle: Lifecycle, results_dir: Path, caller: Caller, files: dict[str, tuple[str, str]]
) -> str:
    """A COMPLETED report job whose result lists `files` (name -> (content type, text)),
    written where a worker would write them."""
    snap = await lifecycle.submit(JobKind.REPORT, dict(ROLL), caller)
    job_id, run = uuid.UUID(snap["id"]), uuid.uuid4()
    folder = results_dir / str(job_id)
    folder.mkdir(parents=True)
    listed = []
    for name, (content_type, content) in files.items():
        (folder / name).write_text(content)
        listed.append(
            {
                "name": name,
                "url": f"/results/{job_id}/{name}",
                "content_type": content_type,
                "size_bytes": len(content.encode()),
            }
        )
    spec = KINDS[JobKind.REPORT]
    await lifecycle.start(spec, job_id, run)
    await lifecycle.complete(spec, job_id, run, {"files": listed})
    return str(job_id)
