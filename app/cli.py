"""The terrafusion command: serve, worker, migrate, import, demo-data, token.

Every command takes --data-dir; with DATABASE_URL / REDIS_URL unset it uses (and shares)
the embedded servers of that folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from app.config import Settings
from app.demo_data import recent_first_year
from app.logs import configure_logging
from app.services import Services, open_services
from app.wording import counted

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from app.db import SessionFactory

T = TypeVar("T")
log = logging.getLogger("terrafusion")

LOCAL_ADMIN = "local-admin"
LOCAL_ADMIN_FILE = "local-admin.token"
DEMO_COUNTY = "COUNTY01"
DEMO_PARCELS = 20_000


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(data_dir=Path(args.data_dir))


def _progress_bar(label: str) -> Callable[[int, int | None], None]:
    """A one-line progress bar on stderr for the importer's (done, total) callbacks."""

    def show(done: int, total: int | None) -> None:
        if total:
            filled = int(30 * done / total)
            bar = "#" * filled + "." * (30 - filled)
            sys.stderr.write(f"\r{label} [{bar}] {done:,}/{total:,}")
        else:
            sys.stderr.write(f"\r{label} {counted(done, 'row')}")
        sys.stderr.flush()

    return show


async def _with_engine(services: Services, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    from app.db import create_engine

    engine = create_engine(services.settings.database_url or "")
    try:
        return await work(engine)
    finally:
        await engine.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.migrate import upgrade

    services = open_services(_settings(args), redis=False)
    upgrade(services.settings.database_url or "")
    print("database is at the latest revision")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from app.importer import DataFileError, import_file
    from app.migrate import upgrade

    services = open_services(_settings(args), redis=False)
    upgrade(services.settings.database_url or "")
    try:
        report = asyncio.run(
            _with_engine(
                services,
                lambda engine: import_file(
                    engine,
                    args.kind,
                    Path(args.file),
                    args.county,
                    progress=_progress_bar(f"{args.kind} {args.county}"),
                    allow_unknown_parcels=args.allow_unknown_parcels,
                ),
            )
        )
    except DataFileError as exc:
        sys.stderr.write(f"\nimport failed, nothing was written: {exc}\n")
        return 1
    sys.stderr.write("\n")
    loaded = f"{report.kind}: {counted(report.rows, 'row')} loaded into county {report.county_id}"
    if report.unknown_parcels:
        loaded += (
            f" ({counted(report.unknown_parcels, 'row')} for parcels not in the county,"
            " loaded as --allow-unknown-parcels asked)"
        )
    if report.replaced:
        loaded += f", replacing its {counted(report.replaced, 'earlier row')}"
    print(loaded)
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    from app.demo_data import load_demo_county
    from app.migrate import upgrade

    services = open_services(_settings(args), redis=False)
    upgrade(services.settings.database_url or "")
    report = asyncio.run(
        _with_engine(
            services,
            lambda engine: load_demo_county(
                engine,
                args.county,
                args.parcels,
                seed=args.seed,
                progress=_progress_bar("demo"),
                first_year=args.first_year,
            ),
        )
    )
    sys.stderr.write("\n")
    print(f"demo county {args.county}: {report}")
    return 0


async def _with_sessions(services: Services, work: Callable[[SessionFactory], Awaitable[T]]) -> T:
    from app.db import create_session_factory

    return await _with_engine(services, lambda engine: work(create_session_factory(engine)))


def _token_services(args: argparse.Namespace) -> Services:
    from app.migrate import upgrade

    services = open_services(_settings(args), redis=False)
    upgrade(services.settings.database_url or "")
    return services


def cmd_token_create(args: argparse.Namespace) -> int:
    from app.auth import TokenError, create_token

    services = _token_services(args)
    try:
        token = asyncio.run(
            _with_sessions(
                services,
                lambda sessions: create_token(
                    sessions, args.name, args.permissions.split(","), args.team
                ),
            )
        )
    except TokenError as exc:
        sys.stderr.write(f"token not created: {exc}\n")
        return 1
    team = f", team {args.team}" if args.team else ""
    print(f"token {args.name!r} created ({args.permissions}{team}); it is shown only now:")
    print(token)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    from app.auth import list_tokens

    tokens = asyncio.run(_with_sessions(_token_services(args), list_tokens))
    for t in tokens:
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        created = f"{t.created_at:%Y-%m-%d %H:%M}"
        team = f"team {t.team}" if t.team else "no team"
        print(f"{t.name}\t{','.join(t.permissions)}\t{team}\tcreated {created}\t{state}")
    if not tokens:
        print("no tokens; create one with: terrafusion token create --name NAME --permissions P")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from app.auth import TokenError, revoke_token

    services = _token_services(args)
    try:
        asyncio.run(_with_sessions(services, lambda sessions: revoke_token(sessions, args.name)))
    except TokenError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    print(f"token {args.name!r} revoked")
    return 0


def _local_admin_token(services: Services) -> str:
    """The embedded quick start's admin token: created on first start, kept (mode 0600) in
    the data folder so later starts can print it again; replaced if it was revoked."""
    from app.auth import authenticate, create_token, list_tokens

    path = services.settings.data_dir / LOCAL_ADMIN_FILE

    async def ensure(sessions: SessionFactory) -> str:
        if path.is_file():
            kept = path.read_text().strip()
            if await authenticate(sessions, kept) is not None:
                return kept
        existing = {t.name for t in await list_tokens(sessions)}
        name = LOCAL_ADMIN
        suffix = 2
        while name in existing:
            name, suffix = f"{LOCAL_ADMIN}-{suffix}", suffix + 1
        token = await create_token(sessions, name, ["admin"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(token + "\n")
        return token

    result: str = asyncio.run(_with_sessions(services, ensure))
    return result


def cmd_worker(args: argparse.Namespace) -> int:
    from jobs.worker import run_worker

    settings = _settings(args)
    if args.metrics_port is not None:
        settings = settings.model_copy(update={"worker_metrics_port": args.metrics_port})
    services = open_services(settings)
    try:
        asyncio.run(_until_signalled(run_worker(services.settings, burst=args.burst)))
    finally:
        services.close()
    return 0


async def _until_signalled(work: Coroutine[Any, Any, None]) -> None:
    """Run `work`; SIGTERM or SIGINT cancels it, so running jobs are handed back cleanly."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _spawn_worker(services: Services, data_dir: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": services.settings.database_url or "",
        "REDIS_URL": services.settings.redis_url or "",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--data-dir", data_dir], env=env
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from app.main import create_app
    from app.migrate import upgrade
    from app.websocket_server import server_options

    try:
        listener = _listen(args.host, args.port)
    except OSError as exc:
        sys.stderr.write(_listen_failure(args.host, args.port, exc))
        return 1
    settings = _settings(args).model_copy(update={"host": args.host, "port": args.port})
    worker: subprocess.Popen[bytes] | None = None
    services: Services | None = None
    try:
        services = open_services(settings)
        upgrade(services.settings.database_url or "")
        if not args.no_demo:
            _load_demo_if_empty(services)
        if not args.no_worker:
            worker = _spawn_worker(services, args.data_dir)
        banner = _banner(services, f"http://{args.host}:{args.port}/graphql")
        # uvicorn re-raises SIGTERM once it has shut down; exiting through Python instead of
        # the default handler lets the `finally` below stop the worker and embedded servers.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        options = server_options(services.settings)
        _run_uvicorn(create_app(services.settings), listener, banner, options)
    finally:
        listener.close()
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        if services is not None:
            services.close()
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """Bind the API's socket before anything else starts, so a taken port is reported at
    once (and cannot be taken between a check and uvicorn's own bind)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a port left in TIME_WAIT by a previous run is not "taken".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def _listen_failure(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (another terrafusion serve?); "
            f"choose a free one with --port, e.g. --port {port + 1}\n"
        )
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose with --host / --port\n"


def _banner(services: Services, url: str) -> str:
    site = url.removesuffix("/graphql")
    if services.settings.auth_disabled:
        return (
            f"TerraFusion Jobs: dashboard at {site}/\n"
            f"TerraFusion Jobs: GraphiQL at {url} (authentication disabled)"
        )
    if services.postgres is not None:
        token = _local_admin_token(services)
        kept = services.settings.data_dir / LOCAL_ADMIN_FILE
        return (
            f"TerraFusion Jobs: dashboard at {site}/#token={token}\n"
            f"TerraFusion Jobs: GraphiQL at {url}#token={token}\n"
            f"local admin token (kept in {kept}):\n{token}"
        )
    return (
        f"TerraFusion Jobs: dashboard at {site}/ (sign in with a token)\n"
        f"TerraFusion Jobs: GraphiQL at {url}#token=<token> "
        "(create one: terrafusion token create --name NAME --permissions admin)"
    )


def _run_uvicorn(app: Any, listener: socket.socket, banner: str, options: dict[str, Any]) -> None:
    """uvicorn on our socket, with our logging; the banner is printed once it accepts
    connections, so it comes after the start-up lines and stays in view."""
    import uvicorn

    from app.main import settle_heap

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                settle_heap()
                print(banner, flush=True)

    config = uvicorn.Config(app, log_config=None, log_level=None, lifespan="on", **options)
    Server(config).run(sockets=[listener])


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _load_demo_if_empty(services: Services) -> None:
    from sqlalchemy import func, select

    from app.demo_data import load_demo_county
    from app.models import Parcel

    async def load(engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            parcels = await conn.scalar(select(func.count()).select_from(Parcel))
        if parcels:
            return
        log.info("empty database: loading demo county %s", DEMO_COUNTY)
        await load_demo_county(engine, DEMO_COUNTY, DEMO_PARCELS, first_year=recent_first_year())

    asyncio.run(_with_engine(services, load))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="terrafusion", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument(
            "--data-dir",
            default=os.environ.get("DATA_DIR", ".terrafusion"),
            help="folder of the embedded servers and result files (default: DATA_DIR if set, "
            "else .terrafusion; now %(default)s)",
        )
        return p

    serve = command("serve", "run the API (and a worker); embedded servers if no URLs are set")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="run the API only (default: a worker process runs alongside)",
    )
    serve.add_argument(
        "--no-demo",
        action="store_true",
        help="do not load the demo county (default: loaded when the database is empty)",
    )
    serve.set_defaults(run=cmd_serve)

    worker = command("worker", "run a job worker")
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="port of the worker's /metrics, 0 disables it (default: WORKER_METRICS_PORT, 9108)",
    )
    worker.add_argument(
        "--burst",
        action="store_true",
        help="exit when the queue is empty (default: run until stopped)",
    )
    worker.set_defaults(run=cmd_worker)

    command("migrate", "bring the database schema to the latest revision").set_defaults(
        run=cmd_migrate
    )

    imp = command("import", "load a county data file (CSV, or GeoJSON for parcels and zoning)")
    imp.add_argument(
        "kind",
        choices=["parcels", "sales", "assessments", "zoning"],
        help="what the file holds (zoning replaces the county's zoning layer as a whole)",
    )
    imp.add_argument("file", help="path of the CSV (or GeoJSON) file")
    imp.add_argument("--county", required=True, help="county id the rows belong to (required)")
    imp.add_argument(
        "--allow-unknown-parcels",
        action="store_true",
        help="load sales or assessments of parcels the county does not have, and say how "
        "many (default: refuse the file)",
    )
    imp.set_defaults(run=cmd_import)

    token = command("token", "create, list and revoke API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")

    def token_command(name: str, help: str) -> argparse.ArgumentParser:
        p = token_sub.add_parser(name, help=help, description=help)
        p.add_argument("--data-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        return p

    create = token_command("create", "create a token; it is printed once, on the last line")
    create.add_argument(
        "--name", required=True, help="unique name; jobs are owned by it (required)"
    )
    create.add_argument(
        "--permissions",
        required=True,
        help="comma-separated: admin, data:import, <kind>:run, <kind>:read "
        "(kinds: report, market_analysis, gis_export, valuation) (required)",
    )
    create.add_argument(
        "--team",
        default=None,
        help="the team it belongs to: it sees the team's TEAM jobs, and its own TEAM jobs "
        "are shared with the team (default: none)",
    )
    create.set_defaults(run=cmd_token_create)
    token_command("list", "list tokens (names, permissions, team, state)").set_defaults(
        run=cmd_token_list
    )
    revoke = token_command("revoke", "revoke a token at once")
    revoke.add_argument("name", help="the token's name")
    revoke.set_defaults(run=cmd_token_revoke)

    demo = command("demo-data", "generate and load a synthetic county")
    demo.add_argument(
        "--county", default=DEMO_COUNTY, help="county id to load it as (default: %(default)s)"
    )
    demo.add_argument(
        "--parcels", type=int, default=DEMO_PARCELS, help="parcels to make (default: %(default)s)"
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=42,
        help="random seed; same seed, same county (default: %(default)s)",
    )
    demo.add_argument(
        "--first-year",
        type=int,
        default=recent_first_year(),
        help="first year of sales; four years are made (default: %(default)s, so that sales "
        "end last year)",
    )
    demo.set_defaults(run=cmd_demo_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from pydantic import ValidationError

    try:
        settings = Settings()
    except ValidationError as exc:
        sys.stderr.write(f"bad configuration (environment or .env): {exc}\n")
        return 2
    configure_logging(settings.log_format, settings.log_level)
    args = build_parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return int(args.run(args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
