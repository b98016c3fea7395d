"""The overview: is Conveyor taking orders and finishing them, and is any part of it behind?"""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards.panels import (
    EDGE_LATENCY_OBJECTIVE_SECONDS,
    THIRD,
    Query,
    dashboard,
    graph,
    single_value,
    totals,
)

UID = "conveyor-overview"
# Health probes and scrapes are not what clients wait for.
CLIENT_ROUTES = 'route!~"/(healthz|readyz|metrics)"'


def overview() -> Dashboard:
    orders = [
        graph(
            "Orders funnel",
            "Orders the edge accepted per second, and how they ended: confirmed, rejected (by "
            "reason) or cancelled. Accepted well above the outcomes for long means the saga is "
            "stuck (ConveyorOrdersNotCompleting).",
            [
                Query("conveyor:orders_accepted:rate5m", "accepted"),
                Query('sum(conveyor:saga_outcomes:rate5m{status="confirmed"})', "confirmed"),
                Query(
                    'sum by (reason) (conveyor:saga_outcomes:rate5m{status="rejected"})',
                    "rejected: {{reason}}",
                ),
                Query('sum(conveyor:saga_outcomes:rate5m{status="cancelled"})', "cancelled"),
            ],
            unit="reqps",
        ),
        totals(
            "Outcomes in the time range",
            "How many orders reached each terminal status over the dashboard's time range.",
            [
                Query(
                    "sum by (status, reason) (increase(conveyor_saga_outcomes_total[$__range]))",
                    "{{status}} {{reason}}",
                )
            ],
            unit="short",
        ),
        graph(
            "End-to-end order latency",
            "From the edge's acceptance to the terminal status the projector records. The "
            "saga's own speed: Kafka hops, the stock reservation and the payment gateway.",
            [
                Query("conveyor:order_end_to_end_p95_seconds:5m", "p95"),
                Query(
                    "histogram_quantile(0.5, sum by (le) "
                    "(rate(conveyor_order_end_to_end_seconds_bucket[$__rate_interval])))",
                    "p50",
                ),
            ],
            unit="s",
        ),
        single_value(
            "Payment gateway circuit",
            "Open: the gateway failed repeatedly and orders are rejected payment_unavailable "
            "until a trial call succeeds (ConveyorPaymentGatewayCircuitOpen).",
            Query("max(conveyor_payment_gateway_circuit_open)"),
            unit="none",
            thresholds=((None, "green"), (1, "red")),
            mappings={"0": "closed", "1": "open"},
            span=THIRD,
        ),
    ]
    edge = [
        graph(
            "Edge requests by route",
            "Requests per second the edge answered, by method and route template.",
            [
                Query(
                    "sum by (method, route) (conveyor:http_requests:rate5m)", "{{method}} {{route}}"
                )
            ],
            unit="reqps",
        ),
        graph(
            "Edge requests by status",
            "Requests per second by HTTP status. 503: Kafka, PostgreSQL or Redis unreachable; "
            "429: rate limited.",
            [Query("sum by (status) (conveyor:http_requests:rate5m)", "{{status}}")],
            unit="reqps",
        ),
        single_value(
            "Edge server error ratio",
            "Share of answers that are 5xx over 5 minutes; the page fires above 5 % "
            "(ConveyorEdgeErrorRatioHigh).",
            Query("conveyor:http_error_ratio:rate5m"),
            unit="percentunit",
            thresholds=((None, "green"), (0.01, "orange"), (0.05, "red")),
        ),
        graph(
            "Edge p95 latency against the 200 ms objective",
            "95th percentile of the time to answer, long polls (GET /orders/{id}?wait=) and "
            "probes excluded; the dashed line is the objective (ConveyorEdgeLatencyHigh).",
            [Query("conveyor:http_request_p95_seconds:5m", "p95")],
            unit="s",
            span=THIRD,
            objective=EDGE_LATENCY_OBJECTIVE_SECONDS,
        ),
        graph(
            "Edge p95 latency by route",
            "Which route is slow when the p95 is over the objective.",
            [
                Query(
                    "histogram_quantile(0.95, sum by (le, method, route) (rate("
                    f"conveyor_http_request_duration_seconds_bucket{{{CLIENT_ROUTES}}}"
                    "[$__rate_interval])))",
                    "{{method}} {{route}}",
                )
            ],
            unit="s",
            span=THIRD,
            objective=EDGE_LATENCY_OBJECTIVE_SECONDS,
        ),
        graph(
            "Edge: commands Kafka refused, requests in flight",
            "Commands the edge could not hand to Kafka (each answered 503, nothing recorded; "
            "ConveyorEdgeKafkaPublishFailing), and requests being answered right now.",
            [
                Query(
                    "sum(rate(conveyor_edge_kafka_publish_failures_total[$__rate_interval]))",
                    "refused by Kafka /s",
                ),
                Query("sum(conveyor_http_requests_in_flight)", "in flight"),
            ],
            unit="short",
            span=THIRD,
        ),
        graph(
            "Edge: requests shed",
            "Requests answered 503 with Retry-After at once because their worker already had "
            "CONVEYOR_MAX_REQUESTS_IN_FLIGHT in flight (ConveyorEdgeShedding). With the edge's "
            "CPU high, add edge replicas; with it low, find what the requests wait on.",
            [Query("sum(rate(conveyor_http_requests_shed_total[$__rate_interval]))", "shed /s")],
            unit="reqps",
        ),
        graph(
            "Edge caches",
            "Lookups per second in each edge worker's own caches: catalog answers served from "
            "memory (a low share of hits under steady traffic means queries too varied for "
            "CONVEYOR_CATALOG_CACHE_SECONDS to help), kept login checks and verified access "
            "tokens.",
            [
                Query(
                    "sum by (cache, result) "
                    "(rate(conveyor_edge_cache_lookups_total[$__rate_interval]))",
                    "{{cache}} {{result}}",
                )
            ],
            unit="ops",
        ),
    ]
    processors = [
        graph(
            "Processor throughput",
            "Records each processor handled per second, all its topics together.",
            [Query("sum by (processor) (conveyor:events_processed:rate5m)", "{{processor}}")],
            unit="ops",
        ),
        graph(
            "Consumer lag",
            "Records each processor's consumer group has yet to process. Rising for long: "
            "ConveyorConsumerLagGrowing; lag with no throughput: ConveyorProcessorNotConsuming.",
            [Query("sum by (processor) (conveyor:consumer_lag:sum)", "{{processor}}")],
            unit="short",
        ),
        graph(
            "Failed records",
            "Records a processor could not decode (undecodable), was refused (refused) or "
            "failed on (failed); each one went to a dead-letter topic.",
            [
                Query(
                    "sum by (processor, reason) (conveyor:events_failed:rate5m)",
                    "{{processor}} {{reason}}",
                )
            ],
            unit="ops",
        ),
        totals(
            "Dead letters in the time range",
            "Records written to <topic>.dlq over the dashboard's time range, by processor and "
            "source topic (ConveyorDeadLetters). Each carries the error and the source offset.",
            [
                Query(
                    "sum by (processor, topic) (increase(conveyor_dead_letters_total[$__range]))",
                    "{{processor}} from {{topic}}",
                )
            ],
            unit="short",
        ),
        totals(
            "Alerts firing",
            "Conveyor's alerts firing now; each has a runbook annotation (dashboards/README.md).",
            [
                Query(
                    'sum by (alertname, severity) (ALERTS{alertname=~"Conveyor.+", '
                    'alertstate="firing"})',
                    "{{alertname}} ({{severity}})",
                )
            ],
            unit="short",
            span=24,
        ),
    ]
    return dashboard(
        UID,
        "Conveyor: overview",
        "Orders from acceptance to their end, the edge against its objective, and whether any "
        "processor is behind or dead-lettering.",
        [],
        [("Orders", orders), ("Edge", edge), ("Processors", processors)],
    )
