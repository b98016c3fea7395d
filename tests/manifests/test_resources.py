"""What manifests/ declares agrees with the code it deploys: models, topics, settings, RBAC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from conveyor.api.settings import ApiSettings
from conveyor.api.workers import MULTIPROC_VARIABLE
from conveyor.domain.processors import PROCESSOR_NAMES, PROCESSORS, RETRIED_TOPICS
from conveyor.domain.resources import StreamProcessorSpec, TopicResourceSpec
from conveyor.domain.topics import TOPICS, dead_letter_topic, retry_topic
from conveyor.infra.settings import SERVICE_URL_VARIABLES
from conveyor.operator.settings import OperatorSettings
from tests.manifests.conftest import (
    CLUSTER_WIDE,
    INSTALLATIONS,
    KIND,
    MANIFESTS,
    SECRETS_EXAMPLE,
    Document,
    Kustomize,
    documents,
    of_kind,
)
from tests.manifests.permissions import CLUSTER_WIDE_ONLY, NEEDED, granted

pytestmark = pytest.mark.cluster  # kubectl comes from scripts/control-plane


@pytest.mark.parametrize("tree", [MANIFESTS, KIND], ids=["manifests", "overlays/kind"])
def test_every_custom_resource_is_valid_for_its_model(kustomize: Kustomize, tree: Path) -> None:
    objects = kustomize.render(tree)
    processors = of_kind(objects, "StreamProcessor")
    topics = of_kind(objects, "Topic")
    assert processors
    assert topics
    for processor in processors:
        StreamProcessorSpec.model_validate(processor["spec"])
    for topic in topics:
        TopicResourceSpec.model_validate(topic["spec"])


def test_the_topics_are_exactly_the_declared_ones_their_dead_letters_and_retries(
    installation: list[Document],
) -> None:
    declared: dict[str, tuple[int, dict[str, str]]] = {}
    for declaration in TOPICS.values():
        config = {"cleanup.policy": "compact"} if declaration.compacted else {}
        # A dead-letter topic is created from its source's declaration (as ensure_topics does).
        declared[declaration.name] = declared[dead_letter_topic(declaration)] = (
            declaration.partitions,
            config,
        )
    for declaration in RETRIED_TOPICS:
        declared[retry_topic(declaration)] = (declaration.partitions, {})
    found = {}
    for topic in of_kind(installation, "Topic"):
        spec = TopicResourceSpec.model_validate(topic["spec"])
        assert topic["metadata"]["name"] == spec.topic_name
        assert spec.deletion_policy == "Retain", spec.topic_name
        found[spec.topic_name] = (spec.partitions, spec.config)
    assert found == declared


def test_there_is_one_processor_resource_per_processor(installation: list[Document]) -> None:
    processors = of_kind(installation, "StreamProcessor")
    assert sorted(item["metadata"]["name"] for item in processors) == sorted(PROCESSOR_NAMES)
    for item in processors:
        assert item["metadata"]["name"] == item["spec"]["processor"]


def test_no_processor_asks_for_more_replicas_than_its_inputs_have_partitions(
    installation: list[Document],
) -> None:
    for item in of_kind(installation, "StreamProcessor"):
        spec = StreamProcessorSpec.model_validate(item["spec"])
        partitions = max(topic.partitions for topic in PROCESSORS[spec.processor].inputs)
        assert spec.replicas <= partitions, spec.processor
        if spec.autoscaling.enabled:
            assert spec.autoscaling.max_replicas <= partitions, spec.processor
            # Omitted replicas leave them to the autoscaler, so re-applying resets nothing.
            assert "replicas" not in item["spec"], spec.processor


# A Secret whose every key becomes the pods' environment (spec.envFromSecrets).
EVERY_KEY = "*"
PROCESSOR_ACCESS = "conveyor.dev/processor-access"


def _secret_references(
    objects: list[Document], *, required_only: bool = False
) -> set[tuple[str, str]]:
    """Every (Secret, key) the objects read: container variables, Kafka secretRefs and every
    key of the Secrets in envFromSecrets; ``required_only``: without the variables a container
    reads only when present."""
    found = set()
    for item in objects:
        if item["kind"] == "StreamProcessor":
            spec = StreamProcessorSpec.model_validate(item["spec"])
            reference = spec.kafka.secret_ref
            if reference is not None:
                found.add((reference.name, reference.key))
            found |= {(name, EVERY_KEY) for name in spec.env_from_secrets}
        elif item["kind"] in ("Deployment", "StatefulSet"):
            for container in item["spec"]["template"]["spec"]["containers"]:
                for variable in container.get("env", []):
                    selected = variable.get("valueFrom", {}).get("secretKeyRef")
                    if selected is not None and not (required_only and selected.get("optional")):
                        found.add((selected["name"], selected["key"]))
    return found


def _secret_keys(objects: list[Document]) -> set[tuple[str, str]]:
    return {
        (item["metadata"]["name"], key)
        for item in of_kind(objects, "Secret")
        for key in [*item.get("data", {}), *item.get("stringData", {}), EVERY_KEY]
    }


def _secrets(objects: list[Document]) -> dict[str, Document]:
    return {item["metadata"]["name"]: item for item in of_kind(objects, "Secret")}


def test_every_secret_key_the_manifests_read_is_in_the_example_secrets(
    installation: list[Document],
) -> None:
    read = _secret_references(installation)
    processors = {f"conveyor-{name}" for name in PROCESSOR_NAMES}
    assert {name for name, _ in read} == {"conveyor-services", "conveyor-edge", *processors}
    assert read <= _secret_keys(documents(SECRETS_EXAMPLE.read_text()))
    # The base ships no Secret: their values belong to each installation.
    assert of_kind(installation, "Secret") == []


# Kafka's login, which every processor's Secret holds for SASL_SSL.
KAFKA_LOGIN_KEYS = {
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CA_CERTIFICATES",
}
# The keys beyond its Kafka address and login that each processor reads: its Secret holds
# these alone (the processors not named, Kafka alone).
PROCESSOR_SECRET_KEYS: dict[str, set[str]] = {name: set() for name in PROCESSOR_NAMES} | {
    "payments": {"PAYMENT_GATEWAY_API_KEY"},
    "notifications": {"DATABASE_URL"},
    "projector": {"DATABASE_URL", "REDIS_URL"},
    "recommendations": {"DATABASE_URL", "REDIS_URL"},
}


def test_each_processor_reads_only_its_own_secret_holding_only_the_keys_it_needs(
    installation: list[Document],
) -> None:
    example = _secrets(documents(SECRETS_EXAMPLE.read_text()))
    for item in of_kind(installation, "StreamProcessor"):
        processor = item["spec"]["processor"]
        own = f"conveyor-{processor}"
        assert {name for name, _ in _secret_references([item])} == {own}, processor
        keys = set(example[own]["stringData"]) - {"KAFKA_BOOTSTRAP_SERVERS", *KAFKA_LOGIN_KEYS}
        assert keys == PROCESSOR_SECRET_KEYS[processor], processor


@pytest.mark.parametrize("source", ["example", "overlays/kind"])
def test_only_the_processors_secrets_may_be_handed_to_processor_pods(
    on_kind: list[Document], source: str
) -> None:
    objects = documents(SECRETS_EXAMPLE.read_text()) if source == "example" else on_kind
    labelled = {
        name
        for name, secret in _secrets(objects).items()
        if secret["metadata"].get("labels", {}).get(PROCESSOR_ACCESS) == "true"
    }
    # Not conveyor-edge (the token signing keys) nor conveyor-services (the edge's).
    assert labelled == {f"conveyor-{name}" for name in PROCESSOR_NAMES}


def test_the_kind_overlay_provides_every_service_address_the_manifests_read(
    on_kind: list[Document],
) -> None:
    # scripts/kind-up.sh makes these, with random values, never committed. Kafka's login keys
    # are optional: the overlay's Kafka is plaintext.
    made_at_start = {"conveyor-edge", "payment-gateway"}
    read = {
        (name, key)
        for name, key in _secret_references(on_kind, required_only=True)
        if name not in made_at_start
    }
    assert read <= _secret_keys(on_kind)


def _deployment(objects: list[Document], name: str) -> Document:
    [found] = [item for item in of_kind(objects, "Deployment") if item["metadata"]["name"] == name]
    return found


def _container(objects: list[Document], deployment: str) -> dict[str, Any]:
    [container] = _deployment(objects, deployment)["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def _variables(settings: type[BaseSettings], prefix: str) -> set[str]:
    return {prefix + name.upper() for name in settings.model_fields} | set(SERVICE_URL_VARIABLES)


def test_the_edge_is_configured_with_variables_the_edge_reads(
    installation: list[Document],
) -> None:
    container = _container(installation, "conveyor-edge")
    names = {variable["name"] for variable in container["env"]}
    assert names <= _variables(ApiSettings, "CONVEYOR_") | {MULTIPROC_VARIABLE}
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    assert env["CONVEYOR_API_HOST"] == "0.0.0.0"
    [port] = container["ports"]
    assert port["containerPort"] == int(env["CONVEYOR_API_PORT"])
    # The workers' metrics go to a volume of the pod's own: the root filesystem is read-only.
    mounted = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert env[MULTIPROC_VARIABLE] in mounted


def test_the_edge_in_a_cluster_mails_through_the_shops_server_and_wants_verified_addresses(
    installation: list[Document],
) -> None:
    env = {
        variable["name"]: variable.get("value")
        for variable in _container(installation, "conveyor-edge")["env"]
    }
    assert env["CONVEYOR_REQUIRE_VERIFIED_EMAIL"] == "true"
    notifications = [
        item
        for item in of_kind(installation, "StreamProcessor")
        if item["spec"]["processor"] == "notifications"
    ]
    [processor_smtp] = [
        variable["value"]
        for item in notifications
        for variable in item["spec"]["env"]
        if variable["name"] == "SMTP_URL"
    ]
    assert env["SMTP_URL"] == processor_smtp


def test_the_edge_scales_on_cpu_from_its_request_and_never_below_two_replicas(
    installation: list[Document],
) -> None:
    [autoscaler] = of_kind(installation, "HorizontalPodAutoscaler")
    spec = autoscaler["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "conveyor-edge",
    }
    [metric] = spec["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    # Utilization is of the request, and the request also sets the workers.
    container = _container(installation, "conveyor-edge")
    assert "cpu" in container["resources"]["requests"]
    [workers] = [v for v in container["env"] if v["name"] == "CONVEYOR_API_WORKERS"]
    assert workers["valueFrom"]["resourceFieldRef"]["resource"] == "requests.cpu"
    # The disruption budget lets one replica go at a time; two keep one serving.
    [budget] = [
        item
        for item in of_kind(installation, "PodDisruptionBudget")
        if item["metadata"]["name"] == "conveyor-edge"
    ]
    assert spec["minReplicas"] > budget["spec"]["maxUnavailable"]
    assert spec["maxReplicas"] >= spec["minReplicas"]
    # The autoscaler owns the count: re-applying the Deployment must not reset it.
    assert "replicas" not in _deployment(installation, "conveyor-edge")["spec"]


def test_the_operator_is_configured_with_variables_the_operator_reads(
    installation: list[Document],
) -> None:
    container = _container(installation, "conveyor-operator")
    names = {variable["name"] for variable in container["env"]}
    assert names <= _variables(OperatorSettings, "CONVEYOR_OPERATOR_")
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    defaults = OperatorSettings()
    assert ports == {"metrics": defaults.metrics_port, "liveness": defaults.liveness_port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}


def test_only_one_operator_ever_runs(installation: list[Document]) -> None:
    # Kopf runs standalone, without peering to elect a leader among replicas.
    deployment = _deployment(installation, "conveyor-operator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def _no_wildcards(role: Document) -> None:
    for rule in role["rules"]:
        assert "*" not in [*rule["apiGroups"], *rule["resources"], *rule["verbs"]], rule


def test_the_role_grants_exactly_what_the_operator_needs(installation: list[Document]) -> None:
    [role] = of_kind(installation, "Role")
    _no_wildcards(role)
    assert granted(role["rules"]) == set(NEEDED)


def test_the_installation_grants_nothing_cluster_wide(installation: list[Document]) -> None:
    assert of_kind(installation, "ClusterRole") == []
    assert of_kind(installation, "ClusterRoleBinding") == []


def test_the_cluster_wide_overlay_grants_the_same_everywhere_and_crd_watching(
    kustomize: Kustomize,
) -> None:
    objects = kustomize.render(CLUSTER_WIDE)
    assert of_kind(objects, "Role") == []
    assert of_kind(objects, "RoleBinding") == []
    [role] = of_kind(objects, "ClusterRole")
    _no_wildcards(role)
    assert granted(role["rules"]) == {*NEEDED, *CLUSTER_WIDE_ONLY}
    [binding] = of_kind(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }


def _served_namespaces(objects: list[Document]) -> set[str]:
    """CONVEYOR_OPERATOR_NAMESPACES of the operator's Deployment, as a set ({""}: all)."""
    [deployment] = [
        item
        for item in of_kind(objects, "Deployment")
        if item["metadata"]["name"] == "conveyor-operator"
    ]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    [value] = [v["value"] for v in container["env"] if v["name"] == "CONVEYOR_OPERATOR_NAMESPACES"]
    return {name.strip() for name in value.split(",")}


def _bound_namespaces(objects: list[Document]) -> set[str]:
    """Where the operator's account is granted its role ({""}: in every namespace)."""
    [account] = [
        item
        for item in of_kind(objects, "ServiceAccount")
        if item["metadata"]["name"] == "conveyor-operator"
    ]
    subject = {
        "kind": "ServiceAccount",
        "name": account["metadata"]["name"],
        "namespace": account["metadata"]["namespace"],
    }
    return {
        item["metadata"].get("namespace", "")
        for item in [*of_kind(objects, "RoleBinding"), *of_kind(objects, "ClusterRoleBinding")]
        if subject in item["subjects"]
    }


@pytest.mark.parametrize("tree", INSTALLATIONS.values(), ids=INSTALLATIONS.keys())
def test_the_operator_serves_exactly_the_namespaces_it_is_granted(
    kustomize: Kustomize, tree: Path
) -> None:
    objects = kustomize.render(tree)
    assert _served_namespaces(objects) == _bound_namespaces(objects)


def test_every_rbac_rule_says_why_it_is_needed() -> None:
    lines = (MANIFESTS / "rbac" / "watched-namespace" / "role.yaml").read_text().splitlines()
    rules = [index for index, line in enumerate(lines) if line.startswith("  - apiGroups:")]
    assert len(rules) == len(yaml.safe_load("\n".join(lines))["rules"])
    for index in rules:
        assert lines[index - 1].strip().startswith("#"), f"no comment above: {lines[index]}"
