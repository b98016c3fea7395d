"""Every Kubernetes kind the operator reads or writes, declared once: pure data, no I/O here.

Where a kind is served (its API version and plural, for the client's paths), whether a
StreamProcessor owns objects of it (pruned when no longer wanted, watched so a hand edit is
undone), and the two custom kinds the CRDs define, all come from ``KINDS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from conveyor.domain.resources import API_VERSION


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    # Made by the operator for a StreamProcessor: what it owns but no longer wants is
    # deleted, and an edit or deletion by hand wakes the owner, which restores it.
    owned: bool = False

    @property
    def group(self) -> str:
        """The API group ("" for the core group of ``v1``)."""
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


STREAM_PROCESSOR = Kind(API_VERSION, "StreamProcessor", "streamprocessors")
TOPIC = Kind(API_VERSION, "Topic", "topics")
SERVICE_MONITOR = Kind("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors", owned=True)

KINDS: tuple[Kind, ...] = (
    Kind("v1", "ConfigMap", "configmaps", owned=True),
    Kind("v1", "Service", "services", owned=True),
    Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", owned=True),
    Kind("apps/v1", "StatefulSet", "statefulsets", owned=True),
    Kind("apps/v1", "Deployment", "deployments", owned=True),
    SERVICE_MONITOR,
    Kind("v1", "Secret", "secrets"),
    # Read only: a rollout looks at the pods' revisions, conditions and addresses.
    Kind("v1", "Pod", "pods"),
    STREAM_PROCESSOR,
    TOPIC,
)
OWNED_KINDS: tuple[Kind, ...] = tuple(kind for kind in KINDS if kind.owned)
_BY_NAME: Mapping[tuple[str, str], Kind] = {(kind.api_version, kind.kind): kind for kind in KINDS}


def kind_of(api_version: str, kind: str) -> Kind:
    try:
        return _BY_NAME[(api_version, kind)]
    except KeyError:
        raise KeyError(
            f"{api_version} {kind} is not a kind the operator knows; add it to KINDS"
        ) from None
