"""The operator against a real API server, controller-manager, scheduler and kwok node.

`conveyor operator` runs as a process, as it does in a cluster; the tests drive it with
kubectl, as platform engineers do, and look at Kafka itself for what Topics promise.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from conveyor.devstack.control_plane import ControlPlane
from conveyor.devstack.prometheus_server import OPERATOR_JOB, ScrapeTarget
from conveyor.domain.messages import UpsertProduct
from conveyor.domain.resources import StreamProcessorStatus, TopicStatus
from conveyor.infra.publisher import Publisher
from conveyor.infra.topic_admin import TopicState, topic_admin
from conveyor.operator.secret_access import PROCESSOR_ACCESS_LABEL
from tests.dashboards.prometheus import (
    assert_every_query_returns_data,
    load_dashboard,
    running_prometheus,
)
from tests.support.operator import Namespace, OperatorProcess, stream_processor
from tests.support.stack import RunningStack
from tests.support.waiting import eventually
from tests.support.workers import Workers


def topic(name: str, topic_name: str, partitions: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "conveyor.dev/v1alpha1",
        "kind": "Topic",
        "metadata": {"name": name},
        "spec": {"topicName": topic_name, "partitions": partitions, **spec},
    }


def condition(found: dict[str, Any] | None, kind: str) -> tuple[str, str] | None:
    for item in ((found or {}).get("status") or {}).get("conditions", []):
        if item["type"] == kind:
            return item["status"], item["reason"]
    return None


def processor_when(
    namespace: Namespace, name: str, holds: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    """The StreamProcessor once ``holds`` is true of it."""
    found = namespace.get("streamprocessor", name)
    return found if found is not None and holds(found) else None


def processor_with_condition(
    namespace: Namespace, name: str, kind: str, wanted: tuple[str, str]
) -> dict[str, Any]:
    """The StreamProcessor once its condition ``kind`` has the status and reason ``wanted``."""
    return eventually(
        lambda: processor_when(namespace, name, lambda found: condition(found, kind) == wanted),
        f"{kind} {wanted[0]} with the reason {wanted[1]}",
    )


def phase(namespace: Namespace, name: str) -> str | None:
    found = namespace.get("streamprocessor", name)
    return ((found or {}).get("status") or {}).get("phase")


def ready(namespace: Namespace, name: str) -> dict[str, Any] | None:
    found = namespace.get("streamprocessor", name)
    if condition(found, "Ready") == ("True", "ReplicasReady"):
        assert found is not None
        if found["status"].get("observedGeneration") == found["metadata"]["generation"]:
            return found
    return None


def running_processor(namespace: Namespace, bootstrap: str, **spec: Any) -> dict[str, Any]:
    """Applies an inventory StreamProcessor and waits until it is Ready."""
    namespace.apply(stream_processor("inventory", bootstrap, **spec))
    return eventually(
        lambda: ready(namespace, "inventory"),
        "inventory is Ready",
        context=lambda: (
            namespace.kubectl("get", "sp,all,pvc", "-o", "wide").stdout
            + namespace.kubectl("get", "sp", "inventory", "-o", "jsonpath={.status}").stdout
        ),
    )


def topic_in_sync(namespace: Namespace, name: str) -> dict[str, Any] | None:
    found = namespace.get("topic", name)
    return found if condition(found, "Ready") == ("True", "InSync") else None


def kafka_topic(bootstrap: str, name: str) -> TopicState | None:
    async def describe() -> TopicState | None:
        async with topic_admin(bootstrap) as admin:
            return await admin.describe(name)

    return asyncio.run(describe())


def template(namespace: Namespace, kind: str, name: str) -> dict[str, Any]:
    found = namespace.get(kind, name)
    assert found is not None, f"{kind}/{name} missing"
    pod_template: dict[str, Any] = found["spec"]["template"]
    return pod_template


def test_invalid_specs_are_refused_by_the_api_server(
    namespace: Namespace, crds_installed: ControlPlane
) -> None:
    refused = {
        "minReplicas must not exceed maxReplicas": stream_processor(
            "a", "k:9092", autoscaling={"enabled": True, "minReplicas": 4, "maxReplicas": 2}
        ),
        "set exactly one of bootstrapServers and secretRef": stream_processor(
            "b", "k:9092", kafka={"bootstrapServers": "k:9092", "secretRef": {"name": "s"}}
        ),
        "Unsupported value": stream_processor("c", "k:9092", processor="shipping"),
        "standbyReplicas needs store rocksdb": stream_processor(
            "g", "k:9092", state={"store": "memory", "standbyReplicas": 1}
        ),
        "should be greater than or equal to 1": topic("d", "t.d", 0),
        # A Secret's name is one name in the resource's namespace, never a path out of it.
        "spec.kafka.secretRef.name: Invalid value": stream_processor(
            "f", "", kafka={"secretRef": {"name": "../../kube-system/secrets/token"}}
        ),
    }
    for message, body in refused.items():
        answer = namespace.kubectl("apply", "-f", "-", input_text=json.dumps(body), check=False)
        assert answer.returncode != 0, f"{body['metadata']['name']} was accepted"
        assert message in answer.stderr, answer.stderr
    namespace.apply(stream_processor("e", "k:9092", processor="payments"))
    changed = stream_processor("e", "k:9092", processor="orders")
    answer = namespace.kubectl("apply", "-f", "-", input_text=json.dumps(changed), check=False)
    assert "processor cannot change; create another" in answer.stderr
    assert namespace.get("streamprocessor", "a") is None


def test_a_stream_processor_becomes_ready_with_the_children_it_owns(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack
) -> None:
    found = running_processor(namespace, stack.urls.kafka_bootstrap_servers)
    status = found["status"]
    assert status["phase"] == "Running"
    assert (status["replicas"], status["readyReplicas"]) == (2, 2)
    assert condition(found, "TopicsReady") == ("True", "TopicsFound")
    assert condition(found, "Progressing") == ("False", "RolloutComplete")
    assert condition(found, "Degraded") == ("False", "AsExpected")
    assert condition(found, "Suspended") == ("False", "Running")
    assert "inventory.commands" in status["consumerLag"]["perTopic"]
    selector = "app.kubernetes.io/instance=inventory"
    assert namespace.names("statefulset", selector) == ["inventory"]
    assert namespace.names("configmap", selector) == ["inventory-config"]
    assert namespace.names("service", selector) == ["inventory"]
    assert namespace.names("poddisruptionbudget", selector) == ["inventory"]
    assert namespace.names("pods", selector) == ["inventory-0", "inventory-1"]
    claims = json.loads(namespace.kubectl("get", "pvc", "-o", "json").stdout)["items"]
    assert sorted(claim["status"]["phase"] for claim in claims) == ["Bound", "Bound"]
    columns = namespace.kubectl("get", "sp", "inventory").stdout
    assert "Running" in columns
    assert "inventory" in columns
    assert (
        operator.metric(
            "conveyor_operator_reconciles_total", kind="StreamProcessor", result="success"
        )
        > 0
    )


def test_the_status_written_is_exactly_what_the_status_models_describe(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    processor = running_processor(namespace, bootstrap)
    namespace.apply(topic("modelled", f"test.{namespace.name}.modelled", 2))
    found_topic = eventually(lambda: topic_in_sync(namespace, "modelled"), "the Topic is Ready")
    models: list[tuple[type[BaseModel], dict[str, Any]]] = [
        (StreamProcessorStatus, processor["status"]),
        (TopicStatus, found_topic["status"]),
    ]
    for model, written in models:
        # Through the model and back unchanged: every field the operator wrote is the model's,
        # spelled as the model spells it, and nothing the model holds was left out.
        assert (
            model.model_validate(written).model_dump(by_alias=True, mode="json", exclude_none=True)
            == written
        )
    assert [item["type"] for item in processor["status"]["conditions"]] == [
        "Ready",
        "TopicsReady",
        "Progressing",
        "Degraded",
        "Suspended",
        "Stalled",
    ]


def test_an_edited_or_deleted_child_is_restored(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack
) -> None:
    running_processor(namespace, stack.urls.kafka_bootstrap_servers)
    namespace.kubectl(
        "patch",
        "configmap",
        "inventory-config",
        "--type=merge",
        "-p",
        '{"data": {"CONVEYOR_PROCESSING_GUARANTEE": "exactly_once"}}',
    )
    namespace.kubectl("delete", "service", "inventory")
    namespace.kubectl("delete", "poddisruptionbudget", "inventory")
    namespace.kubectl("scale", "statefulset", "inventory", "--replicas=5")

    def restored() -> bool:
        config = namespace.get("configmap", "inventory-config")
        workload = namespace.get("statefulset", "inventory")
        return (
            config is not None
            and config["data"]["CONVEYOR_PROCESSING_GUARANTEE"] == "at_least_once"
            and namespace.get("service", "inventory") is not None
            and namespace.get("poddisruptionbudget", "inventory") is not None
            and workload is not None
            and workload["spec"]["replicas"] == 2
        )

    eventually(restored, "the ConfigMap, Service, PDB and replica count are back")


def test_spec_changes_roll_through_to_the_children(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    running_processor(namespace, bootstrap)
    before = template(namespace, "statefulset", "inventory")["metadata"]["annotations"]

    namespace.apply(
        stream_processor(
            "inventory",
            bootstrap,
            image="conveyor:1.1",
            restartNonce="2026-11-25",
            env=[{"name": "CONVEYOR_LOG_LEVEL", "value": "DEBUG"}],
            canary={"image": "conveyor:1.2-rc", "replicas": 1},
        )
    )

    def rolled() -> dict[str, Any] | None:
        pod = template(namespace, "statefulset", "inventory")
        config = namespace.get("configmap", "inventory-config")
        canary = namespace.get("statefulset", "inventory-canary")
        if (
            pod["spec"]["containers"][0]["image"] == "conveyor:1.1"
            and config is not None
            and config["data"].get("CONVEYOR_LOG_LEVEL") == "DEBUG"
            and canary is not None
        ):
            return canary
        return None

    canary = eventually(rolled, "image, env and canary reach the children")
    after = template(namespace, "statefulset", "inventory")["metadata"]["annotations"]
    assert after["conveyor.dev/restart-nonce"] == "2026-11-25"
    assert after["conveyor.dev/config-hash"] != before["conveyor.dev/config-hash"]
    canary_pod = canary["spec"]["template"]["spec"]
    assert canary_pod["containers"][0]["image"] == "conveyor:1.2-rc"
    # The same ConfigMap, hence the same consumer group, as the stable pods.
    assert canary_pod["containers"][0]["envFrom"] == [
        {"configMapRef": {"name": "inventory-config"}}
    ]
    eventually(lambda: ready(namespace, "inventory"), "the rolled-out processor is Ready")

    namespace.apply(
        stream_processor("inventory", bootstrap, image="conveyor:1.1", state={"store": "memory"})
    )
    eventually(
        lambda: (
            namespace.get("statefulset", "inventory") is None
            and namespace.get("statefulset", "inventory-canary") is None
            and namespace.get("deployment", "inventory") is not None
        ),
        "memory store: the StatefulSets are replaced by a Deployment, the canary is gone",
    )
    eventually(lambda: ready(namespace, "inventory"), "the Deployment's pods are Ready")


def test_suspend_scales_to_zero_keeps_the_state_and_resume_brings_it_back(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    running_processor(namespace, bootstrap)
    claims = namespace.names("pvc", "app.kubernetes.io/instance=inventory")

    namespace.apply(stream_processor("inventory", bootstrap, suspend=True))
    eventually(lambda: phase(namespace, "inventory") == "Suspended", "phase Suspended")
    eventually(
        lambda: not namespace.names("pods", "app.kubernetes.io/instance=inventory"), "no pods left"
    )
    suspended = namespace.get("streamprocessor", "inventory")
    assert condition(suspended, "Suspended") == ("True", "Suspended")
    assert condition(suspended, "Ready") == ("False", "Suspended")
    assert namespace.names("pvc", "app.kubernetes.io/instance=inventory") == claims

    namespace.apply(stream_processor("inventory", bootstrap, suspend=False))
    eventually(lambda: ready(namespace, "inventory"), "inventory is Ready again")
    assert namespace.names("pvc", "app.kubernetes.io/instance=inventory") == claims


def test_lag_in_kafka_scales_the_processor_up_then_back_down(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack, workers: Workers
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    autoscaling = {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 3,
        "targetLagPerReplica": 10,
        "scaleDownStabilizationSeconds": 5,
    }
    running_processor(namespace, bootstrap, replicas=1, autoscaling=autoscaling)
    # The session's inventory worker is the group these pods would join: stopped, it leaves
    # the lag standing, as pods that cannot keep up would.
    workers.stop("inventory")
    try:

        async def produce() -> None:
            async with Publisher(bootstrap) as publisher:
                for _ in range(60):
                    product = uuid.uuid4()
                    await publisher.publish(
                        UpsertProduct(
                            product_id=product, sku=product.hex[:8], name="Lag", initial_stock=1
                        )
                    )

        asyncio.run(produce())
        # The operator patches spec.replicas before it writes the status of the same pass: a
        # read in between pairs 3 replicas with the lag (and scale time) of the pass before,
        # which may have scaled 1 -> 2 on the first 20 records. So this waits for a status
        # that shows the backlog: at least half the 60 records.
        eventually(
            lambda: processor_when(
                namespace,
                "inventory",
                lambda found: (
                    found["spec"]["replicas"] == 3
                    and bool(found["status"].get("lastScaleTime"))
                    and (found["status"].get("consumerLag") or {}).get("total", 0) >= 30
                ),
            ),
            "60 records of lag scale inventory to maxReplicas (3), at a recorded time",
            context=lambda: (
                json.dumps(namespace.get("streamprocessor", "inventory"), indent=1) + operator.log()
            ),
        )
        eventually(
            lambda: len(namespace.names("pods", "app.kubernetes.io/instance=inventory")) == 3,
            "three pods",
        )
    finally:
        workers.start("inventory")
    eventually(
        lambda: processor_when(
            namespace, "inventory", lambda found: found["spec"]["replicas"] == 1
        ),
        "the lag consumed, inventory scales back to minReplicas after the window",
        within=120,
    )
    reasons = [event["reason"] for event in namespace.events("inventory", "ScaledUp", "ScaledDown")]
    assert "ScaledUp" in reasons
    assert "ScaledDown" in reasons
    assert (
        operator.metric(
            "conveyor_operator_scale_decisions_total", namespace=namespace.name, direction="up"
        )
        >= 1
    )
    assert (
        operator.metric(
            "conveyor_operator_scale_decisions_total", namespace=namespace.name, direction="down"
        )
        >= 1
    )


def test_a_topic_is_created_grown_kept_from_shrinking_and_its_drift_reverted(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    name = f"test.{namespace.name}.audit"
    namespace.apply(topic("audit", name, 3, config={"retention.ms": "3600000"}))
    created = eventually(lambda: kafka_topic(bootstrap, name), "the topic exists in Kafka")
    assert (created.partitions, dict(created.config)) == (3, {"retention.ms": "3600000"})
    eventually(
        lambda: condition(namespace.get("topic", "audit"), "Ready") == ("True", "InSync"),
        "Topic Ready",
    )

    namespace.apply(topic("audit", name, 5, config={"retention.ms": "3600000"}))
    eventually(lambda: (kafka_topic(bootstrap, name) or created).partitions == 5, "grown to 5")

    namespace.apply(topic("audit", name, 2, config={"retention.ms": "3600000"}))
    eventually(
        lambda: condition(namespace.get("topic", "audit"), "Ready") == ("False", "ShrinkRefused"),
        "shrinking is refused on the status",
    )
    assert (kafka_topic(bootstrap, name) or created).partitions == 5

    async def drift() -> None:
        async with topic_admin(bootstrap) as admin:
            await admin.set_config(name, {"retention.ms": "1000", "cleanup.policy": "compact"})

    asyncio.run(drift())
    eventually(
        lambda: (
            dict((kafka_topic(bootstrap, name) or created).config) == {"retention.ms": "3600000"}
        ),
        "the config changed directly in Kafka is reverted",
    )
    assert operator.metric("conveyor_operator_topic_repairs_total", topic=name, what="config") >= 1


def test_a_topic_kafka_refuses_is_reported_and_deletion_follows_the_policy(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    refused = f"test.{namespace.name}.refused"
    namespace.apply(topic("refused", refused, 1, config={"retention.ms": "soon"}))
    eventually(
        lambda: condition(namespace.get("topic", "refused"), "Ready") == ("False", "KafkaRefused"),
        "an invalid config is reported with Kafka's reason",
    )
    message = (namespace.get("topic", "refused") or {})["status"]["message"]
    assert "retention.ms" in message
    assert kafka_topic(bootstrap, refused) is None

    kept, deleted = f"test.{namespace.name}.kept", f"test.{namespace.name}.deleted"
    namespace.apply(topic("kept", kept, 1), topic("deleted", deleted, 1, deletionPolicy="Delete"))
    eventually(
        lambda: kafka_topic(bootstrap, kept) and kafka_topic(bootstrap, deleted),
        "both topics exist in Kafka",
    )
    namespace.kubectl("delete", "topic", "kept", "deleted", "--timeout=60s")
    eventually(lambda: kafka_topic(bootstrap, deleted) is None, "Delete removes the Kafka topic")
    assert kafka_topic(bootstrap, kept) is not None


def test_the_operator_restarted_mid_way_converges(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    running_processor(namespace, bootstrap)
    operator.kill()
    try:
        namespace.apply(stream_processor("inventory", bootstrap, replicas=3, image="conveyor:2.0"))
        namespace.kubectl("delete", "configmap", "inventory-config")
        namespace.apply(
            stream_processor("payments", bootstrap, processor="payments", state={"store": "memory"})
        )
    finally:
        operator.start()
    eventually(
        lambda: (
            ready(namespace, "inventory")
            and template(namespace, "statefulset", "inventory")["spec"]["containers"][0]["image"]
            == "conveyor:2.0"
            and namespace.get("configmap", "inventory-config") is not None
        ),
        "the changes made while it was down are applied",
    )
    found = eventually(lambda: ready(namespace, "inventory"), "inventory Ready at 3")
    assert found["status"]["readyReplicas"] == 3
    eventually(lambda: ready(namespace, "payments"), "the processor created meanwhile is Ready")


def test_deleting_a_stream_processor_removes_what_it_owned(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack
) -> None:
    running_processor(namespace, stack.urls.kafka_bootstrap_servers)
    namespace.kubectl("delete", "streamprocessor", "inventory", "--timeout=60s")
    selector = "app.kubernetes.io/instance=inventory"
    for kind in ("statefulset", "configmap", "service", "poddisruptionbudget", "pods"):
        eventually(partial(lambda kind: not namespace.names(kind, selector), kind), f"no {kind}")


def labelled_secret(name: str, **data: str) -> dict[str, Any]:
    """A Secret the operator may hand to processor pods."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {PROCESSOR_ACCESS_LABEL: "true"}},
        "stringData": data,
    }


def test_a_kafka_secret_without_the_key_is_reported_on_the_status(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack
) -> None:
    namespace.apply(labelled_secret("kafka", OTHER="x"))
    namespace.apply(stream_processor("inventory", "", kafka={"secretRef": {"name": "kafka"}}))
    found = processor_with_condition(
        namespace, "inventory", "TopicsReady", ("Unknown", "KafkaUnreachable")
    )
    assert "KAFKA_BOOTSTRAP_SERVERS" in found["status"]["conditions"][1]["message"]
    assert condition(found, "Degraded") == ("True", "KafkaUnreachable")
    namespace.apply(
        labelled_secret("kafka", KAFKA_BOOTSTRAP_SERVERS=stack.urls.kafka_bootstrap_servers)
    )
    eventually(lambda: ready(namespace, "inventory"), "with the key in place it is Ready")


def test_secrets_not_labelled_for_processors_are_refused_and_the_workload_is_left_as_it_was(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    running_processor(namespace, bootstrap)
    before = template(namespace, "statefulset", "inventory")
    # The edge's token signing keys, say: a Secret no processor is meant to read.
    namespace.kubectl("create", "secret", "generic", "signing-keys", "--from-literal=KEY=x")
    namespace.apply(
        stream_processor("inventory", bootstrap, envFromSecrets=["signing-keys", "later"])
    )
    found = processor_with_condition(namespace, "inventory", "Ready", ("False", "SecretNotAllowed"))
    message = found["status"]["message"]
    assert "Secret signing-keys is not labelled for processors" in message
    assert "Secret later not found" in message
    assert f"{PROCESSOR_ACCESS_LABEL}=true" in message
    assert found["status"]["phase"] == "Failed"
    assert template(namespace, "statefulset", "inventory") == before
    assert namespace.events("inventory", "SecretNotAllowed")

    namespace.kubectl("label", "secret", "signing-keys", f"{PROCESSOR_ACCESS_LABEL}=true")
    namespace.apply(labelled_secret("later", LATER="y"))
    eventually(lambda: ready(namespace, "inventory"), "with both Secrets labelled it is Ready")
    container = template(namespace, "statefulset", "inventory")["spec"]["containers"][0]
    assert {"secretRef": {"name": "signing-keys"}} in container["envFrom"]
    assert {"secretRef": {"name": "later"}} in container["envFrom"]


# Where a Secret's value sits, and what the status then says instead of the value.
SECRET_MARKERS = {
    "an address nothing answers at": (
        "KAFKA_BOOTSTRAP_SERVERS",
        "{marker}.invalid:9092",
        "no Kafka broker answered at the address in Secret {namespace}/kafka key "
        "KAFKA_BOOTSTRAP_SERVERS",
    ),
    "text that is no address": (
        "KAFKA_BOOTSTRAP_SERVERS",
        "{marker}",
        "Secret {namespace}/kafka key KAFKA_BOOTSTRAP_SERVERS does not hold Kafka bootstrap "
        "servers",
    ),
    "another key than the one named": (
        "OTHER",
        "{marker}:9092",
        "Secret {namespace}/kafka has no key KAFKA_BOOTSTRAP_SERVERS",
    ),
}


@pytest.mark.parametrize("placement", SECRET_MARKERS, ids=str)
def test_a_kafka_secrets_value_never_reaches_status_events_or_logs(
    namespace: Namespace, operator: OperatorProcess, placement: str
) -> None:
    key, value, says = SECRET_MARKERS[placement]
    marker = f"marker-{uuid.uuid4().hex}"
    literal = f"--from-literal={key}={value.format(marker=marker)}"
    namespace.kubectl("create", "secret", "generic", "kafka", literal)
    namespace.kubectl("label", "secret", "kafka", f"{PROCESSOR_ACCESS_LABEL}=true")
    namespace.apply(stream_processor("inventory", "", kafka={"secretRef": {"name": "kafka"}}))
    expected = says.format(namespace=namespace.name)
    found = eventually(
        lambda: processor_when(
            namespace,
            "inventory",
            lambda found: expected in json.dumps(found.get("status", {})),
        ),
        f"the status says: {expected}",
    )
    # What is wrong is still plain: which Secret and key, and Kafka left unread.
    assert condition(found, "TopicsReady") == ("Unknown", "KafkaUnreachable")
    assert condition(found, "Degraded") == ("True", "KafkaUnreachable")
    assert marker not in json.dumps(found["status"])
    assert marker not in namespace.kubectl("get", "events", "-o", "json").stdout
    assert marker not in operator.log(characters=50_000_000)


SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "names": {
            "kind": "ServiceMonitor",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def test_a_service_monitor_is_added_once_the_prometheus_operator_crd_exists(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack
) -> None:
    running_processor(namespace, stack.urls.kafka_bootstrap_servers)
    namespace.cluster.kubectl("apply", "-f", "-", input_text=json.dumps(SERVICE_MONITOR_CRD))
    namespace.cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/servicemonitors.monitoring.coreos.com",
        "--timeout=60s",
    )
    monitor = eventually(
        lambda: namespace.get("servicemonitor", "inventory"), "a ServiceMonitor for inventory"
    )
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "interval": "15s"}]
    assert monitor["metadata"]["ownerReferences"][0]["kind"] == "StreamProcessor"
    namespace.kubectl("delete", "servicemonitor", "inventory")
    eventually(lambda: namespace.get("servicemonitor", "inventory"), "the ServiceMonitor is back")


def test_every_query_of_the_operator_dashboard_finds_data(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack, tmp_path: Path
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    target = ScrapeTarget(OPERATOR_JOB, f"127.0.0.1:{operator.metrics_port}")
    with running_prometheus(tmp_path, [target]) as prometheus:
        prometheus.wait_until_scraped()
        # Below minReplicas: the autoscaler scales up at once, a decision the dashboard shows;
        # the Topic is a repair (created) the dashboard counts.
        autoscaling = {"enabled": True, "minReplicas": 2, "maxReplicas": 3}
        namespace.apply(
            stream_processor("inventory", bootstrap, replicas=1, autoscaling=autoscaling),
            topic("audit", f"test.{namespace.name}.audit", 1),
        )
        assert_every_query_returns_data(prometheus, load_dashboard("conveyor-operator"))
