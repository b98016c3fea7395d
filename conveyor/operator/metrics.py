"""The operator's Prometheus metrics (names documented in dashboards/README.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "conveyor_operator_reconciles_total",
    "Reconciles of a custom resource, by kind and result (success or error).",
    ["kind", "result"],
)
RECONCILE_SECONDS = Histogram(
    "conveyor_operator_reconcile_duration_seconds",
    "Time one reconcile of a custom resource took.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SCALE_DECISIONS = Counter(
    "conveyor_operator_scale_decisions_total",
    "Replica changes the lag autoscaler made, by direction (up or down).",
    ["namespace", "name", "processor", "direction"],
)
REPLICAS = Gauge(
    "conveyor_operator_replicas",
    "Replicas the operator wants for a StreamProcessor (0 while suspended).",
    ["namespace", "name", "processor"],
)
CONSUMER_LAG = Gauge(
    "conveyor_operator_consumer_lag",
    "Records a StreamProcessor's consumer group has yet to process, as the operator reads it.",
    ["namespace", "name", "processor"],
)
TOPIC_REPAIRS = Counter(
    "conveyor_operator_topic_repairs_total",
    "Changes the operator made in Kafka for a Topic: created, partitions grown, config set.",
    ["topic", "what"],
)
STALLED_PARTITIONS = Gauge(
    "conveyor_operator_stalled_partitions",
    "Input partitions of a StreamProcessor with lag whose committed offset has stood still "
    "for spec.stallDetection.stallSeconds while their owning pod is Ready.",
    ["namespace", "name", "processor"],
)
STALL_RESTARTS = Counter(
    "conveyor_operator_stall_restarts_total",
    "Pods the operator deleted because they owned stalled partitions.",
    ["namespace", "name", "processor"],
)
PROCESSING_RATE = Gauge(
    "conveyor_operator_processing_rate_per_replica",
    "Records per second each Ready replica of a StreamProcessor commits, measured from its "
    "group's committed offsets over the last 30 s (what targetDrainSeconds divides by).",
    ["namespace", "name", "processor"],
)
EXPECTED_DRAIN_SECONDS = Gauge(
    "conveyor_operator_expected_drain_seconds",
    "Seconds the running replicas need to clear the lag at the measured rate.",
    ["namespace", "name", "processor"],
)
EXPECTED_RESTORE_SECONDS = Gauge(
    "conveyor_operator_expected_restore_seconds",
    "The last restore's measured duration (a pod's container start to Ready), which a "
    "drain-time scale-up waits for before the new replica processes.",
    ["namespace", "name", "processor"],
)
