"""Settings read from the environment, in one place.

Every process (API, worker, CLI) builds the same `Settings`, so a worker started by
`terrafusion serve` and one started by hand agree on queue names, folders and URLs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="postgresql://user@host:port/db; unset: embedded PostgreSQL in data_dir",
    )
    redis_url: str | None = Field(
        default=None, description="redis://host:port/db; unset: embedded Redis in data_dir"
    )
    data_dir: Path = Field(default=Path(".terrafusion"), description="embedded servers' home")
    results_dir: Path | None = Field(
        default=None, description="where job files are written; default data_dir/results"
    )
    results_storage: str = Field(
        default="local",
        description="where finished job files are kept: local (RESULTS_DIR, shared by API "
        "and workers) or s3://bucket/prefix (any S3-compatible store)",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="an S3-compatible server (https://minio.county.gov:9000); unset: AWS S3",
    )
    s3_region: str = Field(default="us-east-1", description="the bucket's region")
    s3_addressing_style: Literal["path", "virtual"] | None = Field(
        default=None,
        description="path: endpoint/bucket/key; virtual: bucket.endpoint/key; unset: path "
        "with S3_ENDPOINT_URL, virtual for AWS",
    )
    aws_access_key_id: str | None = Field(
        default=None, description="unset: boto3's own chain (instance or task role, AWS_PROFILE)"
    )
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    s3_part_size_mib: int = Field(
        default=8,
        ge=5,
        le=5120,
        description="workers upload files in parts of this size (S3's minimum is 5 MiB); "
        "one part is in memory at a time",
    )
    s3_url_ttl_seconds: int = Field(
        default=60,
        ge=1,
        le=7 * 86400,
        description="how long the presigned S3 link a download redirects to works",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    queue_name: str = "terrafusion:queue"
    events_channel: str = "terrafusion:events"
    worker_max_jobs: int = Field(default=4, ge=1)
    worker_metrics_port: int = Field(
        default=9108, ge=0, description="worker's own /metrics port; 0 disables it"
    )
    hot_read_pool_size: int = Field(
        default=10,
        ge=1,
        description="the API's own PostgreSQL connections for reading a job by id, a "
        "submission's checks and INSERT, and cancel or retry, beside its engine's pool; opened "
        "as statements need them",
    )
    job_timeout_seconds: int = Field(default=3600, ge=1)
    progress_min_interval_seconds: float = Field(
        default=0.2, ge=0, description="at most one progress write per this many seconds"
    )
    max_parameters_bytes: int = Field(default=16_384, ge=256)
    max_attempts: int = Field(
        default=3, ge=1, description="runs of a job before transient errors or lost workers fail it"
    )
    retry_backoff_seconds: float = Field(
        default=2.0, ge=0, description="first automatic retry delay; doubles each attempt"
    )
    heartbeat_interval_seconds: float = Field(default=2.0, gt=0)
    stale_after_seconds: float = Field(
        default=60.0, gt=0, description="a RUNNING job without a heartbeat this long is lost"
    )
    maintenance_interval_seconds: int = Field(
        default=2, ge=1, le=30, description="how often workers dispatch, reconcile and reap"
    )
    sweep_interval_seconds: float = Field(
        default=600.0, gt=0, description="how often expired jobs and their files are deleted"
    )
    schedule_late_after_seconds: float = Field(
        default=60.0,
        gt=0,
        description="a schedule's job created longer than this after its due time is marked "
        "late (so is one standing in for due times missed while no worker ran)",
    )
    retention_days: int = Field(default=30, ge=1, le=3650)
    event_retention_hours: float = Field(
        default=72.0,
        gt=0,
        description="how long the change log keeps changes; a jobsUpdated(after:) cursor "
        "older than this is CURSOR_EXPIRED",
    )
    idempotency_window_hours: float = Field(default=24.0, gt=0)
    auth_disabled: bool = Field(
        default=False, description="true: no tokens; every caller is an anonymous admin"
    )
    allowed_origins: str = Field(
        default="",
        description="comma-separated origins (https://app.example.org) whose pages may call "
        "the API (CORS) and open websockets besides the server's own; * allows any",
    )
    graphiql: bool = Field(default=True, description="serve GraphiQL at GET /graphql")
    introspection: bool = Field(default=True, description="answer schema introspection")
    max_query_depth: int = Field(
        default=12, ge=2, description="fields nested in fields, introspection aside"
    )
    max_aliases: int = Field(default=30, ge=0, description="aliased fields, fragments expanded")
    max_query_fields: int = Field(
        default=1000, ge=10, description="field selections once every fragment is expanded"
    )
    max_query_cost: int = Field(
        default=5000,
        ge=10,
        description="each field 1; a field with `first: N` N times its selection",
    )
    max_field_overlaps: int = Field(
        default=2000,
        ge=10,
        description="same-named fields in one selection that validation must compare, "
        "weighted by their size",
    )
    max_query_tokens: int = Field(default=2000, ge=100, description="parser stops past this")
    document_cache_size: int = Field(
        default=256, ge=0, description="distinct documents kept parsed and validated"
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="largest HTTP body or websocket message"
    )
    ws_init_max_bytes: int = Field(
        default=65_536,
        ge=1024,
        description="largest websocket message before connection_init is acknowledged",
    )
    token_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        le=10,
        description="how long a token's validity is reused for HTTP requests (at most "
        "WS_AUTH_RECHECK_SECONDS); 0 disables",
    )
    public_url: str | None = Field(
        default=None,
        description="the server's public base URL for links (https://jobs.county.gov); "
        "default: the scheme and host of each request",
    )
    download_url_ttl_seconds: int = Field(
        default=900, ge=1, le=7 * 86400, description="how long a signed file link works"
    )
    url_signing_secret: str | None = Field(
        default=None,
        description="HMAC key for download links; default: generated once into "
        "data_dir/url-signing.secret",
    )
    metrics_token: str | None = Field(
        default=None, description="when set, GET /metrics needs Authorization: Bearer <it>"
    )
    max_subscriptions_per_connection: int = Field(default=10, ge=1)
    max_subscriptions_per_token: int = Field(default=100, ge=1)
    ws_init_timeout_seconds: float = Field(
        default=5.0, gt=0, description="a websocket must send connection_init within this"
    )
    ws_auth_recheck_seconds: float = Field(
        default=10.0, gt=0, description="how often an open websocket's token is checked again"
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="text: one line for people; json: one object per line"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="DEBUG also shows routine maintenance and arq's per-run lines"
    )

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("results_storage")
    @classmethod
    def _storage(cls, value: str) -> str:
        value = value.strip()
        if value == "local":
            return value
        bucket = value.removeprefix("s3://").split("/", 1)[0]
        if not value.startswith("s3://") or not bucket:
            raise ValueError(f"expected local or s3://bucket/prefix, not {value!r}")
        return value

    @property
    def origins(self) -> list[str]:
        return [o.strip() for o in self.allowed_origins.split(",") if o.strip()]

    @property
    def resolved_results_dir(self) -> Path:
        return (self.results_dir or self.data_dir / "results").resolve()


@lru_cache
def get_settings() -> Settings:
    return Settings()
