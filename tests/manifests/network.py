"""A small NetworkPolicy evaluator: which connections a set of rendered policies lets through.

It follows the rules of networking.k8s.io/v1 for what our policies use: a pod is isolated in a
direction once any policy of its namespace selects it for that direction, and then only what
some selecting policy's rule allows gets through; a connection needs its source's egress and
its destination's ingress both allowed. Peers are matched by podSelector (in the policy's own
namespace), namespaceSelector (with an optional podSelector) or ipBlock; ports by protocol and
number (a port range with endPort too). Named ports are refused: the evaluator would have to
know each pod's container ports, and our policies name numbers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Document = dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod (``labels`` not None) or an address outside the cluster."""

    name: str
    address: str
    namespace: str | None = None
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] | None = None

    @property
    def is_pod(self) -> bool:
        return self.labels is not None


@dataclass(frozen=True)
class Connection:
    source: str
    destination: str
    protocol: str
    port: int


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions) picks ``labels``."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.address)
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(excepted) for excepted in block.get("except", [])
        )
    if other.labels is None:
        return False
    if "namespaceSelector" in peer:
        if other.namespace is None or not selects(
            peer["namespaceSelector"], other.namespace_labels
        ):
            return False
    elif other.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector", {}), other.labels)


def _port_matches(ports: list[Mapping[str, Any]], protocol: str, port: int) -> bool:
    if not ports:
        return True
    for allowed in ports:
        if allowed.get("protocol", "TCP") != protocol:
            continue
        number = allowed.get("port")
        if number is None:
            return True
        assert isinstance(number, int), f"named port {number!r}: give the number"
        if number <= port <= allowed.get("endPort", number):
            return True
    return False


def _types(policy: Document) -> list[str]:
    spec = policy["spec"]
    declared: list[str] | None = spec.get("policyTypes")
    if declared is not None:
        return declared
    return ["Ingress", *(["Egress"] if "egress" in spec else [])]


@dataclass
class Policies:
    policies: list[Document]

    def _selecting(self, pod: Endpoint, direction: str) -> list[Document]:
        assert pod.labels is not None
        return [
            policy
            for policy in self.policies
            if policy["metadata"]["namespace"] == pod.namespace
            and direction in _types(policy)
            and selects(policy["spec"]["podSelector"], pod.labels)
        ]

    def allowing(
        self, direction: str, pod: Endpoint, other: Endpoint, protocol: str, port: int
    ) -> list[str] | None:
        """The policies letting ``pod`` connect to (Egress) or be reached by (Ingress)
        ``other``; None when no policy isolates ``pod`` that way (everything is let through)."""
        if not pod.is_pod:
            return None
        selecting = self._selecting(pod, direction)
        if not selecting:
            return None
        key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        found = []
        for policy in selecting:
            for rule in policy["spec"].get(key, []):
                peers = rule.get(peers_key)
                peer_allowed = not peers or any(
                    _peer_matches(peer, policy["metadata"]["namespace"], other) for peer in peers
                )
                if peer_allowed and _port_matches(rule.get("ports", []), protocol, port):
                    found.append(policy["metadata"]["name"])
        return found

    def allows(self, source: Endpoint, destination: Endpoint, protocol: str, port: int) -> bool:
        out = self.allowing("Egress", source, destination, protocol, port)
        into = self.allowing("Ingress", destination, source, protocol, port)
        return (out is None or bool(out)) and (into is None or bool(into))

    def allowed(
        self, endpoints: Iterable[Endpoint], ports: Iterable[tuple[str, int]]
    ) -> set[Connection]:
        """Every connection between two different ``endpoints`` on ``ports`` let through."""
        every = list(endpoints)
        return {
            Connection(source.name, destination.name, protocol, port)
            for source in every
            for destination in every
            if source != destination
            for protocol, port in ports
            if self.allows(source, destination, protocol, port)
        }


def ports_named(policies: Iterable[Document]) -> set[tuple[str, int]]:
    """Every (protocol, port) a policy names."""
    return {
        (allowed.get("protocol", "TCP"), allowed["port"])
        for policy in policies
        for key in ("ingress", "egress")
        for rule in policy["spec"].get(key, [])
        for allowed in rule.get("ports", [])
    }
