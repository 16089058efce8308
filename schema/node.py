"""Relay's `Node`: one interface for "any object with a global id", fetched by `Query.node`.

Every job is a Node, its `id` the job's UUID (unique across the four kinds' tables), so a
client cache can normalise every job by `__typename:id` and refetch it with `node(id:)`.
"""

from __future__ import annotations

import strawberry


@strawberry.interface(description="An object with a globally unique id (Relay).")
class Node:
    id: strawberry.ID
