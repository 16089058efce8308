"""Run Alembic from code, so no command needs an alembic.ini or a checkout.

An installed distribution carries the migrations as the package data folder `app/migrations`
(built from the top-level `alembic/` folder, see setup.py); a checkout installed in editable
mode has only that source folder, so it is used when the packaged one is absent.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

from alembic import command

PACKAGED_MIGRATIONS = Path(__file__).with_name("migrations")
SOURCE_MIGRATIONS = Path(__file__).resolve().parents[1] / "alembic"


def script_location() -> Path:
    """The folder holding env.py and versions/ for this installation."""
    if PACKAGED_MIGRATIONS.is_dir():
        return PACKAGED_MIGRATIONS
    return SOURCE_MIGRATIONS


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def check(database_url: str) -> None:
    """Raise when the models and the migrated schema differ."""
    command.check(alembic_config(database_url))
