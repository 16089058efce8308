"""The executor that lets subscribers alike share one execution per event.

See resolvers.shared_events for what is shared and when.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any, cast

from graphql import ExecutionResult
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.downloads import public_base_url
from jobs.access import ANONYMOUS_ADMIN
from resolvers.context import Context
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
