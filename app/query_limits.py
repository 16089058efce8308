"""What a GraphQL document asks for, measured in time linear in its size.

Depth, aliases, fields and an estimated cost are counted as if every fragment spread were
expanded in place, but each fragment is measured once and its figures reused wherever it
is spread: a fan-out of fragments that each spread the next twice expands to 2**n fields
and is measured in n steps. Counting the expansion (not the text) is what makes the
figures honest: that expansion is what execution would walk.

Cost: each field costs 1 plus its selection's cost, and a field taking `first` (a page)
costs `first` times its selection; a page size given as a variable counts as the largest
page, so the figure holds for every value the variables may take and can be computed
once per document. Introspection fields (`__schema`...) do not count towards depth, as
GraphiQL's schema query is deep by nature; graphql-core's MaxIntrospectionDepthRule
bounds their nesting instead.

Overlaps: graphql-core proves that fields answering to the same name in one selection can
be merged by comparing them pairwise, with their sub-selections: time quadratic in the
repeats (300 copies of `jobs { totalCount }` took 0.8 s). Each selection set contributes
its pairs of same-named fields (a spread fragment's fields count once per set, as
graphql-core collects them), each pair weighted by the fields it compares; a bound on the
sum keeps validation short.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
)

CAP = 10**12
"""Figures saturate here: a fan-out's 2**40 fields stay a small number to compare."""
MAX_NESTING = 200
"""Selections and fragments nested deeper than this are refused without walking further."""
PAGE_ARGUMENT = "first"


@dataclass(frozen=True)
class Measure:
    depth: int = 0
    aliases: int = 0
    fields: int = 0
    cost: int = 0
    overlaps: int = 0
    """The document's, not the operation's: graphql-core validates the whole document."""

    def __add__(self, other: Measure) -> Measure:
        """Two selections side by side: the deeper depth, the other figures summed."""
        return Measure(
            max(self.depth, other.depth),
            min(self.aliases + other.aliases, CAP),
            min(self.fields + other.fields, CAP),
            min(self.cost + other.cost, CAP),
        )


Names = dict[str, tuple[int, int]]
"""A selection set's response names: how many fields answer to each, the largest's size."""


def _merge(into: Names, other: Names) -> None:
    for name, (count, size) in other.items():
        had, largest = into.get(name, (0, 0))
        into[name] = (had + count, max(largest, size))


class TooDeeplyNested(Exception):
    """The document nests selections or fragments past MAX_NESTING."""


class _Walker:
    def __init__(self, document: DocumentNode, schema: GraphQLSchema, max_page: int) -> None:
        self.schema = schema
        self.max_page = max_page
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.measured: dict[str, tuple[Measure, Names]] = {}
        self.entered: set[str] = set()
        self.overlaps = 0

    def operation(self, op: OperationDefinitionNode) -> Measure:
        root = {
            OperationType.QUERY: self.schema.query_type,
            OperationType.MUTATION: self.schema.mutation_type,
            OperationType.SUBSCRIPTION: self.schema.subscription_type,
        }[op.operation]
        return self.selections(op.selection_set, root, 1)[0]

    def selections(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None, nesting: int
    ) -> tuple[Measure, Names]:
        if nesting > MAX_NESTING:
            raise TooDeeplyNested
        total = Measure()
        names: Names = {}
        spread: set[str] = set()
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                measure = self.field(node, parent, nesting)
                _merge(names, {(node.alias or node.name).value: (1, measure.fields)})
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                measure, inner_names = self.selections(node.selection_set, inner, nesting + 1)
                _merge(names, inner_names)
            elif isinstance(node, FragmentSpreadNode):
                measure, fragment_names = self.fragment(node.name.value, nesting + 1)
                if node.name.value not in spread:
                    spread.add(node.name.value)
                    _merge(names, fragment_names)
            else:
                continue
            total += measure
        pairs = sum(count * (count - 1) // 2 * (1 + size) for count, size in names.values())
        self.overlaps = min(self.overlaps + pairs, CAP)
        return total, names

    def fragment(self, name: str, nesting: int) -> tuple[Measure, Names]:
        if name in self.measured:
            return self.measured[name]
        definition = self.fragments.get(name)
        if definition is None or name in self.entered:
            # Unknown fragments and cycles are validation errors graphql-core reports.
            return Measure(), {}
        self.entered.add(name)
        parent = self.schema.get_type(definition.type_condition.name.value)
        measured = self.selections(definition.selection_set, parent, nesting)
        self.entered.discard(name)
        self.measured[name] = measured
        return measured

    def field(self, node: FieldNode, parent: GraphQLNamedType | None, nesting: int) -> Measure:
        definition = _field_definition(parent, node.name.value)
        inner = Measure()
        if node.selection_set is not None:
            child = get_named_type(definition.type) if definition else None
            inner = self.selections(node.selection_set, child, nesting + 1)[0]
        introspection = node.name.value.startswith("__")
        depth = 0 if introspection else 1 + inner.depth
        page = self.page_size(node, definition)
        return Measure(
            depth,
            min((1 if node.alias else 0) + inner.aliases, CAP),
            min(1 + inner.fields, CAP),
            min(1 + page * inner.cost, CAP),
        )

    def page_size(self, node: FieldNode, definition: GraphQLField | None) -> int:
        """The `first` a field is asked for; the largest page when a variable gives it."""
        if definition is None or PAGE_ARGUMENT not in definition.args:
            return 1
        given = next((a.value for a in node.arguments or () if a.name.value == PAGE_ARGUMENT), None)
        if given is None:
            default = definition.args[PAGE_ARGUMENT].default_value
            size = default if isinstance(default, int) else self.max_page
        elif isinstance(given, IntValueNode):
            size = int(given.value)
        else:
            size = self.max_page
        return max(1, min(size, self.max_page))


def _field_definition(parent: GraphQLNamedType | None, name: str) -> GraphQLField | None:
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        return parent.fields.get(name)
    return None


def measure_operations(
    document: DocumentNode, schema: GraphQLSchema, max_page: int
) -> dict[str | None, Measure]:
    """Each operation's figures by name (None for an anonymous one).

    Raises TooDeeplyNested for selections or fragment chains nested past MAX_NESTING.
    """
    walker = _Walker(document, schema, max_page)
    measures = {
        (d.name.value if d.name else None): walker.operation(d)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    }
    return {name: replace(m, overlaps=walker.overlaps) for name, m in measures.items()}
