"""The objects a StreamProcessor owns, as the operator builds them.

The last test takes the pod template's container (command, ConfigMap environment, env with
its Secret and field references) and runs it as a local process against the test stack: the
wiring the operator generates is proven to make a working processor, not assumed to.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.devstack.settings import free_ports
from conveyor.domain.messages import UpsertProduct
from conveyor.domain.resources import StreamProcessorSpec
from conveyor.infra.publisher import Publisher
from conveyor.operator.children import (
    DATA_DIR,
    METRICS_PORT,
    TEMPORARY_DIR,
    Owner,
    config_map,
    owned_objects,
    workload,
)
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async
from tests.support.workers import Workers


def owner(**spec: Any) -> Owner:
    body = {
        "processor": "inventory",
        "image": "conveyor:1.0",
        "kafka": {"bootstrapServers": "k:9092"},
    }
    return Owner("inventory", "shop", "uid-1", StreamProcessorSpec.model_validate({**body, **spec}))


def test_rocksdb_state_is_a_statefulset_with_a_claim_and_static_membership() -> None:
    made = workload(owner(), replicas=3)
    assert made["kind"] == "StatefulSet"
    assert made["spec"]["replicas"] == 3
    assert made["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "1Gi"
    }
    env = made["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {
        "name": "CONVEYOR_GROUP_INSTANCE_ID",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    } in env


def test_memory_state_is_a_deployment_without_claims() -> None:
    made = workload(owner(state={"store": "memory"}), replicas=2)
    assert made["kind"] == "Deployment"
    volumes = made["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "emptyDir": {}} in volumes
    env = made["spec"]["template"]["spec"]["containers"][0]["env"]
    assert all(variable["name"] != "CONVEYOR_GROUP_INSTANCE_ID" for variable in env)


def test_standby_replicas_reach_the_pods_of_a_stateful_store_and_roll_them() -> None:
    base = owner()
    standbys = owner(state={"standbyReplicas": 1})
    assert "CONVEYOR_TABLE_STANDBY_REPLICAS" not in config_map(base)["data"]
    assert config_map(standbys)["data"]["CONVEYOR_TABLE_STANDBY_REPLICAS"] == "1"
    # A new number of standbys is a new pod template: the StatefulSet rolls its pods.
    assert (
        workload(standbys, 3)["spec"]["template"]["metadata"]["annotations"]
        != workload(base, 3)["spec"]["template"]["metadata"]["annotations"]
    )


def test_suspend_scales_to_zero_and_keeps_the_claims() -> None:
    made = workload(owner(suspend=True), replicas=3)
    assert made["spec"]["replicas"] == 0
    assert made["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"


def test_a_new_restart_nonce_or_setting_changes_the_pod_template() -> None:
    base = workload(owner(), 1)["spec"]["template"]
    nonce = workload(owner(restartNonce="2024-06-01"), 1)["spec"]["template"]
    setting = workload(owner(processingGuarantee="exactly_once"), 1)["spec"]["template"]
    assert nonce["metadata"]["annotations"] != base["metadata"]["annotations"]
    assert setting["metadata"]["annotations"] != base["metadata"]["annotations"]


def test_a_canary_is_a_second_workload_with_its_image_in_the_same_group() -> None:
    objects = owned_objects(owner(canary={"image": "conveyor:1.1", "replicas": 1}), replicas=2)
    stable, canary = (o for o in objects if o["kind"] == "StatefulSet")
    assert canary["metadata"]["name"] == "inventory-canary"
    assert canary["spec"]["template"]["spec"]["containers"][0]["image"] == "conveyor:1.1"
    # Same command, so the same consumer group (conveyor-inventory) as the stable pods.
    assert (
        canary["spec"]["template"]["spec"]["containers"][0]["command"]
        == stable["spec"]["template"]["spec"]["containers"][0]["command"]
    )
    assert stable["spec"]["selector"] != canary["spec"]["selector"]


def test_every_object_is_owned_by_the_stream_processor() -> None:
    for made in owned_objects(owner(), 1):
        assert made["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
        assert made["metadata"]["namespace"] == "shop"


def container_environment(
    spec_owner: Owner, pod_name: str, secrets: dict[str, dict[str, str]]
) -> dict[str, str]:
    """What the kubelet would give the container: envFrom the ConfigMap, then env."""
    made = workload(spec_owner, 1)
    container = made["spec"]["template"]["spec"]["containers"][0]
    environment = dict(config_map(spec_owner)["data"])
    for variable in container["env"]:
        source = variable.get("valueFrom", {})
        if "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.name"
            environment[variable["name"]] = pod_name
        elif "secretKeyRef" in source:
            reference = source["secretKeyRef"]
            environment[variable["name"]] = secrets[reference["name"]][reference["key"]]
        else:
            environment[variable["name"]] = variable["value"]
    return environment


def processed_upserts(metrics_text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == "conveyor_events_processed_total"
        and sample.labels.get("type") == "UpsertProduct"
    )


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.long
async def test_the_generated_pod_runs_as_a_working_processor(
    stack: RunningStack, workers: Workers, tmp_path: Path
) -> None:
    # The pod is the inventory group's only member while it runs: it gets every partition.
    workers.stop("inventory")
    try:
        await run_generated_pod(stack, tmp_path)
    finally:
        workers.start("inventory")


async def run_generated_pod(stack: RunningStack, tmp_path: Path) -> None:
    spec_owner = owner(kafka={"secretRef": {"name": "kafka", "key": "bootstrap"}})
    container = workload(spec_owner, 1)["spec"]["template"]["spec"]["containers"][0]
    environment = container_environment(
        spec_owner, "inventory-0", {"kafka": {"bootstrap": stack.urls.kafka_bootstrap_servers}}
    )
    assert environment["CONVEYOR_DATA_DIR"] == DATA_DIR
    # The Topic resources own the topics in a cluster: the pod only checks they are there.
    assert environment["CONVEYOR_TOPICS"] == "verify"
    # The volume mounted at DATA_DIR is this test's directory.
    environment["CONVEYOR_DATA_DIR"] = str(tmp_path / "data")
    executable = Path(sys.executable).with_name(container["command"][0])
    with (tmp_path / "pod.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(executable),
            *container["command"][1:],
            env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **environment},
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    ready_url = f"http://127.0.0.1:{METRICS_PORT}{container['readinessProbe']['httpGet']['path']}"
    metrics_url = f"http://127.0.0.1:{METRICS_PORT}{container['livenessProbe']['httpGet']['path']}"
    try:
        async with httpx.AsyncClient() as http:

            async def pod_log() -> str:
                return (tmp_path / "pod.log").read_text()[-3000:]

            async def serving() -> bool:
                assert process.returncode is None, await pod_log()
                try:
                    return (await http.get(ready_url)).status_code == 200
                except httpx.TransportError:
                    return False

            # Its readiness probe passes once it has restored and processes its partitions.
            await eventually_async(
                serving, f"the pod is ready at {ready_url}", within=120, context=pod_log
            )
            async with Publisher(stack.urls.kafka_bootstrap_servers) as publisher:
                for _ in range(6):
                    product = uuid.uuid4()
                    await publisher.publish(
                        UpsertProduct(
                            product_id=product, sku=product.hex[:8], name="Pod", initial_stock=1
                        )
                    )

            async def processed() -> float:
                return processed_upserts((await http.get(metrics_url)).text)

            await eventually_async(
                processed, "the pod processed the upserts", within=120, context=pod_log
            )
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 60)


def test_a_generated_pod_whose_topics_never_appear_exits_saying_who_owns_them(
    tmp_path: Path,
) -> None:
    [nothing_listens] = free_ports(1)
    spec_owner = owner(kafka={"bootstrapServers": f"127.0.0.1:{nothing_listens}"})
    container = workload(spec_owner, 1)["spec"]["template"]["spec"]["containers"][0]
    environment = container_environment(spec_owner, "inventory-0", {})
    environment["CONVEYOR_DATA_DIR"] = str(tmp_path / "data")
    environment["CONVEYOR_TOPICS_WAIT_SECONDS"] = "2"
    executable = Path(sys.executable).with_name(container["command"][0])
    finished = subprocess.run(
        [str(executable), *container["command"][1:]],
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **environment},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    told = " ".join((finished.stdout + finished.stderr).split())
    assert finished.returncode == 1, told
    assert "the topics are still not as declared" in told
    assert "their Topic resources own them" in told
    assert "Traceback" not in told


def test_secrets_named_by_the_spec_reach_the_pods_environment_after_the_config_map() -> None:
    container = workload(owner(envFromSecrets=["conveyor-services"]), replicas=1)["spec"][
        "template"
    ]["spec"]["containers"][0]
    assert container["envFrom"] == [
        {"configMapRef": {"name": "inventory-config"}},
        {"secretRef": {"name": "conveyor-services"}},
    ]


def test_pods_run_unprivileged_as_the_restricted_pod_security_profile_asks() -> None:
    pod = workload(owner(), replicas=1)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }


@pytest.mark.parametrize("store", ["rocksdb", "memory"])
def test_pods_write_only_to_their_state_and_scratch_volumes_and_hold_no_api_token(
    store: str,
) -> None:
    pod = workload(owner(state={"store": store}), replicas=1)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounted = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert mounted == {DATA_DIR: "data", TEMPORARY_DIR: "tmp"}
    # Python's tempfile writes where TMPDIR says, or /tmp: the scratch volume.
    assert "TMPDIR" not in config_map(owner(state={"store": store}))["data"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
