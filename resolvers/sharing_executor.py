"""The executor that lets subscribers alike share one execution per event.

See resolvers.shared_events for what is shared and when, and resolvers.live_delivery for
the live path, which asks a subscription's executor for its shared result on an event.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any, cast

from graphql import ExecutionResult
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.downloads import public_base_url
from jobs.access import ANONYMOUS_ADMIN
from resolvers.context import Context
from resolvers.live_delivery import OUTLET
from resolvers.shared_events import SharedEvent

Key = tuple[Any, ...]


class SharingExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor; a subscription event that is a `SharedEvent` runs once per
    execution key (see the module's docstring)."""

    shared: SharedEvent | None = None
    share_key: Key | None = None

    def build_per_event_executor(self, payload: Any) -> SharingExecutor:
        if not isinstance(payload, SharedEvent):
            return cast(SharingExecutor, super().build_per_event_executor(payload))
        if self.share_key is None:
            self.share_key = self._key()  # before the copy, which takes it along
            outlet = OUTLET.get()
            if outlet is not None:
                outlet.executor = self
        found = payload.results.get(self.share_key) if self.share_key else None
        if found is not None:
            assert isinstance(self.context_value, Context)
            self.context_value.shared.results.inc()
            return cast(SharingExecutor, Executed(found))
        executor = cast(SharingExecutor, super().build_per_event_executor(payload.job))
        executor.shared = payload
        return executor

    def _key(self) -> Key:
        """What makes two subscriptions' results on one event the same; () for none."""
        context = self.context_value
        location = self.operation.loc
        if not isinstance(context, Context) or location is None:
            return ()
        caller = ANONYMOUS_ADMIN if context.settings.auth_disabled else context.caller
        if caller is None:
            return ()
        variables = json.dumps(self.variable_values.coerced, sort_keys=True, default=repr)
        return (
            location.source.body,
            location.start,
            variables,
            caller.visibility_key,
            public_base_url(context.settings, context.request),
        )

    def execute_operation(self, serially: bool | None = None) -> Any:
        shared, key = self.shared, self.share_key
        if shared is None or not key or not isinstance(self.context_value, Context):
            return super().execute_operation(serially)
        self.context_value.shared.results.inc()
        found = shared.results.get(key)
        if found is not None:  # another subscriber's, executed since this one was built
            return found
        spare = shared.spares.pop(key, None)
        if spare is not None:  # executed by the live path, which could not send it
            return spare
        return self._execute(serially, shared, key)

    def shared_result(self, event: SharedEvent) -> ExecutionResult | None:
        """For the live path (on the subscription's own executor): its result on `event`,
        executed now if no subscriber of its key has yet, when that result is shared and
        ready at once; None otherwise, for the normal path to produce and send."""
        key = self.share_key
        context = self.context_value
        if not key or not isinstance(context, Context):
            return None
        found = event.results.get(key)
        if found is not None:
            return found
        if key in event.spares:
            return None
        try:
            executor = cast(SharingExecutor, super().build_per_event_executor(event.job))
            executor.shared = event
            result = executor._execute(False, event, key)
        except Exception:  # the normal path raises it again, where it is the operation's error
            return None
        if self.is_awaitable(result):
            event.spares[key] = asyncio.ensure_future(result)
            return None
        if not isinstance(result, ExecutionResult) or result.errors:
            event.spares[key] = result
            return None
        return result

    def _execute(self, serially: bool | None, shared: SharedEvent, key: Key) -> Any:
        assert isinstance(self.context_value, Context)
        self.context_value.shared.executions.inc()
        result = super().execute_operation(serially)
        if self.is_awaitable(result):
            return self._keep_awaited(result, shared, key)
        self._keep(result, shared, key)
        return result

    async def _keep_awaited(self, pending: Awaitable[Any], shared: SharedEvent, key: Key) -> Any:
        result = await pending
        self._keep(result, shared, key)
        return result

    def _keep(self, result: Any, shared: SharedEvent, key: Key) -> None:
        if isinstance(result, ExecutionResult) and not result.errors:
            assert isinstance(self.context_value, Context)
            self.context_value.shared.keep(shared, key, result)


class Executed:
    """Stands for the per-event executor of a result already executed: graphql-core asks
    it for the result and nothing else, so no executor is copied for a shared one."""

    __slots__ = ("result",)

    def __init__(self, result: ExecutionResult) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> ExecutionResult:
        return self.result
