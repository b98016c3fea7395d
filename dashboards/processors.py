"""One dashboard per stream processor, all of them from one function.

Every processor gets the same rows (throughput, failures, latency, lag and rebalances); a
row of its own shows what only it does. Panels filter on the ``processor`` label the
processors' metrics carry, so they read the same under any scrape configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from grafana_foundation_sdk.models.dashboard import Dashboard

from conveyor.domain.processors import processor_spec
from dashboards.panels import (
    HALF,
    THIRD,
    Panel,
    Query,
    dashboard,
    graph,
    label_variable,
    single_value,
)
from dashboards.panels import totals as totals_panel

TOPIC_VARIABLE = "topic"
PanelsMaker = Callable[[], list[Panel]]
# The row of its own a processor's dashboard shows after the common ones: title and panels.
_OWN_ROWS: dict[str, tuple[str, PanelsMaker]] = {}


def own_row(processor: str, title: str) -> Callable[[PanelsMaker], PanelsMaker]:
    """Declare the panels below as ``processor``'s own row, titled ``title``."""

    def declare(panels: PanelsMaker) -> PanelsMaker:
        _OWN_ROWS[processor_spec(processor).name] = (title, panels)
        return panels

    return declare


def uid(processor: str) -> str:
    return f"conveyor-processor-{processor}"


@own_row("orders", "The saga")
def _orders() -> list[Panel]:
    return [
        graph(
            "Saga outcomes",
            "Orders this processor brought to a terminal status, by status and rejection reason.",
            [
                Query(
                    "sum by (status, reason) (conveyor:saga_outcomes:rate5m)",
                    "{{status}} {{reason}}",
                )
            ],
            unit="ops",
        ),
        graph(
            "End-to-end order latency",
            "Acceptance to terminal status, as the projector records it: the saga's pace.",
            [Query("conveyor:order_end_to_end_p95_seconds:5m", "p95")],
            unit="s",
        ),
    ]


def _replies_received(title: str, description: str, types: str, *, span: int = HALF) -> Panel:
    return graph(
        title,
        description,
        [
            Query(
                'sum by (type) (rate(conveyor_events_processed_total{processor="orders", '
                f'topic="orders.replies", type=~"{types}"}}[$__rate_interval]))',
                "{{type}}",
            )
        ],
        unit="ops",
        span=span,
    )


@own_row("inventory", "Stock")
def _inventory() -> list[Panel]:
    return [
        _replies_received(
            "Stock answers",
            "The inventory's answers as the saga receives them: lines reserved, refused for "
            "want of stock, released. Many StockRejected: products are running out.",
            "Stock.+",
        )
    ]


@own_row("payments", "The payment gateway")
def _payments() -> list[Panel]:
    return [
        graph(
            "Payment gateway calls",
            "Calls to the gateway by operation and result (HTTP status, error, or refused by "
            "the open circuit).",
            [
                Query(
                    "sum by (operation, result) "
                    "(rate(conveyor_payment_gateway_calls_total[$__rate_interval]))",
                    "{{operation}} {{result}}",
                )
            ],
            unit="reqps",
            span=THIRD,
        ),
        _replies_received(
            "Payment answers",
            "Authorizations, declines and refunds as the saga receives them.",
            "Payment.+",
            span=THIRD,
        ),
        single_value(
            "Gateway circuit",
            "Open: calls fail at once and orders are rejected payment_unavailable until a "
            "trial call succeeds.",
            Query("max(conveyor_payment_gateway_circuit_open)"),
            unit="none",
            thresholds=((None, "green"), (1, "red")),
            mappings={"0": "closed", "1": "open"},
        ),
    ]


@own_row("notifications", "Emails")
def _notifications() -> list[Panel]:
    return [
        graph(
            "Emails sent",
            "Emails handed to the mail server, by the order event they announce.",
            [
                Query(
                    "sum by (event) (rate(conveyor_emails_sent_total[$__rate_interval]))",
                    "{{event}}",
                )
            ],
            unit="ops",
        ),
        graph(
            "SMTP connections opened",
            "One connection is kept across emails; a new one follows a failure or the server "
            "closing it. Opened as often as emails are sent: none is being kept.",
            [
                Query(
                    "sum(increase(conveyor_smtp_connections_total[$__rate_interval]))",
                    "opened",
                )
            ],
            unit="short",
        ),
    ]


@own_row("projector", "Read models")
def _projector() -> list[Panel]:
    return [
        graph(
            "Batch size",
            "Records written to PostgreSQL in one transaction. Batches near the maximum: the "
            "projector is catching up.",
            [
                Query(
                    "histogram_quantile(0.5, sum by (le) "
                    "(rate(conveyor_projector_batch_size_bucket[$__rate_interval])))",
                    "p50",
                ),
                Query(
                    "histogram_quantile(0.95, sum by (le) "
                    "(rate(conveyor_projector_batch_size_bucket[$__rate_interval])))",
                    "p95",
                ),
            ],
            unit="short",
        ),
        graph(
            "End-to-end order latency by status",
            "Acceptance to terminal status, measured when the projector records the outcome.",
            [
                Query(
                    "histogram_quantile(0.95, sum by (le, status) "
                    "(rate(conveyor_order_end_to_end_seconds_bucket[$__rate_interval])))",
                    "p95 {{status}}",
                )
            ],
            unit="s",
        ),
    ]


@own_row("recommendations", "Products bought together")
def _recommendations() -> list[Panel]:
    return [
        graph(
            "Co-purchases by outcome",
            "Products of confirmed orders whose co-purchases were counted; repeated: a "
            "redelivery recognized and not counted again; too_old: older than the retention.",
            [
                Query(
                    "sum by (outcome) (rate(conveyor_copurchases_total[$__rate_interval]))",
                    "{{outcome}}",
                )
            ],
            unit="ops",
        ),
        graph(
            "Products written",
            "Products whose recommendations were written to PostgreSQL and Redis (once per "
            "batch however many of its records touched the product).",
            [
                Query(
                    "sum(rate(conveyor_recommendations_written_total[$__rate_interval]))",
                    "written",
                )
            ],
            unit="ops",
        ),
    ]


def _state(selector: str) -> list[Panel]:
    return [
        graph(
            "Table entries",
            "Entries each table holds: bounded by what is open plus the retention window, "
            "never by history. Growing without bound: entries that never expire.",
            [Query(f"sum by (table) (conveyor_table_entries{{{selector}}})", "{{table}}")],
            unit="short",
            span=THIRD,
        ),
        graph(
            "Table bytes",
            "Bytes those entries take as stored (what a restore reads, before compaction).",
            [Query(f"sum by (table) (conveyor_table_bytes{{{selector}}})", "{{table}}")],
            unit="bytes",
            span=THIRD,
        ),
        graph(
            "Largest changelog record",
            "The largest entry written to each table's changelog; Kafka refuses 1 MiB "
            "(ConveyorChangelogRecordLarge fires at 256 KiB).",
            [
                Query(
                    f"max by (table) (conveyor_changelog_record_max_bytes{{{selector}}})",
                    "{{table}}",
                )
            ],
            unit="bytes",
            span=THIRD,
        ),
    ]


def processor_dashboard(processor: str) -> Dashboard:
    selector = f'processor="{processor}"'
    by_topic = f'{selector}, topic=~"${TOPIC_VARIABLE}"'
    common: Sequence[tuple[str, Sequence[Panel]]] = [
        (
            "Throughput",
            [
                graph(
                    "Records processed by topic",
                    "Records handled per second on each input topic.",
                    [Query(f"conveyor:events_processed:rate5m{{{by_topic}}}", "{{topic}}")],
                    unit="ops",
                ),
                graph(
                    "Records processed by message type",
                    "Records handled per second by message type.",
                    [
                        Query(
                            f"sum by (topic, type) (rate(conveyor_events_processed_total"
                            f"{{{by_topic}}}[$__rate_interval]))",
                            "{{type}} ({{topic}})",
                        )
                    ],
                    unit="ops",
                ),
            ],
        ),
        (
            "Failures",
            [
                graph(
                    "Failed records by topic and reason",
                    "undecodable: not a message of the topic; refused: the message broke a "
                    "rule; failed: an error while handling it. Each went to <topic>.dlq.",
                    [
                        Query(
                            f"sum by (topic, reason) (conveyor:events_failed:rate5m{{{by_topic}}})",
                            "{{topic}} {{reason}}",
                        )
                    ],
                    unit="ops",
                ),
                totals_panel(
                    "Dead letters in the time range",
                    "Records sent to <topic>.dlq over the dashboard's time range; read them "
                    "for the error and the source offset (ConveyorDeadLetters).",
                    [
                        Query(
                            f"sum by (topic) (increase(conveyor_dead_letters_total{{{by_topic}}}"
                            "[$__range]))",
                            "{{topic}}.dlq",
                        )
                    ],
                    unit="short",
                ),
            ],
        ),
        (
            "Latency",
            [
                graph(
                    "Processing latency p95 by message type",
                    "Time a handler takes per record, including its calls to other services.",
                    [
                        Query(
                            "histogram_quantile(0.95, sum by (le, type) (rate("
                            f"conveyor_event_processing_seconds_bucket{{{selector}}}"
                            "[$__rate_interval])))",
                            "{{type}}",
                        )
                    ],
                    unit="s",
                ),
                graph(
                    "Processing latency p50 and p99",
                    "All message types together.",
                    [
                        Query(
                            f"histogram_quantile({quantile}, sum by (le) (rate("
                            f"conveyor_event_processing_seconds_bucket{{{selector}}}"
                            "[$__rate_interval])))",
                            f"p{int(quantile * 100)}",
                        )
                        for quantile in (0.5, 0.99)
                    ],
                    unit="s",
                ),
            ],
        ),
        (
            "Lag and rebalances",
            [
                graph(
                    "Consumer lag by topic",
                    "Records the consumer group has yet to process on each topic "
                    "(ConveyorConsumerLagGrowing, ConveyorProcessorNotConsuming).",
                    [Query(f"conveyor:consumer_lag:sum{{{by_topic}}}", "{{topic}}")],
                    unit="short",
                    span=THIRD,
                ),
                graph(
                    "Consumer lag by partition",
                    "One partition far behind the others: a hot key or a stuck consumer.",
                    [
                        Query(
                            f"max by (topic, partition) (conveyor_consumer_lag{{{by_topic}}})",
                            "{{topic}}[{{partition}}]",
                        )
                    ],
                    unit="short",
                    span=THIRD,
                ),
                graph(
                    "Rebalances",
                    "Partition assignments each process received. A steady stream means "
                    "members keep leaving the group (crashes, slow polls, failed probes).",
                    [
                        Query(
                            "sum by (instance) (increase(conveyor_rebalances_total"
                            f"{{{selector}}}[$__rate_interval]))",
                            "{{instance}}",
                        )
                    ],
                    unit="short",
                    span=THIRD,
                ),
                graph(
                    "Rebuilding tables",
                    "1 while a process rebuilds its tables from their changelogs and processes "
                    "nothing; stuck at 1 for long is ConveyorTableRecoveryStuck.",
                    [
                        Query(
                            f"max by (instance) (conveyor_table_recovering{{{selector}}})",
                            "{{instance}}",
                        )
                    ],
                    unit="short",
                    span=THIRD,
                ),
            ],
        ),
    ]
    spec = processor_spec(processor)
    own: list[tuple[str, Sequence[Panel]]] = []
    if processor in _OWN_ROWS:
        title, panels = _OWN_ROWS[processor]
        own.append((title, panels()))
    return dashboard(
        uid(processor),
        f"Conveyor: {processor} processor",
        f"The {processor} processor, {spec.summary}.",
        [
            label_variable(
                TOPIC_VARIABLE,
                "topic",
                f"conveyor_consumer_lag{{{selector}}}",
                title="Input topic",
            )
        ],
        [
            *common,
            *own,
            # Each table entry expires with the state retention: the row shows they do.
            *([("State", _state(selector))] if spec.stateful else []),
        ],
    )
