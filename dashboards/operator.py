"""The operator: does it reconcile, how fast, and what did it decide for each processor."""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from conveyor.devstack.prometheus_server import OPERATOR_JOB
from dashboards.panels import THIRD, Query, dashboard, graph, label_variable, single_value, totals

UID = "conveyor-operator"
NAMESPACE_VARIABLE = "namespace"


def operator_dashboard() -> Dashboard:
    in_namespace = f'namespace=~"${NAMESPACE_VARIABLE}"'
    all_reconciles = "sum by (kind) (rate(conveyor_operator_reconciles_total[$__rate_interval]))"
    # A kind that never failed has no error series; its ratio is 0, not missing.
    errors = (
        'sum by (kind) (rate(conveyor_operator_reconciles_total{result="error"}[$__rate_interval]))'
    )
    reconciles = [
        graph(
            "Reconciles by kind and result",
            "StreamProcessor and Topic reconciles per second, successful or failed. Kopf "
            "retries failures, so errors that never stop are one resource failing over and "
            "over (ConveyorOperatorReconcileErrors).",
            [
                Query(
                    "sum by (kind, result) "
                    "(rate(conveyor_operator_reconciles_total[$__rate_interval]))",
                    "{{kind}} {{result}}",
                )
            ],
            unit="ops",
            span=THIRD,
        ),
        graph(
            "Reconcile error ratio",
            "Share of each kind's reconciles that failed.",
            [
                Query(
                    f"({errors} or {all_reconciles} * 0) / clamp_min({all_reconciles}, 1e-9)",
                    "{{kind}}",
                )
            ],
            unit="percentunit",
            span=THIRD,
        ),
        graph(
            "Reconcile duration p95",
            "Time one reconcile takes, by kind: Kubernetes API calls for a StreamProcessor, "
            "Kafka admin calls for a Topic.",
            [
                Query(
                    "histogram_quantile(0.95, sum by (le, kind) "
                    "(rate(conveyor_operator_reconcile_duration_seconds_bucket[$__rate_interval])))",
                    "{{kind}}",
                )
            ],
            unit="s",
            span=THIRD,
        ),
    ]
    scaling = [
        graph(
            "Replicas wanted",
            "Replicas the operator wants for each StreamProcessor (0 while suspended).",
            [
                Query(
                    f"max by (namespace, name) (conveyor_operator_replicas{{{in_namespace}}})",
                    "{{namespace}}/{{name}}",
                )
            ],
            unit="short",
            span=THIRD,
        ),
        graph(
            "Consumer lag the operator sees",
            "What the autoscaler scales on: records each StreamProcessor's group has yet to "
            "process.",
            [
                Query(
                    f"max by (namespace, name) (conveyor_operator_consumer_lag{{{in_namespace}}})",
                    "{{namespace}}/{{name}}",
                )
            ],
            unit="short",
            span=THIRD,
        ),
        graph(
            "Scale decisions",
            "Replica changes the lag autoscaler made. Up and down in turn: the stabilization "
            "window (scaleDownStabilizationSeconds) is too short for the load's rhythm.",
            [
                Query(
                    "sum by (namespace, name, direction) (increase("
                    f"conveyor_operator_scale_decisions_total{{{in_namespace}}}[$__rate_interval]))",
                    "{{namespace}}/{{name}} {{direction}}",
                )
            ],
            unit="short",
            span=THIRD,
        ),
    ]
    stalls = [
        graph(
            "Stalled partitions",
            "Input partitions with lag whose committed offset has stood still for "
            "stallDetection.stallSeconds while their owning pod is Ready, and after a restart "
            "until they move again (ConveyorProcessorStalled after 10 minutes).",
            [
                Query(
                    "max by (namespace, name) "
                    f"(conveyor_operator_stalled_partitions{{{in_namespace}}})",
                    "{{namespace}}/{{name}}",
                )
            ],
            unit="short",
            span=THIRD,
        ),
        graph(
            "Stall restarts",
            "Pods the operator deleted because they owned stalled partitions; at most "
            "stallDetection.maxRestartsPerHour per StreamProcessor in any hour.",
            [
                Query(
                    "sum by (namespace, name) (increase("
                    f"conveyor_operator_stall_restarts_total{{{in_namespace}}}[$__rate_interval]))",
                    "{{namespace}}/{{name}}",
                )
            ],
            unit="short",
            span=THIRD,
        ),
        graph(
            "Processing rate per replica",
            "Records per second each replica commits, from the group's committed offsets: "
            "what autoscaling.targetDrainSeconds divides the lag by.",
            [
                Query(
                    "max by (namespace, name) "
                    f"(conveyor_operator_processing_rate_per_replica{{{in_namespace}}})",
                    "{{namespace}}/{{name}}",
                )
            ],
            unit="short",
            span=THIRD,
        ),
    ]
    topics = [
        totals(
            "Topic repairs in the time range",
            "Changes the operator made in Kafka: topics created, partitions grown, config "
            "drift reverted. Repeated config repairs: something else edits the topic.",
            [
                Query(
                    "sum by (topic, what) "
                    "(increase(conveyor_operator_topic_repairs_total[$__range]))",
                    "{{topic}} {{what}}",
                )
            ],
            unit="short",
        ),
        single_value(
            "Operator up",
            "Operator processes Prometheus scrapes successfully (ConveyorOperatorDown at 0).",
            Query(f'sum(up{{job="{OPERATOR_JOB}"}})'),
            unit="none",
            thresholds=((None, "red"), (1, "green")),
            span=12,
        ),
    ]
    return dashboard(
        UID,
        "Conveyor: operator",
        "The Kubernetes operator: reconciles of StreamProcessor and Topic resources, its "
        "scaling decisions, the stalls it found and healed, and the topics it repaired.",
        [
            label_variable(
                NAMESPACE_VARIABLE,
                "namespace",
                "conveyor_operator_replicas",
                title="Namespace",
            )
        ],
        [
            ("Reconciles", reconciles),
            ("Scaling", scaling),
            ("Stalls and draining", stalls),
            ("Topics", topics),
        ],
    )
