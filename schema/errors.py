"""Every error a client sees carries an `extensions.code`, and none leaks internals.

Errors raised on purpose already have a code. GraphQL's own validation and variable
coercion errors (a missing required field, a string where an Int goes) are the client's
input, so they become BAD_USER_INPUT with graphql-core's message, which names the field.
PostgreSQL or Redis being unreachable is SERVICE_UNAVAILABLE (retry shortly); anything else
is a bug: the client gets a reference to quote, the log gets the traceback under it.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.error import GraphQLSyntaxError
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

log = logging.getLogger("terrafusion.graphql")


_COERCION_PATH = re.compile(r"^Variable '\$\w+' has invalid value at \.([\w.\[\]]+)")
"""graphql-core's message for a variable that does not fit its type names the input path."""


def _is_outage(exc: BaseException) -> bool:
    """PostgreSQL or Redis unreachable: the client should retry, not report a bug."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OSError | OperationalError | InterfaceError | RedisError)


class Schema(strawberry.Schema):
    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """One result per request: a subscription needs a stream (a websocket, or HTTP with
        `Accept: multipart/mixed;subscriptionSpec=1.0`), so here it is refused (HTTP 400)
        before it runs, instead of failing inside."""
        allowed = set(allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES)
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed - {OperationType.SUBSCRIPTION},
            operation_extensions,
        )

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            extensions = dict(error.extensions or {})
            if "code" in extensions:
                error.extensions = extensions
                continue
            original = error.original_error
            if isinstance(error, GraphQLSyntaxError) or isinstance(original, GraphQLSyntaxError):
                extensions["code"] = "GRAPHQL_PARSE_FAILED"
            elif isinstance(original, InvalidOperationTypeError):
                extensions["code"] = "BAD_USER_INPUT"
                error.message += (
                    " on a subscription stream; send queries and mutations with "
                    "Accept: application/json"
                )
            elif original is None or (
                isinstance(original, GraphQLError) and original.original_error is None
            ):
                extensions["code"] = "BAD_USER_INPUT"
                where = _COERCION_PATH.search(error.message)
                if where:
                    extensions["field"] = where.group(1)
            elif error.path is None and (where := _COERCION_PATH.search(error.message)):
                # A variable graphql-core could not coerce, even where its own suggestion
                # code tripped over the value (an 'İ' once did): the client's input.
                log.warning("variable coercion failed on %s: %r", where.group(1), original)
                extensions["code"] = "BAD_USER_INPUT"
                extensions["field"] = where.group(1)
                error.original_error = None
            elif _is_outage(original):
                reference = uuid.uuid4().hex[:12]
                log.warning("service unavailable ref=%s: %s", reference, original)
                extensions["code"] = "SERVICE_UNAVAILABLE"
                extensions["reference"] = reference
                error.message = (
                    "the database or queue is unavailable; try again shortly "
                    f"(reference {reference})"
                )
                error.original_error = None
            else:
                reference = uuid.uuid4().hex[:12]
                log.error("internal error ref=%s", reference, exc_info=original)
                extensions["code"] = "INTERNAL_SERVER_ERROR"
                extensions["reference"] = reference
                error.message = f"internal server error (reference {reference})"
                error.original_error = None
            error.extensions = extensions
