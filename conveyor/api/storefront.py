"""The web storefront and admin console (``web/``) served by the edge from its built bundle.

The bundle is a single-page app: a path no route of the edge answers and no file of the
bundle matches is a client-side route, answered with ``index.html``. The API stays under
``/api/v1``, and an unknown path there stays a problem+json 404; so does a missing file (a
last segment with a dot), which no client-side route looks like. Vite names the files under
``assets/`` by their content's hash, so they are cached for a year; ``index.html`` and the
other files are revalidated on every load, so a new bundle shows at the next reload.

With no bundle the edge still starts, and ``/`` says how to build one (``make web``); the
bundle is looked for at each request, so one built later is served without a restart.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Match, Route
from starlette.types import Scope

from conveyor.api.errors import NotFound

# What Vite emits under assets/ carries its content's hash in its name: never stale.
HASHED_ASSETS = "assets/"
CACHED_FOREVER = "public, max-age=31536000, immutable"
REVALIDATED = "no-cache"
_NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Conveyor</title></head>
<body><main><h1>The storefront is not built</h1>
<p>Build it with <code>make web</code> (npm ci and vite build in <code>web/</code>), or point
<code>CONVEYOR_WEB_DIR</code> at a built bundle, and reload. The API is under
<a href="/docs">/docs</a>.</p></main></body></html>
"""


def default_web_dir() -> Path:
    """The repository's ``web/dist``, built or not: the bundle is looked for at each request,
    so one built while the edge runs (``make web``) is served without a restart."""
    return Path(__file__).resolve().parents[2] / "web" / "dist"


class _Storefront(Route):
    """A GET or HEAD of any path outside ``/api/``; last among the routes, so every route of
    the edge is matched first. Other methods and API paths match nothing here, so they get
    the router's own answers (404, or 405 with the route's methods)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return Match.NONE, {}
        if scope["path"] == "/api" or scope["path"].startswith("/api/"):
            return Match.NONE, {}
        return super().matches(scope)


def storefront_route(web_dir: Path) -> Route:
    """The route serving the bundle in ``web_dir`` (or how to build one, while there is none)."""
    root = web_dir.resolve()

    async def serve(request: Request) -> Response:
        wanted = request.path_params["path"]
        if not (root / "index.html").is_file():
            if wanted in ("", "index.html"):
                return HTMLResponse(_NOT_BUILT, status_code=404)
            raise NotFound(f"no file {request.url.path}")
        found = (root / wanted).resolve()
        if found.is_relative_to(root) and found.is_file():
            cache = CACHED_FOREVER if wanted.startswith(HASHED_ASSETS) else REVALIDATED
            return FileResponse(found, headers={"Cache-Control": cache})
        if "." in wanted.rsplit("/", 1)[-1]:
            raise NotFound(f"no file {request.url.path}")
        return FileResponse(root / "index.html", headers={"Cache-Control": REVALIDATED})

    return _Storefront("/{path:path}", serve, methods=["GET", "HEAD"], include_in_schema=False)
