"""Probes, metrics and logs, as Kubernetes and SREs see the edge."""

from __future__ import annotations

import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.edge import Account, Api

pytestmark = pytest.mark.e2e


async def test_liveness_and_readiness_answer_when_everything_is_up(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.edge.base_url) as http:
        health = await http.get("/healthz")
        ready = await http.get("/readyz")
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"kafka": "ok", "postgres": "ok", "redis": "ok"}


async def test_metrics_count_requests_by_route_template_and_status(
    api: Api, account: Account
) -> None:
    await api.http.get(f"/orders/{uuid.uuid4()}", headers=account.auth)
    async with httpx.AsyncClient(base_url=api.edge.base_url) as http:
        text = (await http.get("/metrics")).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    labels = (("method", "GET"), ("route", "/api/v1/orders/{order_id}"), ("status", "404"))
    assert ("conveyor_http_requests_total", labels) in samples
    assert ("conveyor_http_request_duration_seconds_count", labels) in samples


async def test_passwords_and_tokens_never_reach_the_log(api: Api) -> None:
    secret = f"never-log-{uuid.uuid4().hex}"
    email = f"log-{uuid.uuid4().hex[:8]}@example.org"
    await api.http.post("/auth/register", json={"email": email, "name": "L", "password": secret})
    tokens = await api.login(email, secret)
    await api.http.post("/auth/login", json={"email": email, "password": secret + "x"})
    await api.http.post("/auth/login", json={"email": email, "password": 12345, "x": secret})
    await api.http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    log = api.edge.log(characters=10**7)
    assert secret not in log
    assert tokens["refresh_token"] not in log
    assert tokens["access_token"] not in log
