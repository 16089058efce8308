"""Test data in one place."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from app.demo_data import load_demo_county

TEST_COUNTY = "TESTCO"


async def load_small_county(engine: AsyncEngine, parcels: int = 400, seed: int = 7) -> str:
    await load_demo_county(engine, TEST_COUNTY, parcels, seed=seed)
    return TEST_COUNTY
