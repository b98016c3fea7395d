"""The one place that builds the Kubernetes objects a StreamProcessor owns.

Pure functions from a StreamProcessor (name, namespace, spec) to plain dicts: a ConfigMap
with the processor's settings, a headless Service for its metrics, a StatefulSet (rocksdb
state on a PersistentVolumeClaim, a stable consumer group member per ordinal) or a
Deployment (memory store), a PodDisruptionBudget, and the canary's workload. The handlers
apply them; the tests read them, and run the pod template's command as a real process.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from conveyor.domain.resources import StreamProcessorSpec
from conveyor.operator.kinds import STREAM_PROCESSOR

METRICS_PORT = 9100
DATA_DIR = "/var/lib/conveyor"
# The root filesystem is read-only; Python's tempfile (and anything else wanting scratch
# space) writes here, on an emptyDir of its own.
TEMPORARY_DIR = "/tmp"  # noqa: S108 - the pod's own emptyDir, not a shared directory
TEMPORARY_SIZE = "64Mi"
MANAGED_BY = "conveyor-operator"
# The unprivileged user of the Conveyor image (Dockerfile).
RUN_AS_USER = 10001
STABLE = "stable"
CANARY = "canary"

Object = dict[str, Any]


@dataclass(frozen=True)
class Owner:
    """The StreamProcessor the objects belong to."""

    name: str
    namespace: str
    uid: str
    spec: StreamProcessorSpec

    @property
    def reference(self) -> Object:
        return {
            "apiVersion": STREAM_PROCESSOR.api_version,
            "kind": STREAM_PROCESSOR.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def labels(owner: Owner, track: str | None = None) -> dict[str, str]:
    found = {
        "app.kubernetes.io/name": "conveyor",
        "app.kubernetes.io/component": owner.spec.processor,
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    if track is not None:
        found["conveyor.dev/track"] = track
    return found


def selector(owner: Owner, track: str | None = None) -> dict[str, str]:
    """The labels that pick the processor's pods (of one track, or of both)."""
    picked = {
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/component": owner.spec.processor,
    }
    if track is not None:
        picked["conveyor.dev/track"] = track
    return picked


def selector_string(owner: Owner) -> str:
    return ",".join(f"{key}={value}" for key, value in selector(owner, STABLE).items())


def _metadata(owner: Owner, name: str, track: str | None = None) -> Object:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels(owner, track),
        "ownerReferences": [owner.reference],
    }


def config_map_name(owner: Owner) -> str:
    return f"{owner.name}-config"


def settings(owner: Owner) -> dict[str, str]:
    """The processor's environment, as the ConfigMap holds it."""
    spec = owner.spec
    found = {
        "CONVEYOR_PROCESSING_GUARANTEE": spec.processing_guarantee,
        "CONVEYOR_STORE": spec.state.store,
        "CONVEYOR_DATA_DIR": DATA_DIR,
        "CONVEYOR_METRICS_HOST": "0.0.0.0",  # noqa: S104 - the pod's own network namespace
        "CONVEYOR_METRICS_PORT": str(METRICS_PORT),
        # In a cluster the Topic resources own the topics: a pod waits for them, and never
        # creates one the operator would then have to reconcile.
        "CONVEYOR_TOPICS": "verify",
    }
    if spec.kafka.bootstrap_servers:
        found["KAFKA_BOOTSTRAP_SERVERS"] = spec.kafka.bootstrap_servers
    # Only when asked for, so the pods of a spec without standbys keep their config hash
    # (and are not rolled by an operator upgrade). The API server refuses standbys for a
    # memory store (StateStore's rule); a StatefulSet's pods alone get them.
    if spec.state.store == "rocksdb" and spec.state.standby_replicas:
        found["CONVEYOR_TABLE_STANDBY_REPLICAS"] = str(spec.state.standby_replicas)
    found.update({variable.name: variable.value for variable in spec.env})
    return found


def config_map(owner: Owner) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(owner, config_map_name(owner)),
        "data": settings(owner),
    }


def service(owner: Owner) -> Object:
    """Headless: a DNS name per pod (StatefulSet ordinals) and a target for scraping."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(owner, owner.name),
        "spec": {
            "clusterIP": "None",
            "selector": selector(owner),
            "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}],
        },
    }


def disruption_budget(owner: Owner) -> Object:
    # One pod at a time: a drain never takes the whole consumer group down at once.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(owner, owner.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(owner)}},
    }


def _config_hash(owner: Owner) -> str:
    # In the pod template, so a change of settings rolls the pods like a change of image.
    return hashlib.sha256(json.dumps(settings(owner), sort_keys=True).encode()).hexdigest()[:16]


def _container(owner: Owner, image: str, stateful: bool) -> Object:
    spec = owner.spec
    env: list[Object] = []
    if spec.kafka.secret_ref is not None:
        env.append(
            {
                "name": "KAFKA_BOOTSTRAP_SERVERS",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": spec.kafka.secret_ref.name,
                        "key": spec.kafka.secret_ref.key,
                    }
                },
            }
        )
    if stateful:
        # The pod's name (orders-0, orders-1, ...) is its static group membership: a
        # restarted pod gets its partitions back without rebalancing the whole group.
        env.append(
            {
                "name": "CONVEYOR_GROUP_INSTANCE_ID",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            }
        )
    # Ready means restored and processing (the worker's GET /ready): checked often, since a
    # rollout waits for it before rolling the next pod. Liveness only asks that the process
    # answers at all, so a long restore never gets the pod killed.
    readiness = {"httpGet": {"path": "/ready", "port": "metrics"}, "periodSeconds": 2}
    liveness = {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 10}
    return {
        "name": spec.processor,
        "image": image,
        "command": ["conveyor", "worker", spec.processor],
        # Later sources win: a Secret's keys override the ConfigMap's, env overrides both.
        "envFrom": [
            {"configMapRef": {"name": config_map_name(owner)}},
            *({"secretRef": {"name": secret}} for secret in spec.env_from_secrets),
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            # The state is on the data volume and scratch space on /tmp: a compromised
            # process can change nothing of the image it runs.
            "readOnlyRootFilesystem": True,
        },
        "env": env,
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
        "readinessProbe": {**readiness, "initialDelaySeconds": 2},
        "livenessProbe": {**liveness, "initialDelaySeconds": 60, "failureThreshold": 6},
        "resources": spec.resources,
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "tmp", "mountPath": TEMPORARY_DIR},
        ],
    }


def pod_template(owner: Owner, track: str, image: str, stateful: bool) -> Object:
    annotations = {"conveyor.dev/config-hash": _config_hash(owner)}
    if owner.spec.restart_nonce:
        annotations["conveyor.dev/restart-nonce"] = owner.spec.restart_nonce
    pod_spec: Object = {
        "containers": [_container(owner, image, stateful)],
        "terminationGracePeriodSeconds": 60,
        # A processor never talks to the Kubernetes API: it gets no token to lose.
        "automountServiceAccountToken": False,
        # The image's unprivileged user; fsGroup lets it write the rocksdb volume whatever
        # the storage; together with the container's settings this meets the "restricted"
        # Pod Security profile.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    volumes: list[Object] = [{"name": "tmp", "emptyDir": {"sizeLimit": TEMPORARY_SIZE}}]
    if not stateful:
        volumes.insert(0, {"name": "data", "emptyDir": {}})
    pod_spec["volumes"] = volumes
    return {
        "metadata": {"labels": labels(owner, track), "annotations": annotations},
        "spec": pod_spec,
    }


def workload_name(owner: Owner, track: str) -> str:
    return owner.name if track == STABLE else f"{owner.name}-{CANARY}"


def workload(owner: Owner, replicas: int, track: str = STABLE) -> Object:
    """The StatefulSet (rocksdb) or Deployment (memory) of one track, at ``replicas``."""
    spec = owner.spec
    stateful = spec.state.store == "rocksdb"
    image = spec.image if track == STABLE or spec.canary is None else spec.canary.image
    name = workload_name(owner, track)
    body: Object = {
        "replicas": 0 if spec.suspend else replicas,
        "selector": {"matchLabels": selector(owner, track)},
        "template": pod_template(owner, track, image, stateful),
    }
    if not stateful:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(owner, name, track),
            "spec": body,
        }
    claim: Object = {
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": spec.state.size}},
        },
    }
    if spec.state.storage_class_name:
        claim["spec"]["storageClassName"] = spec.state.storage_class_name
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(owner, name, track),
        "spec": {
            **body,
            "serviceName": owner.name,
            # Members of one consumer group need no ordering; start and stop them together.
            "podManagementPolicy": "Parallel",
            "volumeClaimTemplates": [claim],
            # Suspend keeps the state: claims outlive scaling to zero.
            "persistentVolumeClaimRetentionPolicy": {
                "whenScaled": "Retain",
                "whenDeleted": "Delete",
            },
        },
    }


def service_monitor(owner: Owner) -> Object:
    """For clusters running the Prometheus Operator: scrape every pod behind the Service."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(owner, owner.name),
        "spec": {
            "selector": {"matchLabels": labels(owner)},
            "endpoints": [{"port": "metrics", "interval": "15s"}],
        },
    }


def owned_objects(owner: Owner, replicas: int) -> list[Object]:
    """Everything the processor should own right now, stable track first."""
    objects = [config_map(owner), service(owner), disruption_budget(owner)]
    objects.append(workload(owner, replicas, STABLE))
    if owner.spec.canary is not None:
        objects.append(workload(owner, owner.spec.canary.replicas, CANARY))
    return objects
