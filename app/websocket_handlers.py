"""Strawberry's two websocket protocols, bounded.

- Every message is at most the connection's current limit (`WS_INIT_MAX_BYTES` until the
  token is accepted, `MAX_BODY_BYTES` after): a larger one closes the connection with
  1009. app.websocket_server enforces that before a message is read; this is the same
  rule for servers that do not run it.
- JSON that is not UTF-8 text, nests too deeply or holds an oversized number closes the
  connection with 4400 like any other malformed message.
- A subscription keeps only the variables its document declares: an unused multi-megabyte
  variable is dropped as the operation starts instead of living as long as it does.
- Past `MAX_SUBSCRIPTIONS_PER_CONNECTION`, the error carries TOO_MANY_SUBSCRIPTIONS.
- A result shared by several subscribers (resolvers.shared_events) goes out as the text
  encoded once for all of them, the same JSON Strawberry would have written.
- Each operation's task has an outlet (resolvers.live_delivery): the envelope of its data
  messages and whether it still runs, so its live events can go straight from the bus.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any, cast

from graphql import GraphQLError, OperationDefinitionNode
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ErrorMessage,
    OperationMessage,
    StartMessage,
)

from resolvers.context import Context
from resolvers.live_delivery import open_outlet

if TYPE_CHECKING:
    from app.documents import DocumentCache

TOO_LARGE = 1009


class BoundedWebSocketAdapter(ASGIWebSocketAdapter):
    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                text = await self.ws.receive_text()
                limit = self.ws.state.max_message_bytes
                if len(text) > limit:
                    await self.close(TOO_LARGE, f"message larger than {limit} bytes")
                    return
                try:
                    yield self.view.decode_json(text)
                except json.JSONDecodeError as exc:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from exc
        except KeyError as exc:
            raise NonTextMessageReceived from exc
        except WebSocketDisconnect:
            pass

    async def send_text(self, text: str) -> None:
        """`send_json` of a message already encoded."""
        try:
            await self.ws.send_text(text)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


async def _send(adapter: Any, context: Context, message: Mapping[str, Any]) -> bool:
    """Send `message` as a shared result's text; False when it is not one."""
    text = context.shared.message_text(message)
    if text is None or not isinstance(adapter, BoundedWebSocketAdapter):
        return False
    await adapter.send_text(text)
    return True


def _socket(adapter: object) -> WebSocket | None:
    return adapter.ws if isinstance(adapter, BoundedWebSocketAdapter) else None


def _declared_only(cache: DocumentCache, payload: dict[str, Any]) -> None:
    """Drop the variables the document does not declare (validation would ignore them)."""
    variables, query = payload.get("variables"), payload.get("query")
    if not isinstance(variables, dict) or not variables or not isinstance(query, str):
        return
    document = cache.document(query)
    if document is None:
        return
    declared = {
        definition.variable.name.value
        for node in document.definitions
        if isinstance(node, OperationDefinitionNode)
        for definition in node.variable_definitions or ()
    }
    payload["variables"] = {k: v for k, v in variables.items() if k in declared}


def _over_limit(
    acknowledged: bool, op_id: str, running: Mapping[str, Any], limit: int | None
) -> bool:
    """A new operation id past the per-connection limit (a reused id replaces its own)."""
    return acknowledged and op_id not in running and limit is not None and len(running) >= limit


def _limit_error(limit: int) -> GraphQLError:
    return GraphQLError(
        f"subscription limit reached: at most {limit} operations per connection "
        "(MAX_SUBSCRIPTIONS_PER_CONNECTION); complete one first",
        extensions={"code": "TOO_MANY_SUBSCRIPTIONS"},
    )


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        limit = self.max_subscriptions_per_connection
        if _over_limit(self.connection_acknowledged, message["id"], self.operations, limit):
            assert limit is not None
            errors = [_limit_error(limit).formatted]
            await self.send_message({"id": message["id"], "type": "error", "payload": errors})
            return
        if isinstance(message.get("payload"), dict):
            payload = cast(dict[str, Any], message["payload"])
            _declared_only(self.view.documents, payload)  # type: ignore[attr-defined]
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        task = asyncio.current_task()
        assert task is not None

        def running() -> bool:  # a completed or cancelled operation is no longer there
            return self.operations.get(operation.id) is operation and not task.cancelling()

        message = {"id": operation.id, "type": "next", "payload": None}
        live = self.view.live_delivery  # type: ignore[attr-defined]
        open_outlet(_socket(self.websocket), live, message, running)
        await super().run_operation(operation)

    async def send_message(self, message: Message) -> None:
        if not await _send(self.websocket, self.context, message):
            await super().send_message(message)


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    async def handle_start(self, message: StartMessage) -> None:
        limit = self.max_subscriptions_per_connection
        if _over_limit(self.connection_acknowledged, message["id"], self.tasks, limit):
            assert limit is not None
            error = {"type": "error", "id": message["id"], "payload": _limit_error(limit).formatted}
            await self.send_message(cast(ErrorMessage, error))
            return
        if isinstance(message.get("payload"), dict):
            payload = cast(dict[str, Any], message["payload"])
            _declared_only(self.view.documents, payload)  # type: ignore[attr-defined]
        await super().handle_start(message)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None

        def running() -> bool:
            return self.tasks.get(operation_id) is task and not task.cancelling()

        message = {"type": "data", "id": operation_id, "payload": None}
        live = self.view.live_delivery  # type: ignore[attr-defined]
        open_outlet(_socket(self.websocket), live, message, running)
        await super().handle_async_results(operation_id, query, operation_name, variables)

    async def send_message(self, message: OperationMessage) -> None:
        if not await _send(self.websocket, self.context, message):
            await super().send_message(message)
