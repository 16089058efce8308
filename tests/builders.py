"""Test data in one place."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import create_token, revoke_token
from app.db import create_session_factory
from app.demo_data import load_demo_county

TEST_COUNTY = "TESTCO"


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
