"""uvicorn's websocket protocol with a message size the app sets per connection.

uvicorn reads a whole websocket message before the app sees any of it, up to one size for
every connection (16 MB by default): 40 anonymous connections sending a 15 MB
`connection_init` held 1 GB before a single token was checked. Here a connection starts
at `WS_INIT_MAX_BYTES`, so a larger frame is refused with close code 1009 from its header
alone, never read; once the app has accepted the connection's token it raises the limit
to `MAX_BODY_BYTES` through the ASGI scope extension `MESSAGE_LIMIT`.

It also offers the app, as the scope extension `SEND_NOW`, a send that does not wait: the
text goes out at once, as uvicorn's own `websocket.send` would write it, when that send would
not have waited either (the connection open, its transport not paused); otherwise nothing
is written and the caller sends through ASGI as usual. A subscription's live events use it
to go out from the event bus itself (resolvers.live_delivery).
"""

from __future__ import annotations

from typing import Any

from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

from app.config import Settings

MESSAGE_LIMIT = "terrafusion.websocket.message_limit"
SEND_NOW = "terrafusion.websocket.send_now"


class BoundedWebSocketProtocol(WebSocketsSansIOProtocol):
    initial_max_size = 65_536
    drain_seconds = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.max_message_size = self.initial_max_size
        self.draining = False

    def data_received(self, data: bytes) -> None:
        if self.draining:
            return  # what a refused client still sends is dropped, never kept
        super().data_received(data)

    def handle_parser_exception(self) -> None:
        """Send the close frame (1009 for a message too large), then drain, not reset.

        uvicorn closes the socket at once; with the client's unread bytes still queued the
        kernel answers with a reset, and the client never reads the close frame saying why.
        Here the connection reads and drops the rest for `drain_seconds` (time for the
        close frame to reach the client), then closes.
        """
        assert self.conn.close_sent is not None
        code, reason = self.conn.close_sent.code, self.conn.close_sent.reason
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.draining = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.drain_seconds, self.transport.close)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][MESSAGE_LIMIT] = {"set": self._set_limit}
            scope["extensions"][SEND_NOW] = {"text": self.send_text_now}

    def _set_limit(self, size: int) -> None:
        self.conn.max_message_size = min(size, self.config.ws_max_size)

    def send_text_now(self, text: str) -> bool:
        """Write `text` as one message, as `send({"type": "websocket.send", ...})` does, if
        that would write it without waiting; False, having written nothing, otherwise (not
        yet accepted, closing or closed, or paused by a full transport buffer)."""
        if not (
            self.writable.is_set()
            and self.handshake_complete
            and not self.disconnected
            and not self.close_sent
            and self.initial_response is None
            and self.conn.state is State.OPEN
        ):
            return False
        self.conn.send_text(text.encode())
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.Config / uvicorn.run arguments that bound every websocket message."""
    protocol = type(
        "BoundedWebSocketProtocol",
        (BoundedWebSocketProtocol,),
        {"initial_max_size": settings.ws_init_max_bytes},
    )
    return {"ws": protocol, "ws_max_size": settings.max_body_bytes}


def raise_message_limit(ws: WebSocket, size: int) -> None:
    """Let this connection's messages grow to `size` (the server's own limit at most)."""
    ws.state.max_message_bytes = size
    extension = ws.scope.get("extensions", {}).get(MESSAGE_LIMIT)
    if extension is not None:
        extension["set"](size)
