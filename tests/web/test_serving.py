"""The edge serves the storefront's bundle under / beside its API, probes and docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from conveyor.api import problems
from conveyor.api.storefront import storefront_route
from tests.support.edge import EdgeProcess


@pytest.fixture
async def http(edge: EdgeProcess, web_bundle: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=edge.base_url) as client:
        yield client


async def test_the_shop_and_its_client_side_routes_answer_the_app_revalidated(
    http: httpx.AsyncClient,
) -> None:
    for path in ("/", "/orders/6d1f6d0e-2a5b-4a8e-9f59-9a3f2d1b7c10", "/admin/products"):
        answer = await http.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith("text/html")
        assert '<div id="root">' in answer.text
        assert answer.headers["cache-control"] == "no-cache"


async def test_hashed_assets_are_cached_for_a_year(
    http: httpx.AsyncClient, web_bundle: Path
) -> None:
    [script] = (web_bundle / "assets").glob("*.js")
    answer = await http.get(f"/assets/{script.name}")
    assert answer.status_code == 200
    assert "immutable" in answer.headers["cache-control"]
    assert "max-age=31536000" in answer.headers["cache-control"]


async def test_the_api_probes_and_docs_keep_their_own_answers(http: httpx.AsyncClient) -> None:
    unknown = await http.get("/api/v1/no-such-thing")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    wrong_method = await http.post("/api/v1/no-such-thing")
    assert wrong_method.status_code == 404
    missing_file = await http.get("/assets/no-such-file.js")
    assert missing_file.status_code == 404
    assert missing_file.headers["content-type"].startswith("application/problem+json")
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert (await http.get("/api/v1/openapi.json")).json()["info"]["title"] == "Conveyor"
    assert "swagger" in (await http.get("/docs")).text.lower()
    assert "keys" in (await http.get("/.well-known/jwks.json")).json()
    assert (await http.get("/metrics")).headers["content-type"].startswith("text/plain")


async def test_without_a_bundle_the_shop_says_how_to_build_it(tmp_path: Path) -> None:
    app = FastAPI()
    problems.install(app)
    app.router.routes.append(storefront_route(tmp_path / "dist"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        home = await client.get("/")
        assert home.status_code == 404
        assert "make web" in home.text
        missing = await client.get("/orders")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        # Built while the edge runs: served at the next request, without a restart.
        (tmp_path / "dist").mkdir()
        (tmp_path / "dist" / "index.html").write_text('<div id="root"></div>')
        assert (await client.get("/orders")).text == '<div id="root"></div>'
