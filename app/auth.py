"""API tokens: created by the CLI, stored as SHA-256 hashes, looked up on every request.

A token is shown once, when it is created; the database keeps only its hash, so a leaked
database does not leak usable tokens. `authenticate` asks PostgreSQL (one indexed row);
`TokenCache` reuses an answer for `TOKEN_CACHE_SECONDS` at most, so `terrafusion token
revoke` stops an HTTP caller within that long. Websockets re-check with `authenticate`
itself every `WS_AUTH_RECHECK_SECONDS`, so the cache never lengthens their grace.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import DateTime, String, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Mapped, mapped_column

from app.db import SessionFactory
from app.models import Base
from jobs.access import Caller, all_permissions

TOKEN_PREFIX = "tf_"
TOKEN_PATTERN = re.compile(r"^tf_[A-Za-z0-9_-]{20,100}$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")
TEAM_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    permissions: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    team: Mapped[str | None] = mapped_column(
        String(64), doc="the team whose TEAM jobs it sees; its own jobs are stamped with it"
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AuthUnavailable(Exception):
    """The token store (PostgreSQL) cannot be asked now: SERVICE_UNAVAILABLE, retry."""


class TokenError(ValueError):
    """A token command that cannot be carried out (duplicate name, unknown permission...)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def bearer_token(headers: Mapping[str, Any]) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (any key case), if any."""
    for key, value in headers.items():
        if str(key).lower() == "authorization" and isinstance(value, str):
            token = _bearer(value)
            if token is not None:
                return token
    return None


def request_bearer_token(raw_headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """`bearer_token` of an HTTP request's raw ASGI headers, read as Starlette's `Headers`
    would give them (latin-1) without building one: every request with a token asks."""
    for key, value in raw_headers:
        if key.lower() == b"authorization":
            token = _bearer(value.decode("latin-1"))
            if token is not None:
                return token
    return None


def _bearer(value: str) -> str | None:
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def check_permissions(permissions: Iterable[str]) -> list[str]:
    known = all_permissions()
    wanted = [p.strip() for p in permissions if p.strip()]
    unknown = [p for p in wanted if p not in known]
    if unknown or not wanted:
        raise TokenError(
            f"unknown permission(s) {', '.join(unknown) or '(none given)'}; "
            f"allowed: {', '.join(known)}"
        )
    return list(dict.fromkeys(wanted))


async def create_token(
    sessions: SessionFactory, name: str, permissions: Iterable[str], team: str | None = None
) -> str:
    """Store a new token's hash under `name` (in `team`, if any) and return the token (never
    stored)."""
    if not NAME_PATTERN.match(name):
        raise TokenError("name must be 1-128 letters, digits or . _ @ -")
    if team is not None and not TEAM_PATTERN.match(team):
        raise TokenError("team must be 1-64 letters, digits or . _ @ -")
    perms = check_permissions(permissions)
    token = new_token()
    try:
        async with sessions.begin() as session:
            session.add(
                ApiToken(name=name, token_hash=hash_token(token), permissions=perms, team=team)
            )
    except IntegrityError:
        raise TokenError(f"a token named {name!r} already exists") from None
    return token


async def list_tokens(sessions: SessionFactory) -> list[ApiToken]:
    async with sessions() as session:
        return list((await session.scalars(select(ApiToken).order_by(ApiToken.name))).all())


async def revoke_token(sessions: SessionFactory, name: str) -> None:
    async with sessions.begin() as session:
        result = await session.execute(
            update(ApiToken)
            .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise TokenError(f"no active token named {name!r}")


async def authenticate(sessions: SessionFactory, token: str | None) -> Caller | None:
    """The caller a token belongs to; None when missing, malformed, unknown or revoked.

    Raises AuthUnavailable when PostgreSQL cannot answer.
    """
    if not token or not TOKEN_PATTERN.match(token):
        return None
    try:
        async with sessions() as session:
            row = await session.scalar(
                select(ApiToken).where(
                    ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)
                )
            )
    except (OSError, DBAPIError, PoolTimeout, TimeoutError) as exc:
        raise AuthUnavailable(f"the token store is unavailable: {type(exc).__name__}") from exc
    return Caller.of(row.name, row.permissions, row.team) if row is not None else None


async def caller_named(sessions: SessionFactory, name: str | None) -> Caller | None:
    """The caller an active token of this name is now; for work done in its name later (a
    schedule's runs), so a revoked token or a narrowed one stops it."""
    if name is None:
        return None
    async with sessions() as session:
        row = await session.scalar(
            select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
        )
    return Caller.of(row.name, row.permissions, row.team) if row is not None else None


class TokenCache:
    """`authenticate`'s answers (refusals too) reused for `ttl` seconds; `size` tokens at most.

    Keyed by the token's hash, so the process holds no more usable secrets than it must.
    Requests that miss on the same token at the same moment (every busy client's requests
    when its answer expires) share one lookup: fifty at once would otherwise queue fifty
    sessions for the same row and stall behind the pool.
    """

    def __init__(self, sessions: SessionFactory, ttl: float, size: int = 10_000) -> None:
        self.sessions = sessions
        self.ttl = ttl
        self.size = size
        self._answers: OrderedDict[str, tuple[float, Caller | None]] = OrderedDict()
        self._asking: dict[str, asyncio.Future[Caller | None]] = {}

    async def caller(self, token: str | None) -> Caller | None:
        if self.ttl <= 0 or not token or not TOKEN_PATTERN.match(token):
            return await authenticate(self.sessions, token)
        key = hash_token(token)
        now = time.monotonic()
        cached = self._answers.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        asking = self._asking.get(key)
        if asking is None:
            asking = self._asking[key] = asyncio.ensure_future(self._ask(key, token, now))
        # Shielded: a caller that goes away does not cancel the others' answer.
        return await asyncio.shield(asking)

    async def _ask(self, key: str, token: str, now: float) -> Caller | None:
        try:
            caller = await authenticate(self.sessions, token)
        finally:
            del self._asking[key]
        self._answers[key] = (now + self.ttl, caller)
        self._answers.move_to_end(key)
        while len(self._answers) > self.size:
            self._answers.popitem(last=False)
        return caller
