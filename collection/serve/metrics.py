"""The Prometheus metrics of ``autotts serve`` (``GET /metrics``), in a registry of their own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Request latencies from a second to an hour (a controller's answer takes many upstream rounds).
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
# The proxy's own share of one request (wall time with no upstream call in flight).
OVERHEAD_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
UPSTREAM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class ServeMetrics:
    """Counters, gauges and histograms of one server (one registry per app, so several
    apps in one process, as in tests, keep their own figures)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("autotts_requests", "Chat completion requests answered, by method and HTTP status.",
                                ["method", "status"], registry=r)  # fmt: skip
        self.cancelled = Counter("autotts_requests_cancelled", "Requests whose client disconnected before the answer.",
                                 registry=r)  # fmt: skip
        self.in_flight = Gauge("autotts_requests_in_flight", "Requests being answered now.", registry=r)
        self.latency = Histogram("autotts_request_seconds", "Wall time of an answered request.", ["method"],
                                 buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.overhead = Histogram("autotts_proxy_overhead_seconds",
                                  "Wall time of an answered request with no upstream call of it in flight (the proxy's own "
                                  "work: parsing, prompts, the controller, threads, the response).",
                                  buckets=OVERHEAD_BUCKETS, registry=r)  # fmt: skip
        self.tokens = Counter("autotts_tokens", "Tokens spent on answered requests: sampled, probe, prompt and "
                              "cached_prompt (prompt tokens served from the upstream's prefix cache).", ["kind"],
                              registry=r)  # fmt: skip
        self.branches = Counter("autotts_branches_opened", "Branches the controllers opened.", registry=r)
        self.probes = Counter("autotts_probes", "Probes the controllers made.", registry=r)
        self.stop_reasons = Counter("autotts_stop_reasons", "Why the controllers answered.", ["reason"], registry=r)
        self.upstream_requests = Counter("autotts_upstream_requests", "Requests sent upstream, by outcome "
                                         "(ok, error, cancelled).", ["outcome"], registry=r)  # fmt: skip
        self.upstream_errors = Counter("autotts_upstream_errors", "Upstream requests that failed after retries, by kind "
                                       "(connection, timeout, status_5xx, status_4xx, bad_response).", ["kind"],
                                       registry=r)  # fmt: skip
        self.upstream_latency = Histogram("autotts_upstream_request_seconds", "Wall time of one upstream request.",
                                          buckets=UPSTREAM_BUCKETS, registry=r)  # fmt: skip
        self.upstream_in_flight = Gauge("autotts_upstream_in_flight", "Upstream requests in flight now.", registry=r)
        self.controllers_running = Gauge("autotts_controllers_running", "Controller threads running now (a cancelled "
                                         "request's ends at its next upstream call).", registry=r)  # fmt: skip
        self.upstream_up = Gauge("autotts_upstream_up", "1 if the last check or request reached the upstream servers.",
                                 registry=r)  # fmt: skip

    def text(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
