"""The built wheel alone carries what the app needs at run time.

The wheel is built from a copy of the source tree and installed into a fresh virtualenv.
That virtualenv borrows this one's already-installed dependencies through a .pth file (so
nothing is downloaded), but not the checkout: commands run in an empty folder, and a path
file's own path files are never processed, so this venv's editable install of the checkout
is invisible there. Whatever the commands find, they found in the wheel.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import tomllib
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from app.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
SOURCE_IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".terrafusion"
)


class Installed:
    def __init__(self, venv: Path, wheel: Path, cwd: Path) -> None:
        self.venv = venv
        self.wheel = wheel
        self.cwd = cwd
        self.python = venv / "bin" / "python"
        self.terrafusion = venv / "bin" / "terrafusion"

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        for name in ("DATABASE_URL", "REDIS_URL", "DATA_DIR", "VIRTUAL_ENV"):
            base.pop(name, None)
        return {**base, "PATH": f"{self.venv / 'bin'}:{base.get('PATH', '')}", **extra}

    def run(self, *args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args],
            cwd=self.cwd,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=SOURCE_IGNORED)
    dist = base / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("terrafusion_jobs-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    site = subprocess.run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()
    (Path(site) / "_borrowed_dependencies.pth").write_text(
        "\n".join(sorted({ours["purelib"], ours["platlib"]})) + "\n"
    )
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python"]
    done = subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--no-index", wheel],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    empty = base / "empty"
    empty.mkdir()
    yield Installed(venv, wheel, empty)


def test_the_wheel_holds_migrations_assets_and_sdl_and_no_alembic_package(
    installed: Installed,
) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    revisions = sorted(p.name for p in (ROOT / "alembic" / "versions").glob("*.py"))
    assert revisions
    for revision in revisions:
        assert f"app/migrations/versions/{revision}" in names
    assert {"app/migrations/env.py", "app/migrations/script.py.mako"} <= names
    assert "schema/schema.graphql" in names
    assert "app/static/graphiql/graphiql.min.js" in names
    assert not any(name.startswith("alembic/") for name in names), "would shadow the library"
    for package in ("app", "schema", "resolvers", "jobs"):
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                assert path.relative_to(ROOT).as_posix() in names, f"{path} is not in the wheel"
    where = installed.run(installed.python, "-c", "import app, alembic; print(app.__file__)")
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(installed.venv)), "imported the checkout"


def test_migrate_from_an_empty_folder_then_alembic_check_is_clean(
    installed: Installed, empty_database: str
) -> None:
    migrated = installed.run(installed.terrafusion, "migrate", DATABASE_URL=empty_database)
    assert migrated.returncode == 0, migrated.stderr
    assert "database is at the latest revision" in migrated.stdout
    # Alembic's own command line, pointed at the installed migrations by package name.
    (installed.cwd / "alembic.ini").write_text("[alembic]\nscript_location = app:migrations\n")
    try:
        checked = installed.run(
            installed.python, "-m", "alembic", "check", DATABASE_URL=empty_database
        )
    finally:
        (installed.cwd / "alembic.ini").unlink()
    assert checked.returncode == 0, checked.stderr
    assert "No new upgrade operations detected" in checked.stdout + checked.stderr


def test_serve_from_an_empty_folder_serves_graphiql_and_its_assets(
    installed: Installed, database_url: str, redis_url: str
) -> None:
    port = free_port()
    prefix = f"tf-test:{uuid.uuid4().hex[:10]}"
    server = subprocess.Popen(
        [installed.terrafusion, "serve", "--no-worker", "--no-demo", "--port", str(port)],
        cwd=installed.cwd,
        env=installed.env(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            QUEUE_NAME=f"{prefix}:queue",
            EVENTS_CHANNEL=f"{prefix}:events",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        page = _first_answer(server, f"{url}/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert "/static/graphiql/graphiql.min.js" in page.text
        assert httpx.get(f"{url}/").status_code == 200  # the dashboard's page
        script = httpx.get(f"{url}/static/graphiql/graphiql.min.js")
        assert script.status_code == 200
        assert len(script.content) > 100_000
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert "TerraFusion Jobs: GraphiQL at" in output


def _first_answer(server: subprocess.Popen[str], url: str, **kwargs: object) -> httpx.Response:
    """Poll until the server answers (migrating and starting take a few seconds)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(url, timeout=5, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _readme_command(after: str) -> str:
    """The first ```sh block of the README after the sentence starting with `after`."""
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index(after) :].split("```sh\n", 1)[1]
    return block.split("\n```", 1)[0].strip()


def test_ci_runs_the_readmes_test_command_and_both_commands_use_the_lock() -> None:
    test_command = _readme_command("Run the tests")
    serve_command = _readme_command("Run the server")
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()
    for command in (test_command, serve_command):
        assert "-c requirements.lock" in command


def test_the_lock_pins_every_declared_dependency() -> None:
    """A dependency added to pyproject.toml without refreshing the lock would float."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    pinned = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, version = line.split("==")
            pinned[canonicalize_name(name)] = version.strip()
    for dependency in map(Requirement, declared):
        name = canonicalize_name(dependency.name)
        assert name in pinned, f"{name} is not in requirements.lock: refresh it"
        assert dependency.specifier.contains(pinned[name]), f"{name}=={pinned[name]} is stale"
