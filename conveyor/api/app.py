"""The edge application: ``create_app()`` builds it; ``conveyor api`` serves it with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from conveyor import __version__
from conveyor.api import exposition, problems
from conveyor.api.access_tokens import AccessTokens
from conveyor.api.account_mail import AccountMailSender
from conveyor.api.caching import SESSION_ENTRIES, CatalogCache, Expiring
from conveyor.api.commands import CommandSender, Sends
from conveyor.api.data import orders as order_records
from conveyor.api.data import users
from conveyor.api.deps import Resources, limit_auth_attempts, limit_requests
from conveyor.api.errors import ServiceUnavailable
from conveyor.api.middleware import (
    BodyLimit,
    InFlight,
    RequestMetrics,
    ShedOverCapacity,
)
from conveyor.api.passwords import Passwords
from conveyor.api.problems import PROBLEM_MEDIA_TYPE
from conveyor.api.ratelimit import RateLimiter
from conveyor.api.repeats import CatalogRepeats
from conveyor.api.routes import API_PREFIX, auth, keys, operations, orders, products, statistics
from conveyor.api.routes import users as user_routes
from conveyor.api.settings import ApiSettings, get_settings
from conveyor.api.storefront import storefront_route
from conveyor.api.throttle import LoginThrottle
from conveyor.api.waiting import OrderStatusWatcher, WaitsPerUser
from conveyor.infra.database import apply_migrations
from conveyor.infra.settings import ServiceUrls, get_service_urls

# How the edge's connections show in pg_stat_activity, for whoever watches the database.
DATABASE_APPLICATION_NAME = "conveyor-api"
# One more try, at once: a connection Redis dropped (a restart) is replaced without the
# request noticing. More would hold every request while Redis is away, for nothing.
REDIS_RETRIES = 1
log = logging.getLogger("conveyor.api")


async def _first_admin(pool: asyncpg.Pool, settings: ApiSettings, passwords: Passwords) -> None:
    if not settings.admin_email or settings.admin_password is None:
        return
    password_hash = await passwords.hash(settings.admin_password.get_secret_value())
    if await users.ensure_admin(pool, settings.admin_email, "Administrator", password_hash):
        log.info("created the first admin account %s", settings.admin_email)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to reset: the edge sets no session state, listens to nothing and holds no
    advisory locks, so a connection back in the pool skips the RESET ALL round trip (an
    open transaction is still rolled back by asyncpg)."""


# Sessions are kept a day past their refresh token's expiry (a token presented late is told it
# expired rather than that it is unknown), then deleted an hour's sweep at a time.
SESSION_PRUNE_INTERVAL_SECONDS = 3600.0
SESSION_KEPT_AFTER_EXPIRY = timedelta(days=1)
SESSION_PRUNE_BATCH = 1000


async def _prune_sessions(pool: asyncpg.Pool) -> None:
    while True:
        try:
            expired_before = datetime.now(UTC) - SESSION_KEPT_AFTER_EXPIRY
            deleted = SESSION_PRUNE_BATCH
            while deleted == SESSION_PRUNE_BATCH:
                deleted = await users.delete_expired_sessions(
                    pool, expired_before, SESSION_PRUNE_BATCH
                )
                await asyncio.sleep(0.1)  # let requests in between batches
        except ServiceUnavailable as exc:
            log.warning("expired sessions not pruned this time: %s", exc)
        await asyncio.sleep(SESSION_PRUNE_INTERVAL_SECONDS)


async def _withdraw_unannounced_orders(pool: asyncpg.Pool, older_than: timedelta) -> None:
    """Every worker sweeps (deleting is idempotent); a quarter of the age, so an orphan
    lingers at most a quarter longer than it must."""
    every = min(older_than.total_seconds() / 4, 60.0)
    while True:
        await asyncio.sleep(every)
        try:
            withdrawn = await order_records.withdraw_unannounced(pool, older_than)
        except ServiceUnavailable as exc:
            log.warning("unannounced orders not swept this time: %s", exc)
            continue
        if withdrawn:
            log.warning(
                "withdrew %d orders recorded but never handed to Kafka (an edge stopped "
                "mid-request); their clients' retries with the same key place them anew",
                withdrawn,
            )


def create_app(
    settings: ApiSettings | None = None,
    urls: ServiceUrls | None = None,
    sender: Sends | None = None,
) -> FastAPI:
    """The edge; ``sender`` replaces the Kafka command sender (the benchmark's baseline)."""
    settings = settings or get_settings()
    urls = urls or get_service_urls()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Every worker of `conveyor api` runs this at once, and each step is safe so: the
        # migrations take an advisory lock, the first admin is an INSERT ... ON CONFLICT DO
        # NOTHING, session pruning deletes with SKIP LOCKED, so sweeps side by side share
        # the work, withdrawing unannounced orders is a DELETE that finds each row once, and
        # account e-mail senders claim their e-mails with SKIP LOCKED.
        exposition.forget_departed_workers()
        await apply_migrations(urls.database_url)
        pool = await asyncpg.create_pool(
            urls.database_url,
            min_size=2,
            max_size=settings.database_pool_size,
            reset=_keep_session,
            server_settings={"application_name": DATABASE_APPLICATION_NAME},
        )
        cache = aioredis.from_url(
            urls.redis_url,
            socket_connect_timeout=settings.redis_connect_timeout_seconds,
            socket_timeout=settings.redis_timeout_seconds,
            retry=Retry(NoBackoff(), retries=REDIS_RETRIES),
        )
        announced = order_records.AnnouncedMarks(pool)
        commands = sender or CommandSender(
            urls.kafka_bootstrap_servers,
            settings.kafka_send_timeout_seconds,
            settings.retry_after_seconds,
            urls.kafka_security(),
        )
        watcher = OrderStatusWatcher(cache)
        await watcher.start()
        account_mail = AccountMailSender(
            pool, urls.smtp_url, None if settings.public_url is None else str(settings.public_url)
        )
        passwords = Passwords(settings)
        chores = [
            asyncio.create_task(account_mail.run(), name="send-account-emails"),
            asyncio.create_task(_prune_sessions(pool), name="prune-expired-sessions"),
            asyncio.create_task(
                _withdraw_unannounced_orders(
                    pool, timedelta(seconds=settings.withdraw_unannounced_after_seconds)
                ),
                name="withdraw-unannounced-orders",
            ),
        ]
        try:
            await passwords.start()
            await _first_admin(pool, settings, passwords)
            app.state.resources = Resources(
                urls,
                pool,
                cache,
                commands,
                watcher,
                CatalogCache(settings.catalog_cache_seconds),
                Expiring("session", settings.session_cache_seconds, SESSION_ENTRIES),
                RateLimiter(cache),
                announced,
                WaitsPerUser(settings.max_waits_per_user),
                account_mail,
                passwords,
                LoginThrottle(cache, settings),
            )
            yield
        finally:
            for chore in chores:
                chore.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await chore
            await announced.drain()
            await account_mail.close()
            passwords.close()
            await watcher.stop()
            await commands.close()
            await cache.aclose()
            await pool.close()

    app = FastAPI(
        title="Conveyor",
        version=__version__,
        description="Place and follow orders; the order saga runs on Kafka behind this edge. "
        "Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    problems.install(app)
    app.include_router(auth.router, prefix=API_PREFIX, dependencies=[Depends(limit_auth_attempts)])
    for router in (user_routes.router, products.router, orders.router, statistics.router):
        app.include_router(router, prefix=API_PREFIX, dependencies=[Depends(limit_requests)])
    app.include_router(operations.router)
    app.include_router(keys.router)
    # Last: the storefront answers only what no route above does.
    app.router.routes.append(storefront_route(settings.web_dir))
    app.state.settings = settings
    app.state.access_tokens = AccessTokens.from_settings(settings)
    in_flight = InFlight(settings.max_requests_in_flight)
    app.state.in_flight = in_flight
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    # Added innermost first. Innermost, a repeated catalog read is answered without routing
    # (docs/edge.md). A shed request is answered inside RequestMetrics, so it is counted (503)
    # like any other, and inside CORS, so a browser may read its Retry-After.
    app.add_middleware(CatalogRepeats, prefix=f"{API_PREFIX}/products")
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        ShedOverCapacity,
        in_flight=in_flight,
        retry_after_seconds=settings.retry_after_seconds,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Location", "Retry-After"],
        )
    app.add_middleware(RequestMetrics)
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with every error answer as problem+json and the shared ones
    (401 on secured routes, 413 and 422 with a body, 429 everywhere) listed."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    problem = {"$ref": "#/components/schemas/Problem"}
    for path, operations_by_method in document.get("paths", {}).items():
        for operation in operations_by_method.values():
            answers: dict[str, Any] = operation.setdefault("responses", {})
            if path.startswith(API_PREFIX):
                answers.setdefault("429", {"description": "Rate limit reached; see Retry-After."})
                answers.setdefault(
                    "503",
                    {
                        "description": "A backing service is unavailable, or the edge is at "
                        "capacity; see Retry-After."
                    },
                )
                if "requestBody" in operation:
                    answers.setdefault("413", {"description": "The body is over the size limit."})
                    answers.setdefault("422", {"description": "The request is not valid."})
                if operation.get("parameters"):
                    answers.setdefault("422", {"description": "The request is not valid."})
            for code, answer in answers.items():
                if (
                    code.isdigit()
                    and int(code) >= 400
                    and not (path == "/readyz" and code == "503")
                ):
                    answer["content"] = {PROBLEM_MEDIA_TYPE: {"schema": problem}}
    document["components"]["schemas"].pop("HTTPValidationError", None)
    document["components"]["schemas"].pop("ValidationError", None)
    app.openapi_schema = document
    return document
