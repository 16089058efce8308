"""The assembled GraphQL schema."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter

from resolvers.mutations import Mutation
from resolvers.queries import Query
from resolvers.sharing_executor import SharingExecutor
from resolvers.subscriptions import Subscription
from schema.errors import Schema
from schema.job_types import JOB_TYPES
from schema.scalars import SCALARS

SDL_PATH = Path(__file__).with_name("schema.graphql")


class CachedNameConverter(NameConverter):
    """Strawberry turns each resolver argument's name into camelCase on every call (regular
    expressions, a tenth of subscribing a client); the names are few and fixed."""

    def __init__(self) -> None:
        super().__init__()
        self._names: dict[str, str] = {}

    def apply_naming_config(self, name: str) -> str:
        converted = self._names.get(name)
        if converted is None:
            converted = self._names[name] = super().apply_naming_config(name)
        return converted


def build_schema(extensions: Sequence[Callable[[], SchemaExtension]] = ()) -> strawberry.Schema:
    """The schema; `extensions` carry the app's query limits (none for the SDL export)."""
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=list(JOB_TYPES.values()),
        extensions=list(extensions),
        config=StrawberryConfig(scalar_map=SCALARS, name_converter=CachedNameConverter()),
        execution_context_class=SharingExecutor,
    )


def export_sdl() -> str:
    return build_schema().as_str() + "\n"


if __name__ == "__main__":
    SDL_PATH.write_text(export_sdl())
