"""Subscriptions over HTTP: Apollo's multipart protocol, with the websocket's token re-check.

Strawberry streams a subscription as `multipart/mixed` parts when the request's `Accept`
asks for it (`multipart/mixed;subscriptionSpec=1.0`, what Apollo Client sends), so a
front-end needs no websocket link. Authentication, the per-token subscription quota and the
query limits are the websocket's because the same request context, resolvers and schema
extensions run. What a long-lived stream adds is the websocket's periodic token re-check:
a token revoked while its stream is open ends the stream with a transport error part
(`{"payload": null, "errors": [...]}` in Apollo's protocol), as the websocket closes 4403.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from strawberry.http.streaming import MultipartSubscriptionTransport
from strawberry.subscriptions import (
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)

from app.auth import AuthUnavailable, authenticate
from app.db import SessionFactory

log = logging.getLogger(__name__)

SUBSCRIPTION_PROTOCOLS = (
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)
"""What the GraphQL view speaks: both websocket subprotocols and multipart HTTP."""
TRANSPORT = MultipartSubscriptionTransport()
CONTENT_TYPE = TRANSPORT.headers["Content-Type"]
TokenCheck = Callable[[], Awaitable[bool]]


def token_check(sessions: SessionFactory, token: str | None) -> TokenCheck:
    """Whether `token` is still valid now; an unreachable database does not cut anyone off."""

    async def still_valid() -> bool:
        try:
            return await authenticate(sessions, token) is not None
        except AuthUnavailable as exc:
            log.warning("could not re-check a subscription stream's token now: %s", exc)
            return True

    return still_valid


def revoked_part(encode_json: Callable[[object], str]) -> str:
    error = {"message": "the token was revoked", "extensions": {"code": "UNAUTHENTICATED"}}
    return TRANSPORT.encode_multipart_data({"payload": None, "errors": [error]}, encode_json)


def end_when_revoked(
    stream: Callable[[], AsyncIterator[str]],
    still_valid: TokenCheck,
    every: float,
    encode_json: Callable[[object], str],
) -> Callable[[], AsyncGenerator[str, None]]:
    """`stream`, with the token re-checked every `every` seconds, however busy the stream."""

    async def guarded() -> AsyncGenerator[str, None]:
        source = stream()
        pending: asyncio.Future[str] | None = None
        clock = asyncio.get_running_loop().time
        next_check = clock() + every
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(source))
                done, _ = await asyncio.wait({pending}, timeout=max(0.0, next_check - clock()))
                if clock() >= next_check:
                    if not await still_valid():
                        yield revoked_part(encode_json) + TRANSPORT.encode_complete()
                        return
                    next_check = clock() + every
                if not done:
                    continue
                try:
                    part = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                yield part
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await pending
            with contextlib.suppress(RuntimeError):
                await source.aclose()  # type: ignore[attr-defined]

    return guarded
