"""The typed context every resolver gets; resolvers never reach for globals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import strawberry
from starlette.requests import Request
from starlette.websockets import WebSocket

from app.auth import TokenCache
from app.config import Settings
from app.db import SessionFactory
from app.downloads import DownloadSigner, download_url
from app.events import EventBus
from app.limits import SubscriptionQuota
from jobs.access import ANONYMOUS_ADMIN, Caller, Unauthenticated
from jobs.batched_reads import BatchedReads
from jobs.lifecycle import Lifecycle
from resolvers.rendered_jobs import RenderedJobs
from resolvers.shared_events import SharedEvents


@dataclass
class Context:
    request: Request | WebSocket
    settings: Settings
    sessions: SessionFactory
    lifecycle: Lifecycle
    bus: EventBus
    quota: SubscriptionQuota
    tokens: TokenCache
    signer: DownloadSigner
    reads: BatchedReads
    """Current job rows for subscribers arriving together, read in one batch."""
    shared: SharedEvents
    """What subscribers alike share of each event (resolvers.shared_events)."""
    rendered: RenderedJobs
    """The objects of job rows read lately, reused while a row stays the same."""
    token: str | None = None
    """The bearer token of the request, or of the websocket's `connection_init`."""
    caller: Caller | None = None
    connection_params: dict[str, Any] | None = None
    """Set by Strawberry from a websocket's `connection_init` payload."""
    initialised: bool = False
    """A websocket whose `connection_init` was accepted."""

    async def current_caller(self) -> Caller:
        """The authenticated caller, or Unauthenticated; the one gate every resolver passes.

        A websocket lives long, so its token is looked up again for every operation: a
        token revoked mid-connection cannot start anything more once the token cache's
        few seconds have passed. Raises AuthUnavailable when the database cannot say.
        """
        if self.settings.auth_disabled:
            return ANONYMOUS_ADMIN
        if isinstance(self.request, WebSocket):
            self.caller = await self.tokens.caller(self.token)
        if self.caller is None:
            raise Unauthenticated("send a valid token: Authorization: Bearer <token>")
        return self.caller

    def file_url(self, job_id: str, name: str) -> str:
        """The absolute, signed download link of one of a job's files (see app.downloads)."""
        return download_url(self.settings, self.signer, self.request, job_id, name)


Info = strawberry.Info[Context, None]
