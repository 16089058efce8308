"""Every Prometheus metric, defined once, on a registry the caller owns.

Names and labels are the seeds' (`report_jobs_submitted_total`, ...). The API counts
submissions; the worker, where jobs finish, counts completions, failures and durations and
serves them on its own /metrics port.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


@dataclass(frozen=True)
class KindMetrics:
    submitted: Counter
    completed: Counter
    failed: Counter
    duration: Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry, kinds: Iterable[tuple[str, str, str]]) -> None:
        """`kinds` holds (kind name, metric prefix, type label) for each job kind."""
        self.registry = registry
        self.change_log_rows = Gauge(
            "job_change_log_rows",
            "changes the job change log holds (set by the workers' maintenance when it prunes)",
            registry=registry,
        )
        self.change_log_oldest_seconds = Gauge(
            "job_change_log_oldest_change_age_seconds",
            "age of the oldest change the log holds; stays under EVENT_RETENTION_HOURS",
            registry=registry,
        )
        self.subscription_executions = Counter(
            "graphql_subscription_executions",
            "executions of a subscription's selection for an event; subscribers alike share one",
            registry=registry,
        )
        self.subscription_results = Counter(
            "graphql_subscription_results",
            "subscription results for events handed to subscribers, shared or executed",
            registry=registry,
        )
        self._by_kind: dict[str, KindMetrics] = {}
        for kind, prefix, type_label in kinds:
            human = prefix.replace("_", " ")
            self._by_kind[kind] = KindMetrics(
                submitted=Counter(
                    f"{prefix}_jobs_submitted",
                    f"{human} jobs accepted by the API",
                    ["county_id", type_label, "status_on_submit"],
                    registry=registry,
                ),
                completed=Counter(
                    f"{prefix}_jobs_completed",
                    f"{human} jobs that completed",
                    ["county_id", type_label],
                    registry=registry,
                ),
                failed=Counter(
                    f"{prefix}_jobs_failed",
                    f"{human} jobs that failed",
                    ["county_id", type_label, "failure_reason"],
                    registry=registry,
                ),
                duration=Histogram(
                    f"{prefix}_processing_duration_seconds",
                    f"time from start to end of a {human} job's run",
                    ["county_id", type_label],
                    buckets=DURATION_BUCKETS,
                    registry=registry,
                ),
            )

    def kind(self, kind: str) -> KindMetrics:
        return self._by_kind[kind]
