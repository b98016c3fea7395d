"""Liveness, readiness and metrics, for Kubernetes probes and Prometheus."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError

from conveyor.api import exposition
from conveyor.api.deps import Held
from conveyor.domain.rest import Health, Readiness
from conveyor.infra.errors import InfraError

router = APIRouter(tags=["operations"])
# Under Kubernetes' default probe timeout would be too tight for a first Kafka connection;
# the edge's manifests give the readiness probe this much and a little more.
_CHECK_SECONDS = 4.0


@router.get("/healthz", operation_id="healthz")
async def healthz() -> Health:
    """The process is alive (nothing else is checked)."""
    return Health()


async def _check(name: str, probe: object) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, _CHECK_SECONDS)  # type: ignore[arg-type]
    except (InfraError, RedisError, OSError, TimeoutError) as exc:
        return name, f"unreachable: {exc.__class__.__name__}"
    except Exception as exc:
        return name, f"failing: {exc.__class__.__name__}"
    return name, "ok"


@router.get(
    "/readyz",
    operation_id="readyz",
    responses={503: {"model": Readiness, "description": "A dependency is unreachable."}},
)
async def readyz(held: Held) -> JSONResponse:
    """Kafka, PostgreSQL and Redis all answer: the edge can take orders."""
    results = dict(
        await asyncio.gather(
            _check("kafka", held.sender.check_reachable()),
            _check("postgres", held.pool.fetchval("SELECT 1")),
            _check("redis", held.cache.ping()),
        )
    )
    ready = all(result == "ok" for result in results.values())
    body = Readiness(status="ready" if ready else "not_ready", checks=results)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text."}},
)
async def prometheus_metrics() -> Response:
    """The edge's metrics in Prometheus' text format, added up over all its workers."""
    return Response(exposition.latest(), media_type=CONTENT_TYPE_LATEST)
