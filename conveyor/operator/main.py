"""Running the operator: logging, metrics, liveness, and Kopf's loop over its handlers."""

from __future__ import annotations

import asyncio
import logging

import kopf
from prometheus_client import start_http_server

from conveyor.operator import handlers
from conveyor.operator.settings import get_operator_settings


def run() -> None:
    settings = get_operator_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # Kopf logs every successful handler call at INFO; the operator's own decisions are
    # logged by conveyor.operator and posted as Kubernetes events.
    logging.getLogger("kopf.objects").setLevel(max(logging.WARNING, logging.root.level))
    start_http_server(settings.metrics_port, addr=settings.metrics_host)
    namespaces = settings.namespace_list
    logging.getLogger(__name__).info(
        "conveyor operator watching %s; metrics on :%d, liveness on :%d/healthz (%s)",
        ", ".join(namespaces) or "all namespaces",
        settings.metrics_port,
        settings.liveness_port,
        handlers.__name__,
    )
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=True,
            liveness_endpoint=f"http://{settings.metrics_host}:{settings.liveness_port}/healthz",
        )
    )
