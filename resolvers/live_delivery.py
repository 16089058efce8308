"""A live subscription's later events, sent from the event bus straight to its socket.

Once a websocket subscription is live, each event it takes would wake its operation's task
and pass up through the resolver's generator, graphql-core's and Strawberry's result
streams and the protocol handler, for every subscriber, to send the text that
resolvers.shared_events already encoded once for all of them. Here the bus hands such an
event to the subscriber's `Subscription.deliver` instead, which sends that text at once:
the message the protocol handler would have sent (the operation's envelope, in its
protocol, around the shared payload), with nothing else in between.

It takes only what would have been that plain message, and leaves everything else to the
normal path, unchanged: an event the feed would copy (with another cursor) or that ends the
subscription, a result with errors or not ready at once, an operation completed,
stopped or cancelled, a socket that is closing or whose send would wait (its transport is
paused). The bus offers an event only while the reader waits with nothing queued
(app.events.Subscription), so a message never overtakes one still on its way.

The three parts meet through `OUTLET`, set by the protocol handler in the operation's own
task: the handler knows the envelope and whether the operation still runs, the executor
(resolvers.sharing_executor) the execution key, and the resolver the feed.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Protocol

from graphql import ExecutionResult
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension
from strawberry.schema import Schema

from app.events import Event, FeedPosition, Subscription
from app.websocket_server import SEND_NOW
from resolvers.shared_events import SharedEvent, SharedEvents, envelope


class SharedResults(Protocol):
    share_key: tuple[Any, ...] | None

    def shared_result(self, event: SharedEvent) -> ExecutionResult | None:
        """The subscription's result on `event` if it is one shared and ready now."""


class Outlet:
    """Where one websocket operation's shared results may go at once."""

    __slots__ = ("_after", "_before", "_running", "_send", "executor")

    def __init__(
        self,
        send: Callable[[str], bool],
        message: dict[str, Any],
        running: Callable[[], bool],
    ) -> None:
        self._send = send
        self._before, self._after = envelope(message)
        self._running = running
        self.executor: SharedResults | None = None
        """The subscription's executor, set when it executes its first event."""

    def send(self, event: SharedEvent, shared: SharedEvents) -> bool:
        """Send the operation's message of its shared result on `event`; False, having sent
        nothing, when that cannot be done at once."""
        executor = self.executor
        if executor is None or not self._running():
            return False
        text = event.texts.get(executor.share_key)
        if text is None:
            result = executor.shared_result(event)
            if result is None:
                return False
            text = event.texts[executor.share_key] = shared.payload_text(result)
        return self._send(self._before + text + self._after)


OUTLET: ContextVar[Outlet | None] = ContextVar("terrafusion_outlet", default=None)
"""The outlet of the websocket operation whose task this is; None anywhere else."""


def open_outlet(
    ws: WebSocket | None, allowed: bool, message: dict[str, Any], running: Callable[[], bool]
) -> None:
    """Give the operation running in this task an outlet, when it is `allowed` (the schema
    leaves results alone: `results_untouched`) and its socket can send at once (under our
    uvicorn protocol, app.websocket_server).

    `message` is the operation's data message with any payload: its envelope is what goes
    around each shared payload. `running` says whether the operation still runs.
    """
    if ws is None or not allowed:
        return
    extension = ws.scope.get("extensions", {}).get(SEND_NOW)
    if extension is not None:
        OUTLET.set(Outlet(extension["text"], message, running))


def results_untouched(schema: Schema) -> bool:
    """Whether no extension of `schema` adds to a stream's results (`get_results`) or sees
    them (`on_stream_result`): then a shared result's message is its data alone, as the
    live path sends it."""
    return all(
        type(extension).get_results is SchemaExtension.get_results
        and type(extension).on_stream_result is SchemaExtension.on_stream_result
        for extension in schema.get_extensions()
    )


def go_live(
    events: Subscription,
    feed: FeedPosition,
    shared: SharedEvents,
    ends: Callable[[Event], bool] | None = None,
) -> None:
    """From now on, let the bus send the events of `events` that `feed` passes as they are
    straight to this operation's socket (see the module's docstring); an event for which
    `ends` is true goes to the reader, which ends the subscription after it."""
    outlet = OUTLET.get()
    if outlet is None:
        return

    def deliver(event: Event) -> bool:
        try:
            if ends is not None and ends(event):
                return False
            verdict = feed.verdict(event)
        except (KeyError, TypeError, ValueError):
            return False  # a malformed event: the reader meets it as it always did
        if verdict is None:
            return True  # the reader would skip it too
        if not verdict or not outlet.send(shared.of(event), shared):
            return False
        feed.keep(event)
        shared.count_live_result()
        return True

    events.deliver = deliver
