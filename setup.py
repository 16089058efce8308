"""What pyproject.toml cannot say: the migrations ship as the package ``app.migrations``.

Their source stays the top-level ``alembic/`` folder (where Alembic's tooling and the design
expect it); installed under that name they would shadow the ``alembic`` library itself.
"""

from setuptools import find_namespace_packages, setup

MIGRATIONS = {"app.migrations": "alembic"}

setup(
    packages=[
        *find_namespace_packages(include=["app*", "schema*", "resolvers*", "jobs*"]),
        "app.migrations",
        "app.migrations.versions",
    ],
    package_dir=MIGRATIONS,
)
