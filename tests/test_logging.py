"""What operators see: a quiet, secret-free log in one format, and a CLI that explains itself."""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine

from app.cli import build_parser
from app.embedded import free_port
from app.logs import REDACTED, JsonFormatter, TextFormatter, redact
from tests.builders import issue_token
from tests.conftest import RunningApp
from tests.graphql_client import LEGACY_WS, TRANSPORT_WS

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "tf_" + "Ab3_-" * 8


def test_tokens_are_redacted_wherever_they_appear() -> None:
    line = (
        f'127.0.0.1:5 - "GET /graphql?token={TOKEN} HTTP/1.1" 200 '
        f"/results/j/f.csv?x=1&token={TOKEN}&y=2 Authorization: Bearer {TOKEN} bare {TOKEN}"
    )
    redacted = redact(line)
    assert "tf_" not in redacted
    assert f"/graphql?token={REDACTED} HTTP/1.1" in redacted
    assert f"?x=1&token={REDACTED}&y=2" in redacted
    assert f"Bearer {REDACTED}" in redacted
    presigned = redact(
        "https://s3/b/k?X-Amz-Credential=AKIA1%2F2&X-Amz-Security-Token=IQo&X-Amz-Signature=9f"
    )
    assert presigned == (
        f"https://s3/b/k?X-Amz-Credential={REDACTED}&X-Amz-Security-Token={REDACTED}"
        f"&X-Amz-Signature={REDACTED}"
    )
    assert (
        redact("no secrets here: tf_short, token_count=3")
        == "no secrets here: tf_short, token_count=3"
    )


def test_both_formats_redact_messages_arguments_and_tracebacks() -> None:
    try:
        raise ValueError(f"bad token {TOKEN}")
    except ValueError:
        record = logging.LogRecord(
            "uvicorn.access",
            logging.INFO,
            __file__,
            1,
            "%s",
            (f"/x?token={TOKEN}",),
            sys.exc_info(),
        )
    text = TextFormatter().format(record)
    entry = json.loads(JsonFormatter().format(record))
    assert "tf_" not in text and "tf_" not in json.dumps(entry)
    assert entry["message"] == f"/x?token={REDACTED}"
    assert (entry["level"], entry["logger"]) == ("INFO", "uvicorn.access")
    assert "ValueError: bad token [redacted]" in entry["exc_info"]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_websockets_closed_before_connection_init_log_no_error(
    auth_server: RunningApp, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Some close at once, some are closed by the server's init timeout (4408)."""
    caplog.set_level(logging.INFO)
    quick = [
        await websockets.connect(auth_server.ws_url, subprotocols=[protocol]) for _ in range(5)
    ]
    for ws in quick:
        await ws.close()
    waiting = [
        await websockets.connect(auth_server.ws_url, subprotocols=[protocol]) for _ in range(5)
    ]
    for ws in waiting:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == [], [r.getMessage() for r in problems]


class ServeProcess:
    """`terrafusion serve` in a subprocess, its output read line by line as it comes."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", *args],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, done: Callable[[list[str]], bool], timeout: float = 90) -> None:
        """Read output until `done(lines)` holds; fail at the deadline or if the server ends."""
        deadline = time.monotonic() + timeout
        while not done(self.lines):
            remaining = deadline - time.monotonic()
            assert remaining > 0, "timed out; output:\n" + "\n".join(self.lines)
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line is not None, "the server ended; output:\n" + "\n".join(self.lines)
            self.lines.append(line)


def _drain(server: ServeProcess) -> None:
    """The rest of the output of a server that has exited."""
    while (line := server._queue.get(timeout=10)) is not None:
        server.lines.append(line)


@pytest.fixture
def prefix() -> str:
    return f"tf-test:{uuid.uuid4().hex[:10]}"


def _entries(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if line.startswith("{")]


def _banner_index(lines: list[str]) -> int:
    """The banner's last line (it names the dashboard's URL, then GraphiQL's)."""
    return max(i for i, line in enumerate(lines) if line.startswith("TerraFusion Jobs:"))


def _maintenance_runs(lines: list[str]) -> int:
    """Runs of the maintenance cron logged (at DEBUG) since the banner."""
    if not any(line.startswith("TerraFusion Jobs:") for line in lines):
        return 0
    return sum('"message": "maintenance: Tally(' in line for line in lines[_banner_index(lines) :])


async def test_an_idle_server_logs_nothing_per_maintenance_cycle_and_no_token(
    database_url: str, redis_url: str, prefix: str, engine: AsyncEngine
) -> None:
    """Every run of the maintenance cron (every second here, sweeps included) is visible at
    DEBUG and silent at INFO, so the INFO console of an idle server does not grow. Then
    GraphiQL is opened with `?token=` and a file link followed with one: no log line holds it.
    """
    token = await issue_token(engine, "operator", ["admin"])
    port = free_port()
    server = ServeProcess(
        ["--port", str(port), "--no-demo"],
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "QUEUE_NAME": f"{prefix}:queue",
            "EVENTS_CHANNEL": f"{prefix}:events",
            "WORKER_METRICS_PORT": "0",
            "MAINTENANCE_INTERVAL_SECONDS": "1",
            "SWEEP_INTERVAL_SECONDS": "1",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "debug",
        },
    )
    try:
        server.wait_for(lambda lines: _maintenance_runs(lines) >= 4)
        after_banner = server.lines[_banner_index(server.lines) + 1 :]
        entries = _entries(after_banner)
        assert len(entries) == len(after_banner), "every log line is one JSON object"
        runs = [i for i, e in enumerate(entries) if e["message"].startswith("maintenance: ")]
        steady = entries[runs[1] : runs[-1]]
        assert [e for e in steady if e["level"] != "DEBUG"] == []
        assert any(
            e["logger"] == "arq.worker" and "cron:maintenance" in e["message"] for e in steady
        )
        assert [e for e in entries if e["level"] != "DEBUG"] == [
            e for e in entries if e["level"] != "DEBUG" and "worker ready" in e["message"]
        ], "after the banner, only the worker's one start line is above DEBUG"

        url = f"http://127.0.0.1:{port}"
        page = httpx.get(f"{url}/graphql?token={token}", headers={"Accept": "text/html"})
        assert page.status_code == 200
        link = httpx.get(f"{url}/results/{uuid.uuid4()}/ratios.csv?token={token}")
        assert link.status_code == 401  # a token in a query string is no credential
        server.wait_for(lambda lines: sum('"uvicorn.access"' in line for line in lines) >= 2)
    finally:
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=60)
        _drain(server)
    assert code == 0
    entries = _entries(server.lines)
    assert [e for e in entries if e["logger"] == "arq.worker" and e["level"] != "DEBUG"] == []
    assert [e["message"] for e in entries if e["logger"] == "jobs.worker"][-1] == "worker stopped"
    after_banner = server.lines[_banner_index(server.lines) + 1 :]
    assert not [line for line in after_banner if "tf_" in line]
    access = [e["message"] for e in _entries(after_banner) if e["logger"] == "uvicorn.access"]
    assert any(f"/graphql?token={REDACTED}" in line for line in access), access


def test_serve_on_a_taken_port_says_so_before_the_banner_and_fails(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-demo"],
            env={**os.environ, "DATABASE_URL": database_url, "REDIS_URL": "redis://127.0.0.1:1"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "--port" in done.stderr
    assert "GraphiQL" not in done.stdout + done.stderr


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_cli_option_says_what_it_does_and_its_default() -> None:
    for parser in _parsers(build_parser()):
        text = parser.format_help()
        assert "`" not in text, f"raw backticks in `{parser.prog} --help`"
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            if action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"{parser.prog} {action.dest} has no help"
            if action.option_strings:
                assert "default" in action.help or "(required)" in action.help, (
                    f"{parser.prog} {action.option_strings[0]}: help names no default"
                )
