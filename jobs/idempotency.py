"""Idempotency keys: the same key from the same caller within a window means the same job."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from typing import Any

from sqlalchemy import DateTime, String, Uuid, delete, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    caller: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


def request_hash(request: dict[str, Any]) -> str:
    """A digest of the validated request, so "the same input" means the same after defaults."""
    canonical = json.dumps(request, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def find_key(
    session: AsyncSession, caller: str, key: str, window: dt.timedelta
) -> IdempotencyKey | None:
    """The live key, if any; a key older than the window is forgotten here."""
    row = await session.get(IdempotencyKey, (caller, key))
    if row is None:
        return None
    if row.created_at < dt.datetime.now(dt.UTC) - window:
        await session.delete(row)
        await session.flush()
        return None
    return row


async def forget_expired(session: AsyncSession, window: dt.timedelta) -> int:
    result = await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < func.now() - window)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
