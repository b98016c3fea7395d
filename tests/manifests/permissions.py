"""What the operator does to the Kubernetes API, as (verb, resource, subresource) triples.

Resources are spelled as `kubectl auth can-i` takes them (`<plural>.<group>`; core ones bare).
The Role of a namespace the operator serves must grant exactly ``NEEDED`` there, and none of
``REFUSED``; the cluster-wide overlay's ClusterRole grants ``NEEDED`` and ``CLUSTER_WIDE_ONLY``
everywhere.
"""

from __future__ import annotations

from typing import NamedTuple

from conveyor.operator.kinds import OWNED_KINDS


class Access(NamedTuple):
    verb: str
    resource: str
    subresource: str = ""

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}" + (f"/{self.subresource}" if self.subresource else "")


# Whatever kind a StreamProcessor owns, the operator must be allowed to manage.
OWNED_CHILDREN = tuple(
    f"{kind.plural}.{kind.group}" if kind.group else kind.plural for kind in OWNED_KINDS
)

NEEDED: tuple[Access, ...] = (
    *(
        Access(verb, resource)
        for resource in ("streamprocessors.conveyor.dev", "topics.conveyor.dev")
        for verb in ("get", "list", "watch", "patch")
    ),
    Access("patch", "streamprocessors.conveyor.dev", "status"),
    Access("patch", "topics.conveyor.dev", "status"),
    Access("get", "streamprocessors.conveyor.dev", "scale"),
    Access("patch", "streamprocessors.conveyor.dev", "scale"),
    Access("update", "streamprocessors.conveyor.dev", "finalizers"),
    *(
        Access(verb, resource)
        for resource in OWNED_CHILDREN
        for verb in ("get", "list", "watch", "create", "patch", "delete")
    ),
    Access("get", "secrets"),
    # Pods' revisions, readiness, addresses and restore times are read (rollouts, stalls,
    # draining); the owner of a stalled partition is deleted (its workload makes it again),
    # within the stall restart budget.
    Access("get", "pods"),
    Access("list", "pods"),
    Access("delete", "pods"),
    Access("create", "events"),
    Access("patch", "events"),
    Access("create", "events.events.k8s.io"),
    Access("patch", "events.events.k8s.io"),
)

# Kopf serving every namespace starts serving a kind once its CRD appears; serving named
# namespaces it scans the kinds once, at start-up, and needs nothing of the cluster.
CLUSTER_WIDE_ONLY: tuple[Access, ...] = (
    Access("list", "customresourcedefinitions.apiextensions.k8s.io"),
    Access("watch", "customresourcedefinitions.apiextensions.k8s.io"),
)

REFUSED: tuple[Access, ...] = (
    Access("delete", "namespaces"),
    Access("create", "namespaces"),
    Access("get", "namespaces"),
    Access("list", "namespaces"),
    Access("watch", "namespaces"),
    Access("list", "secrets"),
    Access("watch", "secrets"),
    Access("create", "secrets"),
    Access("patch", "secrets"),
    Access("create", "pods"),
    Access("watch", "pods"),
    Access("create", "pods", "exec"),
    Access("create", "persistentvolumeclaims"),
    Access("delete", "persistentvolumeclaims"),
    Access("create", "serviceaccounts", "token"),
    Access("create", "streamprocessors.conveyor.dev"),
    Access("delete", "streamprocessors.conveyor.dev"),
    Access("update", "streamprocessors.conveyor.dev"),
    Access("create", "topics.conveyor.dev"),
    Access("delete", "topics.conveyor.dev"),
    Access("update", "streamprocessors.conveyor.dev", "status"),
    Access("update", "deployments.apps"),
    Access("delete", "events"),
    Access("create", "customresourcedefinitions.apiextensions.k8s.io"),
    Access("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    Access("create", "clusterroles.rbac.authorization.k8s.io"),
    Access("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    Access("create", "rolebindings.rbac.authorization.k8s.io"),
    Access("impersonate", "users"),
    Access("patch", "nodes"),
)


def granted(rules: list[dict[str, list[str]]]) -> set[Access]:
    """Every access a Role's or ClusterRole's rules grant (they must name no wildcards)."""
    found = set()
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                name, _, subresource = resource.partition("/")
                qualified = f"{name}.{group}" if group else name
                for verb in rule["verbs"]:
                    found.add(Access(verb, qualified, subresource))
    return found
