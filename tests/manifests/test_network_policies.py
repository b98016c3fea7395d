"""The rendered NetworkPolicies let through exactly the flows of manifests/README.md's table.

A model cluster holds Conveyor's pods, its services in a namespace of their own (or, on kind,
in Conveyor's), an ingress controller, Prometheus, the cluster DNS, the API server, a pod of
another tenant and an address on the internet; every connection between two of them, on every
port a policy names and a few more, is tried against the policies as rendered.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from conveyor.domain.processors import PROCESSOR_NAMES
from tests.manifests.conftest import MANIFESTS, NAMESPACE, Document, of_kind
from tests.manifests.network import Connection, Endpoint, Policies, ports_named

COMPONENTS = ("edge", "operator", *PROCESSOR_NAMES)
SERVICES = ("kafka", "postgres", "redis", "smtp", "payment-gateway")
# Ports no flow uses: a policy that lets them through lets too much.
UNUSED_PORTS = {("TCP", 22), ("TCP", 80), ("TCP", 8080), ("UDP", 9092)}
# The table's names for what is not a component.
TABLE_NAMES = {
    "ingress controller": "ingress-controller",
    "Prometheus": "prometheus",
    "Kafka": "kafka",
    "PostgreSQL": "postgres",
    "Redis": "redis",
    "SMTP": "smtp",
    "payment gateway": "payment-gateway",
    "cluster DNS": "kube-dns",
}
EVERY_POD = "every pod of the namespace"
OUTSIDE = "anything outside the namespace (the Kubernetes API)"
# The one port each of the kind overlay's unprivileged sandboxes listens on instead.
KIND_PORTS = {"smtp": 1025, "payment-gateway": 8443}


def pod(name: str, namespace: str, labels: Mapping[str, str], address: str, **ns: str) -> Endpoint:
    namespace_labels = {"kubernetes.io/metadata.name": namespace, **ns}
    return Endpoint(name, address, namespace, namespace_labels, labels)


def model_cluster(services_namespace: str) -> list[Endpoint]:
    services_labels = {} if services_namespace == NAMESPACE else {"conveyor.dev/services": "true"}
    return [
        *(
            pod(
                component,
                NAMESPACE,
                {"app.kubernetes.io/name": "conveyor", "app.kubernetes.io/component": component},
                f"10.0.1.{index}",
            )
            for index, component in enumerate(COMPONENTS, start=1)
        ),
        # A pod someone started in the namespace by hand: it gets names resolved, nothing more.
        pod("stray", NAMESPACE, {"run": "debug"}, "10.0.1.99"),
        *(
            pod(
                service,
                services_namespace,
                {"conveyor.dev/service": service},
                f"10.0.2.{index}",
                **services_labels,
            )
            for index, service in enumerate(SERVICES, start=1)
        ),
        # A look-alike in a namespace nobody vouched for is no service of Conveyor's.
        pod("impostor", "tenant", {"conveyor.dev/service": "kafka"}, "10.0.3.1"),
        pod(
            "ingress-controller",
            "ingress-nginx",
            {"app.kubernetes.io/name": "ingress-nginx"},
            "10.0.4.1",
            **{"conveyor.dev/ingress": "true"},
        ),
        pod("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}, "10.0.5.1"),
        pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, "10.0.6.1"),
        Endpoint("api-server", "172.18.0.2"),
        Endpoint("internet", "203.0.113.7"),
    ]


def table_rows() -> list[list[str]]:
    text = (MANIFESTS / "README.md").read_text()
    section = text.split("## Network policies", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def names(cell: str, cluster: list[Endpoint]) -> list[str]:
    if cell == EVERY_POD:
        return [e.name for e in cluster if e.namespace == NAMESPACE]
    if cell == OUTSIDE:
        return [e.name for e in cluster if e.namespace != NAMESPACE]
    return [TABLE_NAMES.get(name, name) for name in cell.split(", ")]


def ports(cell: str) -> list[tuple[str, int]]:
    protocol_and_ports = [part.split(" ") for part in cell.split(", ")]
    found: list[tuple[str, int]] = []
    protocol = "TCP"
    for words in protocol_and_ports:
        if len(words) == 2:
            protocol = words[0]
        found.append((protocol, int(words[-1])))
    return found


def table_flows(cluster: list[Endpoint], on_kind: bool = False) -> dict[Connection, str]:
    """Every connection the table allows, with the policy it says allows it."""
    flows: dict[Connection, str] = {}
    for sources, destinations, port_cell, policy in table_rows():
        for source in names(sources, cluster):
            for destination in names(destinations, cluster):
                for protocol, port in ports(port_cell):
                    if on_kind:
                        port = KIND_PORTS.get(destination, port)
                    if source != destination:
                        flows[Connection(source, destination, protocol, port)] = policy.strip("`")
    return flows


def policies_of(objects: list[Document]) -> Policies:
    return Policies(of_kind(objects, "NetworkPolicy"))


def allowed_around_conveyor(policies: Policies, cluster: list[Endpoint]) -> set[Connection]:
    """What the policies let through to or from the namespace's pods (elsewhere they govern
    nothing)."""
    inside = {endpoint.name for endpoint in cluster if endpoint.namespace == NAMESPACE}
    tried = ports_named(policies.policies) | UNUSED_PORTS
    return {
        connection
        for connection in policies.allowed(cluster, tried)
        if inside & {connection.source, connection.destination}
    }


def test_the_policies_let_through_every_flow_of_the_table_and_nothing_else(
    installation: list[Document],
) -> None:
    policies = policies_of(installation)
    cluster = model_cluster("data")
    expected = table_flows(cluster)
    allowed = allowed_around_conveyor(policies, cluster)
    assert sorted(allowed - set(expected), key=str) == [], "allowed, but not in the table"
    assert sorted(set(expected) - allowed, key=str) == [], "in the table, but refused"


def test_each_flow_is_allowed_by_the_policy_the_table_names(
    installation: list[Document],
) -> None:
    policies = policies_of(installation)
    cluster = {endpoint.name: endpoint for endpoint in model_cluster("data")}
    for flow, policy in table_flows(list(cluster.values())).items():
        source, destination = cluster[flow.source], cluster[flow.destination]
        by = [
            *(policies.allowing("Egress", source, destination, flow.protocol, flow.port) or []),
            *(policies.allowing("Ingress", destination, source, flow.protocol, flow.port) or []),
        ]
        assert policy in by, f"{flow}: allowed by {by}, the table says {policy}"


def test_every_pod_of_the_namespace_is_denied_by_default(installation: list[Document]) -> None:
    [deny] = [
        p for p in of_kind(installation, "NetworkPolicy") if p["metadata"]["name"] == "default-deny"
    ]
    assert deny["spec"]["podSelector"] == {}
    assert sorted(deny["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny["spec"]


@pytest.mark.parametrize("services_namespace", [NAMESPACE], ids=["services-in-conveyor"])
def test_on_kind_the_flows_reach_the_services_it_runs_and_nothing_else_does(
    on_kind: list[Document], services_namespace: str
) -> None:
    policies = policies_of(on_kind)
    cluster = model_cluster(services_namespace)
    expected = table_flows(cluster, on_kind=True)
    allowed = allowed_around_conveyor(policies, cluster)
    # The operator may still try port 443 or 6443 of the in-namespace services (its API
    # rule names no address), and the base's SMTP and gateway ports stay allowed out; the
    # services' own ingress policies refuse all of that.
    assert sorted(set(expected) - allowed, key=str) == [], "in the table, but refused"
    assert sorted(allowed - set(expected), key=str) == [], "allowed, but not in the table"
