"""The typed context every resolver gets; resolvers never reach for globals."""

from __future__ import annotations

from dataclasses import dataclass

import strawberry
from starlette.requests import Request
from starlette.websockets import WebSocket

from app.config import Settings
from app.db import SessionFactory
from app.events import EventBus
from jobs.lifecycle import Lifecycle


@dataclass
class Context:
    request: Request | WebSocket
    settings: Settings
    sessions: SessionFactory
    lifecycle: Lifecycle
    bus: EventBus


Info = strawberry.Info[Context, None]
