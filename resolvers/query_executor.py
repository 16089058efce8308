"""The executor of queries and mutations that take the short way (app.main `_direct`).

Strawberry's executor is graphql-core's incremental one (for `@defer` and `@stream`); the
schema declares neither directive (graphql-core refuses to `execute` with them), so no
document that passed validation can ask for incremental delivery, and that executor's
bookkeeping (execution plans, delivery groups, the pending-work check before every
response) never finds anything to do. graphql-core's plain executor runs the same fields
in the same order with the same errors; Strawberry's resolve info is built as its own
executor builds it, so resolvers see the same `Info`.
"""

from __future__ import annotations

from typing import Any

from graphql.execution import Executor
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class QueryExecutor(Executor[Any]):
    operation_extensions: dict[str, Any] | None = None
    """Strawberry's `Info.operation_extensions`; the short way has none (see `_direct`)."""

    build_resolve_info = StrawberryGraphQLCoreExecutionContext.build_resolve_info
