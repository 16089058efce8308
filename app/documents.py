"""Each distinct GraphQL document is parsed, measured and validated once, then reused.

Clients send the same few documents over and over; parsing and validating each again was
most of a small query's time. `DocumentCache` keeps, per document text (a bounded LRU),
the parsed document, its figures (app.query_limits) and graphql-core's validation
errors. `CheckedDocuments` is the Strawberry extension that uses it on every request:

- parse: the token limit bounds the parser; a document past it, or nested too deeply for
  the parser, is refused as QUERY_TOO_COMPLEX;
- validate: the operation's depth, aliases, fields and cost are checked first, so an
  over-limit document never reaches graphql-core's validation or execution; then the
  cached validation errors; then the variables (per request, never cached): no NaN or
  Infinity, no lone UTF-16 surrogate, which JSON allows and no column can store.

Every refusal is a GraphQL error with a code; nothing here runs longer than the document
is long.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from graphql import (
    BREAK,
    DirectiveNode,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    Visitor,
    parse,
    visit,
)
from graphql.validation import ASTValidationRule, MaxIntrospectionDepthRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from app.config import Settings
from app.query_limits import Measure, TooDeeplyNested, measure_operations

MAX_VARIABLE_DEPTH = 100
"""Far deeper than any input needs, far shallower than what breaks Python's recursion."""
MAX_CACHED_TEXT = 10_000
"""Longer documents are parsed every time: the cache's memory stays bounded by count."""


def too_complex(message: str, limit: str, allowed: int, found: int | None = None) -> GraphQLError:
    extensions: dict[str, Any] = {"code": "QUERY_TOO_COMPLEX", "limit": limit, "allowed": allowed}
    if found is not None:
        extensions["found"] = found
    return GraphQLError(message, extensions=extensions)


@dataclass(frozen=True)
class QueryLimits:
    depth: int
    aliases: int
    fields: int
    cost: int
    overlaps: int
    tokens: int
    max_page: int

    @classmethod
    def of(cls, settings: Settings, max_page: int) -> QueryLimits:
        return cls(
            depth=settings.max_query_depth,
            aliases=settings.max_aliases,
            fields=settings.max_query_fields,
            cost=settings.max_query_cost,
            overlaps=settings.max_field_overlaps,
            tokens=settings.max_query_tokens,
            max_page=max_page,
        )

    def refusal(self, m: Measure) -> GraphQLError | None:
        """The first limit `m` exceeds, as the error a client gets; None within all."""
        for limit, setting, message in CHECKS:
            found, allowed = getattr(m, limit), getattr(self, limit)
            if found > allowed:
                text = message.format(found=found, allowed=allowed)
                return too_complex(f"{text} ({setting})", limit, allowed, found)
        return None


CHECKS = (
    (
        "depth",
        "MAX_QUERY_DEPTH",
        "the query's depth is {found} (fields nested in fields); at most {allowed} is allowed",
    ),
    (
        "aliases",
        "MAX_ALIASES",
        "the query has {found} aliases with its fragments expanded; at most {allowed} are allowed",
    ),
    (
        "fields",
        "MAX_QUERY_FIELDS",
        "the query selects {found} fields with its fragments expanded; at most {allowed} are "
        "allowed",
    ),
    (
        "cost",
        "MAX_QUERY_COST",
        "the query's estimated cost is {found} (1 per field, `first: N` pages N times their "
        "selection); at most {allowed} is allowed",
    ),
    (
        "overlaps",
        "MAX_FIELD_OVERLAPS",
        "the query repeats same-named fields whose merging costs {found} comparisons to "
        "check; at most {allowed} are allowed",
    ),
)
"""(figure, its setting, the message) in the order they are checked."""


@dataclass
class Entry:
    document: DocumentNode
    measures: dict[str | None, Measure] | None
    """None when the document nests too deeply to be measured at all."""
    errors: list[GraphQLError] | None = None
    refusals: dict[str | None, GraphQLError | None] = field(default_factory=dict)
    directives: bool = True
    """Whether a directive appears anywhere in it (resolvers.query_executor reuses a
    completed object only for documents without one)."""


class DocumentCache:
    """Parsed, measured and validated documents by text; at most `size`, least recent out."""

    def __init__(self, schema: GraphQLSchema, limits: QueryLimits, size: int) -> None:
        self.schema = schema
        self.limits = limits
        self.size = size
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, text: str) -> Entry | None:
        entry = self._entries.get(text)
        if entry is not None:
            self._entries.move_to_end(text)
        return entry

    def entry(self, text: str) -> Entry | None:
        """The document's entry, parsed now if it is new; None when it does not parse
        within the token limit (Strawberry's own parse then reports why)."""
        found = self.lookup(text)
        if found is not None:
            return found
        try:
            document = parse(text, max_tokens=self.limits.tokens)
        except (GraphQLError, RecursionError):
            return None
        return self.add(text, document)

    def document(self, text: str) -> DocumentNode | None:
        found = self.entry(text)
        return found.document if found is not None else None

    def add(self, text: str, document: DocumentNode) -> Entry:
        try:
            measures: dict[str | None, Measure] | None = measure_operations(
                document, self.schema, self.limits.max_page
            )
        except (TooDeeplyNested, RecursionError):
            measures = None
        entry = Entry(document, measures, directives=uses_directives(document))
        if self.size and len(text) <= MAX_CACHED_TEXT:
            self._entries[text] = entry
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return entry

    def refusal(self, entry: Entry, operation_name: str | None) -> GraphQLError | None:
        """The limit error for the operation that runs, computed once per document."""
        if operation_name in entry.refusals:
            return entry.refusals[operation_name]
        if entry.measures is None:
            refusal: GraphQLError | None = too_complex(
                "the query nests selections or fragments too deeply to be checked; its depth "
                f"may be at most {self.limits.depth} (MAX_QUERY_DEPTH)",
                "depth",
                self.limits.depth,
            )
        else:
            chosen = operation_named(entry.document, operation_name)
            figures = (
                [entry.measures.get(chosen.name.value if chosen.name else None, Measure())]
                if chosen is not None
                else list(entry.measures.values())
            )
            refusal = next((r for r in map(self.limits.refusal, figures) if r is not None), None)
        if entry.measures is None or operation_name is None or operation_name in entry.measures:
            entry.refusals[operation_name] = refusal  # never a name of the client's invention
        return refusal

    def runnable(self, text: str, operation_name: str | None, variables: Any) -> Entry | None:
        """The document, when a request for it has nothing left for the parse and validate
        steps to do: seen before and valid (graphql-core's errors computed, and none), within
        every limit for this operation, a query or mutation, its variables fine. None: the
        request goes the whole way, which reports whatever is wrong."""
        entry = self._entries.get(text)
        if entry is None or entry.errors is None or entry.errors:
            return None
        if self.refusal(entry, operation_name) is not None:
            return None
        chosen = operation_named(entry.document, operation_name)
        if chosen is None or chosen.operation is OperationType.SUBSCRIPTION:
            return None
        if bad_variable(variables or {}) is not None:
            return None
        self._entries.move_to_end(text)
        return entry

    def validation_errors(
        self, entry: Entry, rules: tuple[type[ASTValidationRule], ...]
    ) -> list[GraphQLError]:
        if entry.errors is None:
            entry.errors = validate_document(self.schema, entry.document, rules)
        return entry.errors


class _FindDirective(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_directive(self, node: DirectiveNode, *_: Any) -> Any:
        self.found = True
        return BREAK


def uses_directives(document: DocumentNode) -> bool:
    finder = _FindDirective()
    visit(document, finder)
    return finder.found


def operation_named(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)


def bad_variable(variables: Any) -> GraphQLError | None:
    """A variable value JSON allows but nothing may take: NaN/Infinity, lone surrogates,
    or nesting past MAX_VARIABLE_DEPTH (Python's own recursion would fail on it first).

    Walked without recursion; names the value's path from the variables (`input.x[2]`).
    """
    stack: list[tuple[str, Any, int]] = [("", variables, 0)]
    while stack:
        path, value, depth = stack.pop()
        problem = None
        if depth > MAX_VARIABLE_DEPTH:
            problem = f"nests deeper than {MAX_VARIABLE_DEPTH} levels"
        elif isinstance(value, float) and not math.isfinite(value):
            problem = f"is {value}; numbers must be finite"
        elif isinstance(value, str):
            if _has_lone_surrogate(value):
                problem = "contains a lone UTF-16 surrogate (\\ud800-\\udfff); send valid Unicode"
        elif isinstance(value, dict):
            for key, child in value.items():
                if isinstance(key, str) and _has_lone_surrogate(key):
                    problem = "has a key with a lone UTF-16 surrogate"
                    break
                stack.append((f"{path}.{key}" if path else str(key), child, depth + 1))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", child, depth + 1) for i, child in enumerate(value))
        if problem is not None:
            field = path[:200]
            return GraphQLError(
                f"variable {field or '(variables)'} {problem}",
                extensions={"code": "BAD_USER_INPUT", "field": field},
            )
    return None


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class CheckedDocuments(SchemaExtension):
    """Strawberry's parse and validate steps, through a `DocumentCache`."""

    def __init__(self, *, cache: DocumentCache) -> None:
        self.cache = cache
        self.entry: Entry | None = None

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self.cache.limits.tokens
        context.validation_rules = (*context.validation_rules, MaxIntrospectionDepthRule)
        yield

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        text = context.query
        if text is not None:
            self.entry = self.cache.entry(text)
            if self.entry is not None:
                context.graphql_document = self.entry.document
        yield
        for error in context.pre_execution_errors or []:
            self._recode_parse_error(error)

    def _recode_parse_error(self, error: GraphQLError) -> None:
        """Past the token limit, or too deep for the parser: a limit, not a typo."""
        limits = self.cache.limits
        too_deep = "nested too deeply" in error.message
        if isinstance(error.original_error, RecursionError) or too_deep:
            error.message = (
                "the query nests too deeply to be parsed; its depth may be at most "
                f"{limits.depth} (MAX_QUERY_DEPTH)"
            )
            error.original_error = None
            error.extensions = too_complex(error.message, "depth", limits.depth).extensions
        elif "tokens. Parsing aborted" in error.message:
            error.message = (
                f"the query has more than {limits.tokens} tokens; at most {limits.tokens} "
                "are allowed (MAX_QUERY_TOKENS)"
            )
            error.extensions = too_complex(error.message, "tokens", limits.tokens).extensions

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if self.entry is not None:
            refusal = self.cache.refusal(self.entry, context.operation_name)
            if refusal is not None:
                context.pre_execution_errors = [refusal]
            else:
                errors = self.cache.validation_errors(self.entry, context.validation_rules)
                variable_error = None if errors else bad_variable(context.variables or {})
                context.pre_execution_errors = [variable_error] if variable_error else list(errors)
        yield


def checked_documents(cache: DocumentCache) -> Callable[[], SchemaExtension]:
    """The extension factory: Strawberry builds extensions afresh for every request."""
    return partial(CheckedDocuments, cache=cache)
