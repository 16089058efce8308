"""Where the database and Redis are: the environment's URLs, or embedded servers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from app.config import Settings
from app.embedded import EmbeddedPostgres, EmbeddedRedis

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    """The settings with `database_url` and `redis_url` filled in."""
    postgres: EmbeddedPostgres | None = field(default=None)
    owned_redis: EmbeddedRedis | None = field(default=None)

    def close(self) -> None:
        if self.owned_redis is not None:
            self.owned_redis.stop()
        if self.postgres is not None:
            self.postgres.stop()


def open_services(settings: Settings, *, redis: bool = True) -> Services:
    """Resolve URLs, starting embedded servers in `settings.data_dir` for those unset.

    PostgreSQL is shared by every command on the same folder; an embedded Redis already run
    by another command on the folder is joined rather than started twice.
    """
    updates: dict[str, str] = {}
    owned: EmbeddedRedis | None = None
    postgres: EmbeddedPostgres | None = None
    if settings.database_url is None:
        postgres = EmbeddedPostgres(settings.data_dir.resolve())
        updates["database_url"] = postgres.url
        log.info("using embedded PostgreSQL in %s", settings.data_dir / "postgres")
    if redis and settings.redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir.resolve())
        if not embedded.running_elsewhere():
            owned = embedded.start()
        updates["redis_url"] = embedded.url
        log.info("using embedded Redis at %s", embedded.url)
    return Services(settings.model_copy(update=updates), postgres, owned)
