"""Kopf's registrations: what wakes a reconcile, and nothing else.

Each StreamProcessor and each Topic gets one long-lived daemon that reconciles, then sleeps
until an event wakes it or its resync beat comes. One daemon per resource means reconciles of
one resource never overlap, and a storm of events collapses into one pass. Events of the
children (edited or deleted by hand) wake their owner's daemon, so they are restored at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import kopf

from conveyor.domain.resources import GROUP
from conveyor.infra.errors import InfraError, ServiceSettingsRefused
from conveyor.infra.settings import get_service_urls
from conveyor.operator import metrics
from conveyor.operator.children import MANAGED_BY
from conveyor.operator.errors import OperatorError
from conveyor.operator.kinds import OWNED_KINDS, STREAM_PROCESSOR, TOPIC
from conveyor.operator.kube import Kube
from conveyor.operator.processors import EventPoster, KafkaSecretUnusable, ProcessorReconciler
from conveyor.operator.secrecy import SecretValues
from conveyor.operator.settings import OperatorSettings, get_operator_settings
from conveyor.operator.topics import TopicReconciler

MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}


@dataclass
class Runtime:
    settings: OperatorSettings
    kube: Kube
    processors: ProcessorReconciler
    topics: TopicReconciler
    wakeups: dict[tuple[str, str, str], asyncio.Event] = field(default_factory=dict)

    def wakeup(self, kind: str, namespace: str, name: str) -> asyncio.Event:
        return self.wakeups.setdefault((kind, namespace, name), asyncio.Event())

    def wake(self, kind: str, namespace: str | None, name: str | None) -> None:
        if namespace and name:
            self.wakeup(kind, namespace, name).set()


def _runtime(memo: kopf.Memo) -> Runtime:
    runtime: Runtime = memo["runtime"]
    return runtime


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # No peering resources to install: one operator replica (the Deployment is Recreate).
    settings.peering.standalone = True
    operator_settings = get_operator_settings()
    # Serving named namespaces, Kopf would otherwise list and watch every namespace and CRD of
    # the cluster, which needs cluster-wide rights. It serves the named namespaces as they are
    # and the kinds whose CRDs exist at start-up (discovery needs no rights).
    settings.scanning.disabled = bool(operator_settings.namespace_list)
    # The CRDs' status schemas are strict, so Kopf keeps its bookkeeping in annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    # Kubernetes events are for decisions (scaling, repairs, refusals), not for every log line.
    settings.posting.level = logging.WARNING
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if info is None:
        raise kopf.PermanentError(
            "no Kubernetes credentials: run in a pod with a service account, or set KUBECONFIG"
        )
    try:
        urls = get_service_urls()
    except ServiceSettingsRefused as error:
        raise kopf.PermanentError(str(error)) from error
    kube = Kube.connect(info)
    security = urls.kafka_security()
    secret_values = SecretValues()
    secret_values.guard(logging.getLogger(), logging.getLogger("kopf.objects"))
    memo["runtime"] = Runtime(
        settings=operator_settings,
        kube=kube,
        processors=ProcessorReconciler(kube, kafka_security=security, secret_values=secret_values),
        topics=TopicReconciler(kube, urls.kafka_bootstrap_servers, kafka_security=security),
    )


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    if "runtime" in memo:
        await _runtime(memo).processors.rollouts.close()
        await _runtime(memo).kube.close()


async def _keep_reconciling(
    runtime: Runtime,
    kind: str,
    body: kopf.Body,
    reconcile: Callable[[kopf.Body, EventPoster], Awaitable[None]],
    every_seconds: float,
    logger: kopf.Logger,
    stopped: kopf.DaemonStopped,
) -> None:
    key = (kind, body.metadata.namespace or "", body.metadata.name or "")
    wake = runtime.wakeup(*key)
    try:
        while not stopped:
            wake.clear()
            started = time.perf_counter()
            try:
                await reconcile(body, _poster(body))
            except (OperatorError, InfraError, KafkaSecretUnusable) as exc:
                metrics.RECONCILES.labels(kind, "error").inc()
                logger.warning("reconcile failed, trying again on the next event or beat: %s", exc)
            except Exception:
                # A bug must not end the daemon: the other resources, and this one's next
                # pass after a fix of what it met, keep being served.
                metrics.RECONCILES.labels(kind, "error").inc()
                logger.exception("reconcile failed unexpectedly; trying again on the next beat")
            else:
                metrics.RECONCILES.labels(kind, "success").inc()
            finally:
                metrics.RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)
            woken = asyncio.ensure_future(wake.wait())
            stopping = asyncio.ensure_future(stopped.wait())
            try:
                await asyncio.wait(
                    [woken, stopping], timeout=every_seconds, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                woken.cancel()
                stopping.cancel()
    finally:
        runtime.wakeups.pop(key, None)


def _poster(body: kopf.Body) -> EventPoster:
    def post(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)

    return post


@kopf.daemon(
    STREAM_PROCESSOR.group,
    STREAM_PROCESSOR.version,
    STREAM_PROCESSOR.plural,
    cancellation_timeout=5.0,
)
async def keep_processor(
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    runtime = _runtime(memo)
    every = runtime.settings.resync_seconds
    reconcile = runtime.processors.reconcile
    try:
        await _keep_reconciling(
            runtime, STREAM_PROCESSOR.kind, body, reconcile, every, logger, stopped
        )
    finally:
        runtime.processors.forget(body)


@kopf.daemon(TOPIC.group, TOPIC.version, TOPIC.plural, cancellation_timeout=5.0)
async def keep_topic(
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    runtime = _runtime(memo)
    every = runtime.settings.topic_resync_seconds
    reconcile = runtime.topics.reconcile
    await _keep_reconciling(runtime, TOPIC.kind, body, reconcile, every, logger, stopped)


@kopf.on.delete(TOPIC.group, TOPIC.version, TOPIC.plural)
async def delete_topic(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    try:
        await _runtime(memo).topics.delete(body)
    except InfraError as exc:
        raise kopf.TemporaryError(f"{exc}; retrying", delay=10) from exc


@kopf.on.event(STREAM_PROCESSOR.group, STREAM_PROCESSOR.version, STREAM_PROCESSOR.plural)
def processor_changed(namespace: str | None, name: str | None, memo: kopf.Memo, **_: Any) -> None:
    _runtime(memo).wake(STREAM_PROCESSOR.kind, namespace, name)


@kopf.on.event(TOPIC.group, TOPIC.version, TOPIC.plural)
def topic_changed(namespace: str | None, name: str | None, memo: kopf.Memo, **_: Any) -> None:
    _runtime(memo).wake(TOPIC.kind, namespace, name)


def _child_changed(meta: kopf.Meta, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    for owner in meta.get("ownerReferences", []):
        ours = owner.get("apiVersion", "").startswith(STREAM_PROCESSOR.group)
        if owner.get("kind") == STREAM_PROCESSOR.kind and ours:
            _runtime(memo).wake(STREAM_PROCESSOR.kind, namespace, owner.get("name"))


# The children whose edits and deletions the operator undoes.
for _owned in OWNED_KINDS:
    kopf.on.event(_owned.group, _owned.version, _owned.plural, labels=MANAGED)(_child_changed)
