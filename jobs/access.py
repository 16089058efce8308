"""Who is calling, and what they may do: permissions per job kind and action.

A permission is `<kind>:<action>` with the kind's metric prefix (`report:run`,
`gis_export:read`, ...), plus `admin` (everything, everyone's jobs) and `data:import`.
`<kind>:run` implies `<kind>:read`: a caller who may start a job may watch it and fetch its
files. Outside admin, a caller sees only the jobs it owns; this module is the one place
that rule is written (the lifecycle, the listing and the event feed all ask it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from jobs.registry import KINDS
from jobs.spec import JobKind

Action = Literal["run", "read"]
ADMIN = "admin"
DATA_IMPORT = "data:import"


def permission(kind: JobKind, action: Action) -> str:
    return f"{KINDS[kind].metric_prefix}:{action}"


def all_permissions() -> list[str]:
    """Every permission a token may carry, for the CLI's validation and help."""
    per_kind = [permission(kind, action) for kind in KINDS for action in ("run", "read")]
    return [ADMIN, DATA_IMPORT, *per_kind]


class Unauthenticated(Exception):
    """No token, or one that is unknown or revoked."""


class Forbidden(Exception):
    """A valid caller without the permission the operation needs."""

    def __init__(self, needed: str) -> None:
        super().__init__(f"this operation needs the permission {needed!r}")
        self.needed = needed


@dataclass(frozen=True)
class Caller:
    name: str
    permissions: frozenset[str]

    @classmethod
    def of(cls, name: str, permissions: Iterable[str]) -> Caller:
        return cls(name, frozenset(permissions))

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.permissions

    def can(self, kind: JobKind, action: Action) -> bool:
        if self.is_admin or permission(kind, "run") in self.permissions:
            return True
        return action == "read" and permission(kind, "read") in self.permissions

    def require(self, kind: JobKind, action: Action) -> None:
        if not self.can(kind, action):
            raise Forbidden(permission(kind, action))

    def readable_kinds(self) -> list[JobKind]:
        return [kind for kind in KINDS if self.can(kind, "read")]

    def sees(self, kind: JobKind, owner: str | None) -> bool:
        """Whether a job of `kind` owned by `owner` exists as far as this caller can tell."""
        return self.can(kind, "read") and (self.is_admin or owner == self.name)

    def sees_event(self, event: Mapping[str, Any]) -> bool:
        """The event-feed form of `sees`; malformed events are nobody's."""
        try:
            kind = JobKind(str(event.get("kind")))
        except ValueError:
            return False
        return self.sees(kind, event.get("owner"))


ANONYMOUS_ADMIN = Caller.of("anonymous", [ADMIN])
"""The caller of every request when authentication is disabled (AUTH_DISABLED=true)."""
