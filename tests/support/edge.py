"""The REST edge as a real process (``conveyor api``) for the tests, and a client for it."""

from __future__ import annotations

import os
import secrets
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from conveyor.api.account_mail import code_in
from conveyor.api.settings import ApiSettings
from conveyor.api.signing_keys import new_signing_key_pem
from conveyor.devstack.launched import Launched
from conveyor.devstack.settings import free_ports
from conveyor.devstack.smtp_sink import read_mailbox
from conveyor.infra.settings import ServiceUrls
from tests.support.waiting import eventually_async

ADMIN_EMAIL = "root@conveyor.example"
# Settings for an edge beside the session's, which makes the first admin with its password:
# started first, this one would make the admin with another.
NO_FIRST_ADMIN = {"CONVEYOR_ADMIN_EMAIL": ""}
# argon2id at a fraction of its default cost, for an edge whose tests are not about the cost.
CHEAP_PASSWORD_HASHES = {
    "CONVEYOR_PASSWORD_HASH_MEMORY_KIB": "8192",
    "CONVEYOR_PASSWORD_HASH_TIME_COST": "1",
    "CONVEYOR_PASSWORD_HASH_PARALLELISM": "1",
}
API = "/api/v1"


@dataclass
class EdgeProcess:
    urls: ServiceUrls
    log_path: Path
    # CONVEYOR_* and service variables over the defaults below; None removes one.
    settings: Mapping[str, str | None] = field(default_factory=dict)
    # Ed25519 keys in PEM, the first signing: what CONVEYOR_JWT_SIGNING_KEYS holds.
    signing_keys: str = field(default_factory=new_signing_key_pem)
    admin_password: str = field(default_factory=lambda: f"admin-{secrets.token_urlsafe(16)}")
    # uvicorn workers; None leaves the edge's default (one per CPU). One unless a test asks:
    # every worker holds a database pool of its own, and a test machine may have many CPUs.
    workers: int | None = 1
    launched: Launched | None = None
    port: int = 0

    @property
    def pid(self) -> int:
        """The ``conveyor api`` process (uvicorn's parent when it runs several workers)."""
        assert self.launched is not None
        assert self.launched.process is not None
        return self.launched.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        [self.port] = free_ports(1)
        command = [sys.executable, "-m", "conveyor", "api"]
        self.launched = Launched("the edge", command, self.log_path, self.environment())
        self.launched.start(f"{self.base_url}/healthz", timeout)

    def environment(self) -> dict[str, str]:
        """What ``conveyor api`` runs with: the stack, this edge's settings, and the test's."""
        env = {
            **os.environ,
            **self.urls.environment(),
            "CONVEYOR_API_HOST": "127.0.0.1",
            "CONVEYOR_API_PORT": str(self.port),
            "CONVEYOR_JWT_SIGNING_KEYS": self.signing_keys,
            "CONVEYOR_ADMIN_EMAIL": ADMIN_EMAIL,
            "CONVEYOR_ADMIN_PASSWORD": self.admin_password,
            # The shared edge must not throttle the suite; limits have tests of their own.
            "CONVEYOR_RATE_LIMIT_USER_PER_MINUTE": "1000000",
            "CONVEYOR_RATE_LIMIT_ADDRESS_PER_MINUTE": "1000000",
            "CONVEYOR_RATE_LIMIT_AUTH_PER_MINUTE": "1000000",
            "CONVEYOR_RATE_LIMIT_ACCOUNT_PER_MINUTE": "1000000",
            # Nor hold back a test's orders behind its earlier ones; the cap has its own test.
            "CONVEYOR_MAX_PENDING_ORDERS_PER_USER": "1000000",
            # Nor refuse the orders of accounts that never verified their address (they get
            # no e-mails about them); the requirement has its own test.
            "CONVEYOR_REQUIRE_VERIFIED_EMAIL": "false",
            # Account e-mails link to this edge's storefront.
            "CONVEYOR_PUBLIC_URL": self.base_url,
            **self.settings,
        }
        if self.workers is not None:
            env["CONVEYOR_API_WORKERS"] = str(self.workers)
        return {name: value for name, value in env.items() if value is not None}

    def stop(self) -> None:
        if self.launched is not None:
            self.launched.stop()

    @contextmanager
    def running(self) -> Iterator[EdgeProcess]:
        """Started for the block, and stopped after it, even when the start failed half-way
        (a parent whose workers came up)."""
        try:
            self.start()
            yield self
        finally:
            self.stop()

    def log(self, characters: int = 6000) -> str:
        return "" if self.launched is None else self.launched.log(characters)


@contextmanager
def edge_of_its_own(
    urls: ServiceUrls, folder: Path, settings: dict[str, str]
) -> Iterator[EdgeProcess]:
    """An edge running for the block with ``settings`` on top of the tests' own, its log in
    ``folder``: for a test that needs other limits than the session's edge has."""
    with EdgeProcess(urls, folder / "edge.log", settings=settings).running() as edge:
        yield edge


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _default_seconds(setting: str) -> float:
    seconds = ApiSettings.model_fields[setting].default
    assert isinstance(seconds, float)
    return seconds


# How stale an edge worker's answers may be by default (the edge's settings), and the margin
# a test allows on top for a loaded machine: a change must show within the sum.
CATALOG_BOUND_SECONDS = _default_seconds("catalog_cache_seconds")
SESSION_BOUND_SECONDS = _default_seconds("session_cache_seconds")
MARGIN_SECONDS = 3.0


async def refused_within_bound(api: Api, headers: dict[str, str], what: str) -> None:
    """A request with ``headers`` is refused (401) on every worker of the edge within the
    session bound: the workers that did not end the login keep its check that long. Asked of
    "my orders", which takes the kept check (the account's own page reads it anew)."""

    async def status() -> int:
        return (await api.http.get("/orders?limit=1", headers=headers)).status_code

    await eventually_async(
        status,
        f"{what}: refused",
        until=lambda code: code == 401,
        within=SESSION_BOUND_SECONDS + MARGIN_SECONDS,
    )


@dataclass
class Account:
    id: uuid.UUID
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.access_token)


# The subjects of the account e-mails the edge sends.
VERIFICATION_SUBJECT = "Confirm your e-mail address"
PASSWORD_RESET_SUBJECT = "Reset your password"


class Api:
    """An httpx client on one edge, with the steps most tests begin with; ``maildir`` is
    where the stack's mail sink keeps what the edge e-mails (for verified accounts)."""

    def __init__(self, edge: EdgeProcess, maildir: Path | None = None) -> None:
        self.edge = edge
        self.maildir = maildir
        self.http = httpx.AsyncClient(base_url=edge.base_url + API, timeout=60)

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def login(self, email: str, password: str) -> dict[str, Any]:
        response = await self.http.post("/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    async def new_account(self, name: str = "Ada Lovelace", *, verified: bool = False) -> Account:
        """A registered, logged-in account; ``verified``: its address confirmed with the code
        its verification e-mail brought, as its owner would."""
        email = f"user-{uuid.uuid4().hex[:10]}@example.org"
        password = f"pass-{secrets.token_urlsafe(12)}"
        registered = await self.http.post(
            "/auth/register", json={"email": email, "name": name, "password": password}
        )
        assert registered.status_code == 201, registered.text
        if verified:
            [code] = await self.codes_mailed(email, VERIFICATION_SUBJECT)
            confirmed = await self.http.post("/auth/verify", json={"token": code})
            assert confirmed.status_code == 204, confirmed.text
        tokens = await self.login(email, password)
        return Account(
            uuid.UUID(registered.json()["id"]),
            email,
            password,
            tokens["access_token"],
            tokens["refresh_token"],
        )

    async def codes_mailed(self, email: str, subject: str, count: int = 1) -> list[str]:
        """The codes of the account e-mails with ``subject`` sent to ``email``, oldest first,
        once ``count`` of them arrived."""
        maildir = self.maildir
        assert maildir is not None, "this Api was made without the stack's maildir"

        async def codes() -> list[str]:
            return [
                code
                for mail in read_mailbox(maildir, email)
                if mail.subject == subject and (code := code_in(mail.body)) is not None
            ]

        return await eventually_async(
            codes,
            f"{count} e-mails {subject!r} to {email}",
            until=lambda found: len(found) >= count,
        )

    async def admin(self) -> Account:
        tokens = await self.login(ADMIN_EMAIL, self.edge.admin_password)
        me = await self.http.get("/users/me", headers=bearer(tokens["access_token"]))
        return Account(
            uuid.UUID(me.json()["id"]),
            ADMIN_EMAIL,
            self.edge.admin_password,
            tokens["access_token"],
            tokens["refresh_token"],
        )

    async def new_product(
        self,
        admin: Account,
        *,
        price: str = "10.00",
        stock: int = 10,
        currency: str = "EUR",
        name: str = "Enamel mug",
        description: str = "A sturdy mug for the campfire",
        category: str = "kitchen",
    ) -> dict[str, Any]:
        response = await self.http.post(
            "/products",
            json={
                "sku": f"SKU-{uuid.uuid4().hex[:12]}",
                "name": name,
                "description": description,
                "price": price,
                "currency": currency,
                "category": category,
                "initial_stock": stock,
            },
            headers=admin.auth,
        )
        assert response.status_code == 201, response.text
        product: dict[str, Any] = response.json()
        return product

    async def place(
        self,
        account: Account,
        lines: list[tuple[str, int]],
        *,
        token: str = "tok_visa",
        key: str | None = None,
        currency: str = "EUR",
    ) -> httpx.Response:
        return await self.http.post(
            "/orders",
            json={
                "items": [{"product_id": pid, "quantity": qty} for pid, qty in lines],
                "currency": currency,
                "payment_token": token,
            },
            headers={**account.auth, "Idempotency-Key": key or uuid.uuid4().hex},
        )

    async def wait_for(
        self, account: Account, order_id: str, status: str, within: float = 30
    ) -> dict[str, Any]:
        """Long-poll the order until it has ``status`` (it may pass through others first)."""

        async def current() -> dict[str, Any]:
            response = await self.http.get(
                f"/orders/{order_id}", params={"wait": 10}, headers=account.auth
            )
            assert response.status_code == 200, response.text
            order: dict[str, Any] = response.json()
            return order

        return await eventually_async(
            current,
            f"order {order_id} is {status}",
            until=lambda order: order["status"] == status,
            within=within,
            # Each read is a long poll that returns at the next change.
            interval=0,
        )
