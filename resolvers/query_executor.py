"""The executor of queries and mutations that take the short way (app.main `_direct`).

Strawberry's executor is graphql-core's incremental one (for `@defer` and `@stream`); the
schema declares neither directive (graphql-core refuses to `execute` with them), so no
document that passed validation can ask for incremental delivery, and that executor's
bookkeeping (execution plans, delivery groups, the pending-work check before every
response) never finds anything to do. graphql-core's plain executor runs the same fields
in the same order with the same errors; Strawberry's resolve info is built as its own
executor builds it, so resolvers see the same `Info`.

A field Strawberry resolves by reading an attribute (a "basic" field: no resolver, no
extension, no exception handler) ignores its resolve info, and completing a scalar or enum
value needs none either; most fields of a response are such, and building the info and
walking the generic completion was most of what executing one cost. For those
`execute_field` calls the same resolver and completes the value as graphql-core does,
without the info.

A query's root field that returns an object already completed once for the same field
node is answered with that completion (`CompletedObjects`): the API's objects are built
once per row and never changed (resolvers.rendered_jobs), and a subtree of basic fields,
`__typename` and no arguments reads nothing but the object, so it completes to the same
value every time. The root field itself still runs: `job(id)` still reads its row and
checks who may see it on every request. A subtree with any other field (a resolver, an
argument), an error, or anything awaited is never kept, and a document with a directive
anywhere does not use the store at all (`@include(if: $x)` makes the fields depend on
the variables, which the key leaves out).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    TypeNameMetaFieldDef,
    Undefined,
)
from graphql.execution import Executor
from graphql.execution.collect_fields import FieldDetailsList
from graphql.language import FieldNode
from graphql.pyutils import Path
from strawberry.schema.base import BaseSchema
from strawberry.schema.schema import Schema, StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

LEAF_TYPES = (GraphQLScalarType, GraphQLEnumType)

MAX_COMPLETED_OBJECTS = 256
"""Completions kept; as many as resolvers.rendered_jobs keeps objects."""


class CompletedObjects:
    """The completed value of a root field's object, by field node and object, for objects
    of the `shared` types only: those built once and handed to every request alike (a
    root field's fresh object, a page of jobs, would only fill the store).

    Each entry holds its node and object, so neither can be freed and its `id` reused by
    another while the entry stands; the oldest entry goes first."""

    def __init__(self, shared: tuple[type, ...], size: int = MAX_COMPLETED_OBJECTS) -> None:
        self.shared = shared
        self._size = size
        self._kept: dict[tuple[int, int], tuple[FieldNode, Any, Any]] = {}

    def get(self, node: FieldNode, source: Any) -> Any:
        kept = self._kept.get((id(node), id(source)))
        if kept is not None and kept[0] is node and kept[1] is source:
            return kept[2]
        return Undefined

    def keep(self, node: FieldNode, source: Any, value: Any) -> None:
        key = (id(node), id(source))
        if key not in self._kept and len(self._kept) >= self._size:
            del self._kept[next(iter(self._kept))]
        self._kept[key] = (node, source, value)


class QueryExecutor(Executor[Any]):
    operation_extensions: dict[str, Any] | None = None
    """Strawberry's `Info.operation_extensions`; the short way has none (see `_direct`)."""

    build_resolve_info = StrawberryGraphQLCoreExecutionContext.build_resolve_info

    def __init__(
        self,
        *args: Any,
        basic_resolvers: frozenset[Callable[..., Any]],
        completed: CompletedObjects | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.basic_resolvers = basic_resolvers
        self.completed = completed
        """None: nothing is kept or reused (not a query, or a document with directives)."""
        self.pure = True
        """No field but basic ones and `__typename` completed since the last reset."""

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """graphql-core's, or for a root field's object the completion kept for it."""
        completed = self.completed
        if (
            completed is None
            or path.prev is not None
            or len(field_details_list) != 1
            or not isinstance(result, completed.shared)
        ):
            return super().complete_value(
                return_type, field_details_list, info, path, result, position_context
            )
        node = field_details_list[0].node
        kept = completed.get(node, result)
        if kept is not Undefined:
            return kept
        errors = len(self.collected_errors.errors)
        # Nothing is awaited between here and the check below (an awaitable is not kept),
        # so no other field's completion can interleave and reset the mark meanwhile.
        self.pure = True
        value = super().complete_value(
            return_type, field_details_list, info, path, result, position_context
        )
        if (
            self.pure
            and len(self.collected_errors.errors) == errors
            and not self.is_awaitable(value)
        ):
            completed.keep(node, result, value)
        return value

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """graphql-core's `execute_field`, without the resolve info for a basic field of a
        scalar or enum type (or a non-null one): the same resolver called with the same
        source, the value completed and its errors located as `complete_value` and
        `handle_field_error` do."""
        node = field_details_list[0].node
        field_def = self.schema.get_field(parent_type, node.name.value)
        if field_def is TypeNameMetaFieldDef:
            return super().execute_field(
                parent_type, source, field_details_list, path, position_context
            )
        if (
            field_def is None
            or field_def.resolve not in self.basic_resolvers
            or node.arguments
            or self.middleware_manager
        ):
            self.pure = False
            return super().execute_field(
                parent_type, source, field_details_list, path, position_context
            )
        return_type = field_def.type
        non_null = isinstance(return_type, GraphQLNonNull)
        leaf: Any = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
        if not isinstance(leaf, LEAF_TYPES):
            return super().execute_field(
                parent_type, source, field_details_list, path, position_context
            )
        try:
            result = field_def.resolve(source, None)
            if isinstance(result, Exception):
                raise result
            if result is None or result is Undefined:
                if non_null:
                    raise TypeError(
                        "Cannot return null for non-nullable field"
                        f" {parent_type}.{node.name.value}."
                    )
                return None
            return self.complete_leaf_value(leaf, result)
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None


def basic_resolvers(schema: BaseSchema) -> frozenset[Callable[..., Any]]:
    """The resolvers Strawberry gave the schema's basic fields, attribute reads that take no
    info, by Strawberry's own test for one (`from_resolver`): `is_basic_field`, and no
    exception handler that may apply to the field."""
    assert isinstance(schema, Schema)
    converter = schema.schema_converter
    found = set()
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType):
            continue
        for field in graphql_type.fields.values():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if (
                isinstance(definition, StrawberryField)
                and definition.is_basic_field
                and not converter._get_field_exception_handlers(definition)
                and field.resolve is not None
            ):
                found.add(field.resolve)
    return frozenset(found)
