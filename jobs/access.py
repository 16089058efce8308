"""Who is calling, and what they may do: permissions per job kind and action.

A permission is `<kind>:<action>` with the kind's metric prefix (`report:run`,
`gis_export:read`, ...), plus `admin` (everything, everyone's jobs) and `data:import`.
`<kind>:run` implies `<kind>:read`: a caller who may start a job may watch it and fetch its
files. Outside admin, a caller sees the jobs it owns, its team's TEAM jobs and every
COUNTY job, each only of the kinds it may read; this module is the one place that rule is
written, once for a row or event (`sees`) and once in SQL (`visible`), and the lifecycle,
the listing, the change feed, the event feed and the file links all ask it. Seeing is not
steering: only the owner (or admin) may cancel or retry a job (`steers`), so a teammate can
follow a shared run without being able to stop someone else's work.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, or_, true

from jobs.registry import KINDS
from jobs.spec import BadInput, JobKind

Action = Literal["run", "read"]
ADMIN = "admin"
DATA_IMPORT = "data:import"


def permission(kind: JobKind, action: Action) -> str:
    return f"{KINDS[kind].metric_prefix}:{action}"


def all_permissions() -> list[str]:
    """Every permission a token may carry, for the CLI's validation and help."""
    per_kind = [permission(kind, action) for kind in KINDS for action in ("run", "read")]
    return [ADMIN, DATA_IMPORT, *per_kind]


class Visibility(enum.StrEnum):
    """Who besides its owner (and admins) may see a job."""

    PRIVATE = "PRIVATE"
    TEAM = "TEAM"
    COUNTY = "COUNTY"


def parse_visibility(value: Any) -> Visibility:
    try:
        return Visibility(value or Visibility.PRIVATE)
    except ValueError:
        allowed = ", ".join(v.value for v in Visibility)
        raise BadInput("visibility", f"must be one of {allowed}") from None


class Unauthenticated(Exception):
    """No token, or one that is unknown or revoked."""


class Forbidden(Exception):
    """A valid caller without the permission the operation needs."""

    def __init__(self, needed: str, message: str | None = None) -> None:
        super().__init__(message or f"this operation needs the permission {needed!r}")
        self.needed = needed


@dataclass(frozen=True)
class Caller:
    name: str
    permissions: frozenset[str]
    team: str | None = None

    @classmethod
    def of(cls, name: str, permissions: Iterable[str], team: str | None = None) -> Caller:
        return cls(name, frozenset(permissions), team)

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.permissions

    def can(self, kind: JobKind, action: Action) -> bool:
        return kind in (self._readable if action == "read" else self._runnable)

    @functools.cached_property
    def _runnable(self) -> frozenset[JobKind]:
        """The kinds this caller may run, worked out once: a caller (the token cache's, or
        the anonymous admin) answers several `can`s on every request."""
        return frozenset(
            kind for kind in KINDS if self.is_admin or permission(kind, "run") in self.permissions
        )

    @functools.cached_property
    def _readable(self) -> frozenset[JobKind]:
        """`<kind>:run` implies `<kind>:read`."""
        return self._runnable | {
            kind for kind in KINDS if permission(kind, "read") in self.permissions
        }

    def require(self, kind: JobKind, action: Action) -> None:
        if not self.can(kind, action):
            raise Forbidden(permission(kind, action))

    def readable_kinds(self) -> list[JobKind]:
        return [kind for kind in KINDS if kind in self._readable]

    def sees(
        self,
        kind: JobKind,
        owner: str | None,
        visibility: str = Visibility.PRIVATE,
        team: str | None = None,
    ) -> bool:
        """Whether a job of `kind` owned by `owner` (shared as `visibility`, with the owner's
        `team`) exists as far as this caller can tell."""
        if not self.can(kind, "read"):
            return False
        if self.is_admin or owner == self.name or visibility == Visibility.COUNTY:
            return True
        return visibility == Visibility.TEAM and team is not None and team == self.team

    def sees_event(self, event: Mapping[str, Any]) -> bool:
        """The event-feed form of `sees`; malformed events are nobody's."""
        try:
            kind = JobKind(str(event.get("kind")))
        except ValueError:
            return False
        visibility = str(event.get("visibility") or Visibility.PRIVATE)
        return self.sees(kind, event.get("owner"), visibility, event.get("team"))

    @property
    def visibility_key(self) -> tuple[Any, ...]:
        """Equal for callers who see the same jobs (`sees`): every admin alike, anyone else
        by name, team and the kinds it may read. Subscribers share results by it."""
        if self.is_admin:
            return (ADMIN,)
        return (self.name, self.team, tuple(self.readable_kinds()))

    def visible(self, model: Any) -> ColumnElement[bool]:
        """`sees` in SQL over a job table (the kinds it may read are filtered by the caller)."""
        if self.is_admin:
            return true()
        shared = [model.owner == self.name, model.visibility == Visibility.COUNTY.value]
        if self.team is not None:
            shared.append(and_(model.visibility == Visibility.TEAM.value, model.team == self.team))
        return or_(*shared)

    def steers(self, owner: str | None) -> bool:
        """Whether this caller may cancel or retry a job it sees: its own, or any as admin."""
        return self.is_admin or owner == self.name


ANONYMOUS_ADMIN = Caller.of("anonymous", [ADMIN])
"""The caller of every request when authentication is disabled (AUTH_DISABLED=true)."""
