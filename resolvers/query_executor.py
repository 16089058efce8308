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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    Undefined,
)
from graphql.execution import Executor
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path
from strawberry.schema.base import BaseSchema
from strawberry.schema.schema import Schema, StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

LEAF_TYPES = (GraphQLScalarType, GraphQLEnumType)


class QueryExecutor(Executor[Any]):
    operation_extensions: dict[str, Any] | None = None
    """Strawberry's `Info.operation_extensions`; the short way has none (see `_direct`)."""

    build_resolve_info = StrawberryGraphQLCoreExecutionContext.build_resolve_info

    def __init__(
        self, *args: Any, basic_resolvers: frozenset[Callable[..., Any]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.basic_resolvers = basic_resolvers

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
        if (
            field_def is None
            or field_def.resolve not in self.basic_resolvers
            or node.arguments
            or self.middleware_manager
        ):
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
