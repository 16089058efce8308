"""Size limits every run input obeys, checked once before a kind's own validation.

The kinds validate meaning (a known county, a valid bbox); this bounds the work a hostile or
careless input can cause before that: string lengths (they end up in VARCHAR columns and
in error messages), list lengths, and the nesting depth of JSON values (deeply nested
`parameters` or `areaOfInterest` would otherwise recurse through every JSON encoder on the
way). PostgreSQL text cannot hold a NUL character, so none is accepted anywhere. Each
refusal names the field in its GraphQL spelling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobs.naming import MAX_DESCRIPTION, MAX_NAME
from jobs.params import graphql_name
from jobs.spec import BadInput

MAX_STRING = 64
MAX_STRINGS = {"idempotency_key": 255, "name": MAX_NAME, "description": MAX_DESCRIPTION}
MAX_LIST_ITEMS = 16
MAX_JSON_DEPTH = 32
MAX_JSON_STRING = 1024


def _check_text(value: str, field: str, limit: int) -> None:
    if len(value) > limit:
        raise BadInput(field, f"is {len(value)} characters; at most {limit} are allowed")
    if "\x00" in value:
        raise BadInput(field, "contains a NUL character, which text may not hold")


def check_input_sizes(raw: Mapping[str, Any]) -> None:
    for key, value in raw.items():
        field = graphql_name(key)
        if isinstance(value, str):
            _check_text(value, field, MAX_STRINGS.get(key, MAX_STRING))
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            if len(value) > MAX_LIST_ITEMS:
                raise BadInput(field, f"has {len(value)} items; at most {MAX_LIST_ITEMS}")
            for i, item in enumerate(value):
                _check_text(item, f"{field}[{i}]", MAX_STRING)
        elif isinstance(value, Mapping | list):
            _check_json(value, field)


def _check_json(value: Any, field: str) -> None:
    """Depth and string sizes of a JSON value, walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadInput(field, f"is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, Mapping):
            for key, child in item.items():
                if len(str(key)) > MAX_JSON_STRING:
                    raise BadInput(field, f"has a key longer than {MAX_JSON_STRING} characters")
                if "\x00" in str(key):
                    raise BadInput(field, "has a key with a NUL character")
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if len(item) > MAX_JSON_STRING:
                raise BadInput(field, f"has a string longer than {MAX_JSON_STRING} characters")
            if "\x00" in item:
                raise BadInput(field, "has a string with a NUL character, which text may not hold")
