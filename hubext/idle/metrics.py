"""Prometheus metrics of the idle service, one registry per service."""

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class IdleMetrics:
    """The service's counters; `registry` is what the metrics port serves."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self):
        r = self.registry
        p = "hubext_idle_"
        self.removed = Counter(
            p + "servers_removed", "Named servers deleted", registry=r
        )
        self.stopped = Counter(
            p + "servers_stopped", "Running servers stopped", registry=r
        )
        self.notified = Counter(
            p + "notices_sent", "Notices before removal", registry=r
        )
        self.errors = Counter(
            p + "errors", "Failed hub calls, hooks, passes", registry=r
        )
        self.api_requests = Counter(
            p + "api_requests", "HTTP requests made", registry=r
        )
        self.seen = Gauge(
            p + "servers_seen", "Servers seen in the last pass", registry=r
        )
        self.pass_duration = Histogram(
            p + "pass_duration_seconds",
            "Wall time of one pass over all users",
            buckets=(0.5, 1, 5, 15, 60, 300, 900, 3600),
            registry=r,
        )
