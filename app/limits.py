"""Limits that keep one client from exhausting the API process.

`BodySizeLimit` refuses an oversized HTTP body with 413 before the GraphQL layer parses it:
at once from `Content-Length`, or as soon as a streamed (chunked) body passes the limit, so
a multi-megabyte body is never held in memory. `SubscriptionQuota` bounds the subscriptions
one token holds across all its connections (Strawberry bounds those of one connection).
What one document may ask for is app.query_limits' and app.documents' business.
"""

from __future__ import annotations

from collections import Counter

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def error_body(message: str, code: str) -> dict[str, object]:
    """A GraphQL-shaped error body for refusals made outside GraphQL execution."""
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            error_body(
                f"the request body is larger than {self.max_bytes} bytes (MAX_BODY_BYTES)",
                "PAYLOAD_TOO_LARGE",
            ),
            status_code=413,
        )
        await response(scope, receive, send)


class TooManySubscriptions(Exception):
    pass


class SubscriptionQuota:
    """Active subscriptions per caller name in this process."""

    def __init__(self, per_caller: int) -> None:
        self.per_caller = per_caller
        self._active: Counter[str] = Counter()

    def acquire(self, name: str) -> None:
        """Count one more subscription of `name`; TooManySubscriptions past the quota.

        Every successful `acquire` is paired with a `release` when the subscription ends.
        """
        if self._active[name] >= self.per_caller:
            raise TooManySubscriptions(
                f"at most {self.per_caller} active subscriptions per token; end one first"
            )
        self._active[name] += 1

    def release(self, name: str) -> None:
        self._active[name] -= 1
        if self._active[name] <= 0:
            del self._active[name]
