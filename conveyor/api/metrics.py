"""The edge's Prometheus metrics, named like the processors' (``conveyor_`` prefix).

Routes are labelled by their template (``/api/v1/orders/{order_id}``), never by the raw
path, so the number of series stays bounded whatever clients request.
"""

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "conveyor_http_requests_total",
    "HTTP requests answered by the edge, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "conveyor_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
# Summed over the workers that run now: a worker that died answers nothing any more.
HTTP_IN_FLIGHT = Gauge(
    "conveyor_http_requests_in_flight",
    "HTTP requests being answered now.",
    multiprocess_mode="livesum",
)
HTTP_REQUESTS_SHED = Counter(
    "conveyor_http_requests_shed_total",
    "HTTP requests answered 503 at once because their worker had its cap in flight.",
)
ORDERS_ACCEPTED = Counter(
    "conveyor_orders_accepted_total",
    "Orders the edge accepted (PlaceOrder acknowledged by Kafka); replays are not counted.",
)
KAFKA_PUBLISH_FAILURES = Counter(
    "conveyor_edge_kafka_publish_failures_total",
    "Commands the edge could not hand to Kafka (answered 503).",
)
RATE_LIMIT_DECISIONS = Counter(
    "conveyor_rate_limit_decisions_total",
    "Requests refused (429), let through unchecked (limiter unavailable), or let through "
    "on the worker's own count (limiter unavailable, a budget that fails closed), by scope.",
    ["scope", "decision"],
)
EDGE_CACHE_LOOKUPS = Counter(
    "conveyor_edge_cache_lookups_total",
    "Lookups in an edge worker's own caches (catalog answers, session checks), hit or miss.",
    ["cache", "result"],
)
ACCOUNT_EMAILS = Counter(
    "conveyor_account_emails_total",
    "Account e-mails by purpose (verify_email, reset_password) and what became of a try: "
    "sent (the mail server accepted it), failed (tried again later), expired (its code "
    "expired before it could be sent, so it was dropped).",
    ["purpose", "outcome"],
)
SMTP_CONNECTIONS = Counter(
    "conveyor_edge_smtp_connections_total",
    "SMTP connections the edge opened to send account e-mails (one is kept across e-mails; a "
    "new one after a failure or a connection the server closed).",
)
