"""The processors' Prometheus metrics: one set, labelled by processor, shared by all of them."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app

from conveyor.domain.readiness import WorkerReadiness

EVENTS_PROCESSED = Counter(
    "conveyor_events_processed_total",
    "Records a processor handled, by topic and message type.",
    ["processor", "topic", "type"],
)
EVENTS_FAILED = Counter(
    "conveyor_events_failed_total",
    "Records a processor could not handle (each also goes to the dead-letter topic).",
    ["processor", "topic", "reason"],
)
DEAD_LETTERS = Counter(
    "conveyor_dead_letters_total",
    "Records written to a dead-letter topic.",
    ["processor", "topic"],
)
RECORDS_PARKED = Counter(
    "conveyor_records_parked_total",
    "Records parked on their topic's .retry topic because a service they need failed, by the "
    "try they are parked for (1: the first after the original).",
    ["processor", "topic", "attempt"],
)
RECORDS_RETRIED = Counter(
    "conveyor_records_retried_total",
    "Parked records handled again once due (each then done, parked again or dead-lettered).",
    ["processor", "topic"],
)
DEAD_LETTERS_REPLAYED = Counter(
    "conveyor_dead_letters_replayed_total",
    "Dead letters sent back by `conveyor dlq replay` that the processor handled (one that "
    "fails again goes back to the dead-letter topic and counts in conveyor_dead_letters_total).",
    ["processor", "topic"],
)
PROCESSING_SECONDS = Histogram(
    "conveyor_event_processing_seconds",
    "Time from a record's arrival in the handler to the handler's end.",
    ["processor", "type"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMER_LAG = Gauge(
    "conveyor_consumer_lag",
    "Records in a partition beyond the processor's committed offset.",
    ["processor", "topic", "partition"],
)
REBALANCES = Counter(
    "conveyor_rebalances_total",
    "Partition assignments the processor received.",
    ["processor"],
)
SAGA_OUTCOMES = Counter(
    "conveyor_saga_outcomes_total",
    "Orders that reached a terminal status, by status and reason.",
    ["status", "reason"],
)
ORDERS_PENDING = Gauge(
    "conveyor_orders_pending",
    "Pending orders of the partitions this orders worker holds, by time since placement "
    "(lt_30s, 30s_2m, 2m_10m, gt_10m); set by the deadline sweep.",
    ["age"],
)
SAGA_DEADLINES_PASSED = Counter(
    "conveyor_saga_deadlines_passed_total",
    "Orders whose deadline passed, by the phase they were in (reserving and authorizing end "
    "timed_out; compensating sends the compensation still owed again).",
    ["phase"],
)
PAYMENT_GATEWAY_CALLS = Counter(
    "conveyor_payment_gateway_calls_total",
    "Calls to the payment gateway, by operation and result.",
    ["operation", "result"],
)
PAYMENT_GATEWAY_REJECTED_REQUESTS = Counter(
    "conveyor_payment_gateway_rejected_requests_total",
    "Gateway answers saying our request or credentials are wrong (a 4xx other than the "
    "card's decline, 402, and the rate limit, 429), by operation and HTTP status.",
    ["operation", "status"],
)
PAYMENT_RECONCILIATIONS = Counter(
    "conveyor_payment_reconciliations_total",
    "Authorizations whose answer was lost, looked up at the gateway by the order's reference, "
    "by what the lookup found (authorized, declined, not_found, unanswered).",
    ["result"],
)
CIRCUIT_OPEN = Gauge(
    "conveyor_payment_gateway_circuit_open",
    "1 while the circuit breaker in front of the payment gateway is open.",
)
EMAILS_SENT = Counter(
    "conveyor_emails_sent_total",
    "Emails sent to customers, by the order event they announce.",
    ["event"],
)
SMTP_CONNECTIONS = Counter(
    "conveyor_smtp_connections_total",
    "SMTP connections opened to send emails (one is kept across emails; a new one after a "
    "failure or a connection the server closed).",
)
PROJECTED_BATCH_SIZE = Histogram(
    "conveyor_projector_batch_size",
    "Records the projector writes in one database transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)

COPURCHASES = Counter(
    "conveyor_copurchases_total",
    "Products of confirmed orders the recommendations processor handled, by outcome: "
    "counted, repeated (a redelivery, counted before) or too_old (older than the retention).",
    ["outcome"],
)
RECOMMENDATIONS_WRITTEN = Counter(
    "conveyor_recommendations_written_total",
    "Products whose recommendations were written to PostgreSQL and Redis.",
)


TABLE_RECOVERING = Gauge(
    "conveyor_table_recovering",
    "1 while the processor rebuilds its tables from their changelogs (it processes nothing).",
    ["processor"],
)


RESTORE_RECORDS = Gauge(
    "conveyor_restore_records",
    "Changelog records the worker's active table partitions have to read in the current or "
    "last restore.",
    ["processor"],
)
RESTORE_RECORDS_DONE = Gauge(
    "conveyor_restore_records_done",
    "Changelog records read so far in the current or last restore.",
    ["processor"],
)
RESTORE_LAST_SECONDS = Gauge(
    "conveyor_restore_last_seconds",
    "Wall time of the worker's last completed restore of its tables.",
    ["processor"],
)

# The worker's answer to GET /ready, now.
ReadyCheck = Callable[[], WorkerReadiness]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes and scrapes come every few seconds: not worth a log line each."""


def serve_metrics(host: str, port: int, ready: ReadyCheck | None = None) -> None:
    """Expose /metrics, and /ready when ``ready`` is given, on ``host:port`` from a
    background thread (port 0: not exposed)."""
    if not port:
        return
    scrape = make_wsgi_app()

    def route(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if ready is None or environ.get("PATH_INFO") != "/ready":
            metrics: Iterable[bytes] = scrape(environ, start_response)
            return metrics
        readiness = ready()
        status = "200 OK" if readiness.ready else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json")])
        return [readiness.model_dump_json().encode()]

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    httpd = make_server(host, port, route, Server, handler_class=_QuietHandler)
    threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True).start()


ORDER_END_TO_END_SECONDS = Histogram(
    "conveyor_order_end_to_end_seconds",
    "Time from an order's acceptance to its terminal status, as the projector records it.",
    ["status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)


TABLE_ENTRIES = Gauge(
    "conveyor_table_entries",
    "Entries a processor's table holds on this worker (counted as they are written).",
    ["processor", "table"],
)
TABLE_BYTES = Gauge(
    "conveyor_table_bytes",
    "Bytes of the entries a processor's table holds on this worker, as stored.",
    ["processor", "table"],
)
TABLE_EXPIRED = Counter(
    "conveyor_table_expired_total",
    "Table entries deleted because their retention ended (each sends a tombstone).",
    ["processor", "table"],
)
CHANGELOG_RECORD_BYTES = Histogram(
    "conveyor_changelog_record_bytes",
    "Size of each record a processor writes to a table's changelog.",
    ["processor", "table"],
    buckets=(64, 128, 256, 512, 1024, 2048, 4096, 16384, 65536, 262144, 1048576),
)
CHANGELOG_RECORD_MAX_BYTES = Gauge(
    "conveyor_changelog_record_max_bytes",
    "The largest record this worker has written to a table's changelog since it started.",
    ["processor", "table"],
)
BATCH_SIZE = Histogram(
    "conveyor_batch_size",
    "Records a processor handles together (one state write per key per batch).",
    ["processor"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
