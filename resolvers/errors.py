"""Domain errors as GraphQL errors with the contract's `extensions.code`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from graphql import GraphQLError

from app.auth import AuthUnavailable
from app.limits import TooManySubscriptions
from jobs.access import Forbidden, Unauthenticated
from jobs.changes import CursorExpired
from jobs.lifecycle import InvalidJobState, JobNotFound
from jobs.schedules import ScheduleNotFound
from jobs.spec import BadInput
from jobs.templates import TemplateNotFound


def user_error(message: str, code: str, **extensions: object) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


@contextmanager
def client_errors() -> Iterator[None]:
    """Turn the lifecycle's refusals into errors a client can act on."""
    try:
        yield
    except BadInput as exc:
        raise user_error(str(exc), "BAD_USER_INPUT", field=exc.field) from None
    except JobNotFound as exc:
        raise user_error(f"no job with id {exc}", "NOT_FOUND") from None
    except (TemplateNotFound, ScheduleNotFound) as exc:
        raise user_error(str(exc), "NOT_FOUND") from None
    except InvalidJobState as exc:
        raise user_error(str(exc), "INVALID_JOB_STATE") from None
    except Unauthenticated as exc:
        raise user_error(str(exc), "UNAUTHENTICATED") from None
    except Forbidden as exc:
        raise user_error(str(exc), "FORBIDDEN", permission=exc.needed) from None
    except CursorExpired as exc:
        raise user_error(str(exc), "CURSOR_EXPIRED") from None
    except TooManySubscriptions as exc:
        raise user_error(str(exc), "TOO_MANY_SUBSCRIPTIONS") from None
    except AuthUnavailable:
        raise user_error(
            "the database is unavailable; try again shortly", "SERVICE_UNAVAILABLE"
        ) from None
