"""The operator's API client: what it reports when the API server refuses or is not there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import kopf
import pytest

from conveyor.devstack.control_plane import ControlPlane
from conveyor.domain.resources import StreamProcessorStatus
from conveyor.operator.errors import KubernetesError
from conveyor.operator.kube import Kube
from tests.support.operator import Namespace, stream_processor


@pytest.fixture
async def kube(cluster: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Kube]:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    assert info is not None
    client = Kube.connect(info)
    yield client
    await client.close()


def config_map(name: str, **data: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": data,
    }


async def test_applying_twice_is_one_object_and_a_missing_one_reads_as_none(kube: Kube) -> None:
    first = await kube.apply(config_map("kube-client-test", mode="a"))
    again = await kube.apply(config_map("kube-client-test", mode="a"))
    # Applying what is already there writes nothing: no new version, no watch event.
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert await kube.delete("v1", "ConfigMap", "default", "kube-client-test") is True
    assert await kube.get("v1", "ConfigMap", "default", "kube-client-test") is None
    assert await kube.delete("v1", "ConfigMap", "default", "kube-client-test") is False


async def test_a_refused_object_raises_the_api_servers_reason(kube: Kube) -> None:
    with pytest.raises(KubernetesError, match="Invalid value") as refused:
        await kube.apply(config_map("Not_A_Valid_Name"))
    assert refused.value.status == 422


async def test_an_unreachable_api_server_is_a_kubernetes_error(kube: Kube) -> None:
    info = kopf.ConnectionInfo(server="https://127.0.0.1:9", insecure=True)
    unreachable = Kube.connect(info)
    try:
        with pytest.raises(KubernetesError, match="configmaps"):
            await unreachable.get("v1", "ConfigMap", "default", "anything")
    finally:
        await unreachable.close()


async def test_a_status_written_from_an_older_copy_keeps_the_history_it_never_saw(
    kube: Kube, namespace: Namespace
) -> None:
    # A scale's watch event carries the resource as it was before the status written after
    # the scale; a reconcile of that copy must not erase the recorded scale time.
    manifest = stream_processor("inventory", "127.0.0.1:9092")
    manifest["metadata"]["namespace"] = namespace.name
    older = await kube.apply(manifest)
    scaled_at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    await kube.write_status(
        older, StreamProcessorStatus(phase="Running", last_scale_time=scaled_at)
    )

    await kube.write_status(older, StreamProcessorStatus(phase="Pending"), kept=("lastScaleTime",))
    stored = await kube.get(older["apiVersion"], "StreamProcessor", namespace.name, "inventory")
    assert stored is not None
    assert stored["status"]["phase"] == "Pending"
    assert stored["status"]["lastScaleTime"] == "2026-12-01T12:00:00Z"

    # A field not named as history is the present: left empty, it is removed.
    await kube.write_status(older, StreamProcessorStatus(phase="Pending"))
    stored = await kube.get(older["apiVersion"], "StreamProcessor", namespace.name, "inventory")
    assert stored is not None
    assert "lastScaleTime" not in stored["status"]
