"""Shoppers: how many people can shop at once before the edge's p95 passes 200 ms.

The whole stack runs on this machine as ``make run`` starts it: Kafka, PostgreSQL, Redis,
the mail sink, the payment sandbox, the processors, the edge (``python -m conveyor
api``, as many workers as that starts) and Prometheus. The figures are those of the edge
*with all of that beside it*, and of this load generator too, whose CPU is reported so a
reader can see it was not the bottleneck. The edge's settings are ``make run``'s but for its
rate limits per address, raised because every shopper comes from this one process.

A population of virtual shoppers browses open-loop. Each shopper's actions happen at times
drawn in advance, think times exponential with a mean of ``--think-seconds``; a late answer
never pushes the next action back, and latency counts from the time the action was due (no
coordinated omission). Each action is drawn from the mix (``MIX``): a catalog page (at times
filtered by category, or the next page of the last one), a search, a product page, "my
orders", and placing an order of one or two lines. The first three are anonymous; the others
use one of ``--accounts`` shopper accounts, registered, verified with the code their
verification e-mail brought (only a verified address gets e-mails about orders), and logged
in before the climb.

The climb holds each population of ``--populations`` for ``--step-seconds``, measured after
one mean think time in which its shoppers arrive spread out (no thundering herd), and stops
at the first one where an action's p95 passes ``P95_GOAL_MS`` or an answer is not 2xx. Each
step prints the latencies per action, the answers by kind, and CPU: the edge's per request
(its workers included), the whole stack's, the generator's, and that of other work on the
machine, which would make the figures pessimistic. Before the climb a baseline in
the same run: ``BASELINE_CLIENTS`` clients in a closed loop on the first catalog page alone,
so the mix's CPU per request is read as a ratio to the cheapest request there is.

At the end the gates: every order placed is terminal, the stock equation per product with
nothing reserved, nothing in any dead-letter topic, exactly one email per terminal order.
A broken gate fails the benchmark: its figures would mean nothing.

``python -m benchmarks.shoppers [--populations 1000,2500] [--step-seconds 60]
[--think-seconds 10] [--accounts 200]``; ``make load`` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import json
import math
import os
import random
import resource
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import aiohttp
import asyncpg
import uvloop
from rich.console import Console

from benchmarks.cpu import GENERATOR, CpuMeter, machine_busy_seconds, running_pids
from benchmarks.edge import EdgeClient, answer_json, concurrently, new_order
from benchmarks.orderload import (
    GateFailed,
    figures_table,
    gate_no_dead_letters,
    gate_stock,
    on_a_stack_of_its_own,
    quantile,
    rising_list,
    wait_one_email_per_order,
    wait_products_known,
    wait_terminal,
)
from conveyor.api.account_mail import code_in
from conveyor.devstack.components import COMPONENTS, DEV_ADMIN_EMAIL, EDGE, Components
from conveyor.devstack.smtp_sink import read_mailbox
from conveyor.devstack.stack import LocalStack

POPULATIONS = (1000, 2500, 5000, 7500, 10_000)
STEP_SECONDS = 60.0
THINK_SECONDS = 10.0
ACCOUNTS = 200
PRODUCTS = 200
P95_GOAL_MS = 200.0
PAGE_SIZE = "20"
BASELINE_CLIENTS = 32
BASELINE_SECONDS = 10.0
BASELINE_WARM_UP_SECONDS = 2.0
# A late answer is a timeout, which fails the step; long enough that one is never a blip.
REQUEST_TIMEOUT_SECONDS = 10.0
PROGRESS_SECONDS = 10.0
# Access tokens live 15 minutes; each account's is renewed well before, with its refresh
# token (cheap, where a login hashes the password again).
REFRESH_EVERY_SECONDS = 600.0
# Registering and logging in hash passwords with argon2 (tens of ms of the edge's CPU each):
# a few at a time, so seeding does not starve the rest of the stack.
LOGINS_AT_ONCE = 4
# How long an account's verification e-mail may take to reach the mail sink.
VERIFICATION_MAIL_SECONDS = 60.0
PRODUCTS_AT_ONCE = 16
SEED = 20_261_218
# Every shopper comes from 127.0.0.1, so the budgets per address (2,400 requests and 60
# logins a minute by default) would throttle the whole population as if it were one client.
# Only those are raised; the budget per account and everything else stay as `make run` has it.
EDGE_SETTINGS = {
    "CONVEYOR_RATE_LIMIT_ADDRESS_PER_MINUTE": "100000000",
    "CONVEYOR_RATE_LIMIT_AUTH_PER_MINUTE": "100000000",
}
# Connections the generator may hold open: more than a step ever has in flight (10,000
# shoppers ask 1,000 times a second; 4,096 open connections would mean answers 4 s late).
# Each is a file descriptor: `ulimit -n` must leave room (20,000 on the machine this was
# written on); the soft limit is raised to the hard one if needed, the pool kept below it.
CONNECTIONS = 4096
OTHER_FILES = 256


class Action(StrEnum):
    CATALOG = "catalog page"
    SEARCH = "search"
    PRODUCT = "product page"
    MY_ORDERS = "my orders"
    ORDER = "place an order"


# Percent of a shopper's actions.
MIX = {
    Action.CATALOG: 45,
    Action.SEARCH: 25,
    Action.PRODUCT: 15,
    Action.MY_ORDERS: 10,
    Action.ORDER: 5,
}
# Of the catalog pages: the next page of the shopper's last one (when it had one), and a
# first page filtered by a category; the rest are the first page of everything.
NEXT_PAGE_SHARE = 0.3
CATEGORY_SHARE = 0.3

# The catalog's words: names, descriptions and searches draw on the same few, so every
# search finds a page or two.
MATERIALS = ("enamel", "oak", "linen", "copper", "wool", "ceramic", "steel", "bamboo")
THINGS = ("mug", "bowl", "lamp", "blanket", "kettle", "stool", "scarf", "basket", "vase", "jar")
USES = ("camping", "breakfast", "reading", "picnics", "winter", "gifts")
CATEGORIES = ("kitchen", "living", "garden", "outdoor", "textiles")
SEARCH_WORDS = (*MATERIALS, *THINGS, *USES)


class Answer(StrEnum):
    OK = "2xx"
    THROTTLED = "429"
    UNAVAILABLE = "503"
    OTHER = "other errors"
    TIMEOUT = "timeouts"


ERRORS = (Answer.THROTTLED, Answer.UNAVAILABLE, Answer.OTHER, Answer.TIMEOUT)
T = TypeVar("T")


def _answer(status: int) -> Answer:
    if 200 <= status < 300:
        return Answer.OK
    if status == 429:
        return Answer.THROTTLED
    if status == 503:
        return Answer.UNAVAILABLE
    return Answer.OTHER


@dataclass
class Account:
    """A shopper account, logged in."""

    user_id: UUID
    refresh_token: str
    authorization: dict[str, str]


@dataclass
class Shopper:
    account: Account
    # The query of the next page of the last catalog page seen, when it had one.
    next_page: dict[str, str] | None = None


@dataclass
class Tally:
    """What the answers of one step came to; only actions due in the window count."""

    measured_from: float
    ends: float
    latencies: dict[Action, list[float]] = field(
        default_factory=lambda: {action: [] for action in Action}
    )
    answers: dict[Action, Counter[Answer]] = field(
        default_factory=lambda: {action: Counter() for action in Action}
    )
    # How late the generator started actions after they were due.
    lags: list[float] = field(default_factory=list)
    # Every answer, counted or not: the requests the CPU measured in the window served.
    answered: int = 0

    def record(
        self, action: Action, due: float, started: float, answered: float, answer: Answer
    ) -> None:
        self.answered += 1
        if not self.measured_from <= due < self.ends:
            return
        self.answers[action][answer] += 1
        self.lags.append(started - due)
        if answer is Answer.OK:
            self.latencies[action].append(answered - due)

    def p95_ms(self, action: Action) -> float:
        return quantile(self.latencies[action], 95) * 1000

    def worst_p95(self) -> tuple[Action, float]:
        """The action with the highest p95 (NaN, where none was answered, counts as none)."""
        return max(
            ((action, self.p95_ms(action)) for action in Action),
            key=lambda pair: -1.0 if math.isnan(pair[1]) else pair[1],
        )

    def served(self) -> int:
        return sum(answers[Answer.OK] for answers in self.answers.values())

    def errors(self) -> Counter[Answer]:
        total: Counter[Answer] = Counter()
        for answers in self.answers.values():
            total.update({kind: answers[kind] for kind in ERRORS if answers[kind]})
        return total


@dataclass(frozen=True)
class Cost:
    """CPU over a measured window: the edge's per request answered, the whole stack's, the
    generator's, and what the rest of the machine used beside them (other work on it)."""

    edge_ms_per_request: float
    stack_cores: float
    generator_core_percent: float
    others_cores: float


class CpuWindow:
    """The CPU of the stack's processes, of this one and of the whole machine, from
    ``start`` to ``cost``."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.meter = CpuMeter(pids)
        self.began = self.machine = 0.0

    async def start(self) -> None:
        # In a thread: reading every process (PostgreSQL's backends too) takes a while.
        await asyncio.to_thread(self.meter.start)
        self.began, self.machine = time.monotonic(), machine_busy_seconds()

    async def cost(self, requests: int) -> Cost:
        used = await asyncio.to_thread(self.meter.used)
        seconds = time.monotonic() - self.began
        machine = machine_busy_seconds() - self.machine
        stack = sum(cpu for label, cpu in used.items() if label != GENERATOR)
        generator = used.get(GENERATOR, 0.0)
        return Cost(
            edge_ms_per_request=used.get(EDGE, 0.0) * 1000 / max(requests, 1),
            stack_cores=stack / seconds,
            generator_core_percent=generator * 100 / seconds,
            others_cores=max(machine - stack - generator, 0.0) / seconds,
        )


@dataclass(frozen=True)
class Baseline:
    per_second: float
    p95_ms: float
    cost: Cost


@dataclass(frozen=True)
class Step:
    population: int
    offered_per_second: float
    tally: Tally
    seconds: float
    cost: Cost

    @property
    def served_per_second(self) -> float:
        return self.tally.served() / self.seconds

    @property
    def passed(self) -> bool:
        return not self.tally.errors() and self.tally.worst_p95()[1] <= P95_GOAL_MS


async def _at_most(lanes: int, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run ``jobs``, ``lanes`` at a time; their results in their order."""
    gate = asyncio.Semaphore(lanes)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


def _mailed_code(maildir: Path, email: str) -> str | None:
    """The code of the first account e-mail the mail sink holds for ``email``."""
    return next(filter(None, (code_in(mail.body) for mail in read_mailbox(maildir, email))), None)


def _connection_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = CONNECTIONS + OTHER_FILES
    if soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return max(64, min(CONNECTIONS, soft - OTHER_FILES))


class Shoppers:
    def __init__(
        self,
        console: Console,
        stack: LocalStack,
        populations: Sequence[int],
        step_seconds: float,
        think_seconds: float,
        accounts: int,
    ) -> None:
        self.console = console
        self.stack = stack
        self.populations = populations
        self.step_seconds = step_seconds
        self.think_seconds = think_seconds
        self.account_count = accounts
        self.components = Components(stack)
        self.urls = stack.service_urls()
        self.api = f"{self.components.edge_url()}/api/v1"
        self.rng = random.Random(SEED)
        self.products: list[UUID] = []
        self.accounts: list[Account] = []
        self.order_ids: list[UUID] = []
        self.steps: list[Step] = []
        self.baseline: Baseline | None = None
        self.pids: dict[str, int] = {}
        # One session for every request, opened when the stack is up.
        self.session: aiohttp.ClientSession

    def run(self) -> None:
        self.console.print(
            f"shoppers: populations {', '.join(f'{p:,}' for p in self.populations)}, "
            f"{self.step_seconds:g} s each after a {self.think_seconds:g} s ramp, think time "
            f"{self.think_seconds:g} s on average; the climb stops at the first population "
            f"where an action's p95 passes {P95_GOAL_MS:g} ms or an answer is not 2xx"
        )
        self.components.up(EDGE_SETTINGS)
        try:
            self.pids = running_pids(self.stack, self.components, COMPONENTS)
            # uvloop, as the edge has it: the generator's own CPU per request is lower.
            uvloop.run(self._measure())
        finally:
            self.components.down()
        self._print_summary()

    async def _measure(self) -> None:
        pool = await asyncpg.create_pool(self.urls.database_url, min_size=1, max_size=3)
        connector = aiohttp.TCPConnector(limit=_connection_limit())
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                self.session = session
                await gate_no_dead_letters(self.urls.kafka_bootstrap_servers, "before the run")
                await self._seed_catalog(pool)
                await self._open_accounts()
                refreshing = asyncio.create_task(self._keep_logged_in())
                try:
                    self.baseline = await self._baseline()
                    for population in self.populations:
                        step = await self._step(population)
                        self.steps.append(step)
                        self._print_step(step)
                        if not step.passed:
                            break
                finally:
                    refreshing.cancel()
            await self._gates(pool)
        finally:
            await pool.close()

    # -- seeding -------------------------------------------------------------------------

    async def _seed_catalog(self, pool: asyncpg.Pool) -> None:
        password = (self.stack.settings.root / "admin-password").read_text().strip()
        admin = EdgeClient(self.session, self.components.edge_url(), password, DEV_ADMIN_EMAIL)
        await admin.log_in()
        self.console.print(f"shoppers: a catalog of {PRODUCTS} products ...")

        def product(i: int) -> Callable[[], Awaitable[UUID]]:
            material, thing = MATERIALS[i % len(MATERIALS)], THINGS[i % len(THINGS)]
            use, category = self.rng.choice(USES), CATEGORIES[i % len(CATEGORIES)]
            price = Decimal(self.rng.randint(300, 12_000)).scaleb(-2)
            return lambda: admin.create_product(
                name=f"{material.capitalize()} {thing}",
                description=f"A {material} {thing} for {use}, from our {category} range.",
                category=category,
                price=price,
            )

        self.products = await _at_most(PRODUCTS_AT_ONCE, [product(i) for i in range(PRODUCTS)])
        await wait_products_known(pool, self.products)

    async def _open_accounts(self) -> None:
        self.console.print(
            f"shoppers: {self.account_count} accounts, registered, verified and logged in ..."
        )
        password = secrets.token_urlsafe(18)
        run = uuid.uuid4().hex[:8]

        async def open_account(n: int) -> Account:
            email = f"shopper-{n}-{run}@example.com"
            registration = {"email": email, "name": f"Shopper {n}", "password": password}
            async with self.session.post(f"{self.api}/auth/register", json=registration) as reply:
                user_id = UUID((await answer_json(reply, 201))["id"])
            await self._verify(email)
            credentials = {"email": email, "password": password}
            async with self.session.post(f"{self.api}/auth/login", json=credentials) as reply:
                tokens = await answer_json(reply, 200)
            if (n + 1) % 50 == 0:
                self.console.print(f"  {n + 1}/{self.account_count} accounts")
            return Account(user_id, tokens["refresh_token"], _bearer(tokens))

        self.accounts = await _at_most(
            LOGINS_AT_ONCE, [partial(open_account, n) for n in range(self.account_count)]
        )

    async def _verify(self, email: str) -> None:
        """Confirm the address with the code its verification e-mail brought to the sink."""
        deadline = time.monotonic() + VERIFICATION_MAIL_SECONDS
        while (code := _mailed_code(self.stack.maildir, email)) is None:
            if time.monotonic() > deadline:
                raise GateFailed(f"no verification e-mail reached {email}")
            await asyncio.sleep(0.2)
        async with self.session.post(f"{self.api}/auth/verify", json={"token": code}) as reply:
            if reply.status != 204:
                raise RuntimeError(f"verifying {email}: {reply.status} {await reply.text()}")

    async def _keep_logged_in(self) -> None:
        async def refresh(account: Account) -> None:
            body = {"refresh_token": account.refresh_token}
            async with self.session.post(f"{self.api}/auth/refresh", json=body) as reply:
                tokens = await answer_json(reply, 200)
            account.refresh_token = tokens["refresh_token"]
            account.authorization = _bearer(tokens)

        while True:
            await asyncio.sleep(REFRESH_EVERY_SECONDS)
            await _at_most(LOGINS_AT_ONCE, [partial(refresh, account) for account in self.accounts])

    # -- the baseline and the climb ------------------------------------------------------

    async def _baseline(self) -> Baseline:
        self.console.print(
            f"shoppers: baseline, {BASELINE_CLIENTS} clients in a closed loop on the first "
            f"catalog page for {BASELINE_SECONDS:g} s ..."
        )
        query = {"limit": PAGE_SIZE}

        async def first_page() -> None:
            async with self.session.get(f"{self.api}/products", params=query) as reply:
                await answer_json(reply, 200)

        await concurrently(first_page, None, BASELINE_CLIENTS, BASELINE_WARM_UP_SECONDS)
        window = CpuWindow(self.pids)
        await window.start()
        figures = await concurrently(first_page, None, BASELINE_CLIENTS, BASELINE_SECONDS)
        baseline = Baseline(figures.per_second, figures.p95_ms, await window.cost(figures.requests))
        self.console.print(
            f"  baseline: {baseline.per_second:.0f} req/s, p95 {baseline.p95_ms:.0f} ms, "
            f"edge CPU {baseline.cost.edge_ms_per_request:.2f} ms per request; other work on "
            f"the machine {baseline.cost.others_cores:.2f} cores"
        )
        return baseline

    async def _step(self, population: int) -> Step:
        offered = population / self.think_seconds
        self.console.print(
            f"shoppers: {population:,} shoppers, about {offered:,.0f} req/s offered ..."
        )
        began = time.monotonic()
        tally = Tally(began + self.think_seconds, began + self.think_seconds + self.step_seconds)
        shoppers = [Shopper(self.accounts[i % len(self.accounts)]) for i in range(population)]
        # (when the shopper's next action is due, the shopper), earliest first. Shoppers
        # arrive spread over one mean think time and act a think time after: the rate rises
        # to population ÷ think time and no higher (a first action on arrival would add the
        # arrivals to it, twice the rate at the end of the ramp).
        due = [
            (began + self.rng.uniform(0, self.think_seconds) + self._think(), i)
            for i in range(population)
        ]
        heapq.heapify(due)
        actions, cumulative = list(MIX), list(itertools.accumulate(MIX.values()))
        in_flight: set[asyncio.Task[None]] = set()
        measuring = asyncio.create_task(self._cpu_over_window(tally))
        progress = asyncio.create_task(self._progress(population, began, tally))
        try:
            while due[0][0] < tally.ends:
                when, i = due[0]
                wait = when - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                heapq.heapreplace(due, (when + self._think(), i))
                [action] = self.rng.choices(actions, cum_weights=cumulative)
                task = asyncio.create_task(self._act(shoppers[i], action, when, tally))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            cost = await measuring
            # The actions due in the window are counted whenever they are answered; each
            # ends within the request timeout.
            if in_flight:
                await asyncio.wait(in_flight)
        finally:
            progress.cancel()
            measuring.cancel()
        return Step(population, offered, tally, self.step_seconds, cost)

    def _think(self) -> float:
        return self.rng.expovariate(1 / self.think_seconds)

    async def _cpu_over_window(self, tally: Tally) -> Cost:
        """CPU over the measured window, per request answered in it."""
        await asyncio.sleep(tally.measured_from - time.monotonic())
        window = CpuWindow(self.pids)
        await window.start()
        first = tally.answered
        await asyncio.sleep(tally.ends - time.monotonic())
        return await window.cost(tally.answered - first)

    async def _progress(self, population: int, began: float, tally: Tally) -> None:
        answered, since = tally.answered, began
        while True:
            await asyncio.sleep(PROGRESS_SECONDS)
            now = time.monotonic()
            rate = (tally.answered - answered) / (now - since)
            answered, since = tally.answered, now
            if now < tally.measured_from + 1:
                self.console.print(
                    f"  {population:,} shoppers: arriving, {rate:,.0f} req/s answered, "
                    f"{now - began:.0f} s"
                )
                continue
            action, p95 = tally.worst_p95()
            self.console.print(
                f"  {population:,} shoppers: {now - tally.measured_from:.0f}/"
                f"{self.step_seconds:g} s, {rate:,.0f} req/s answered, worst p95 so far "
                f"{p95:.0f} ms ({action}), {sum(tally.errors().values()):,} errors"
            )

    async def _act(self, shopper: Shopper, action: Action, due: float, tally: Tally) -> None:
        started = time.monotonic()
        try:
            answer = await self._request(shopper, action)
        except TimeoutError:
            answer = Answer.TIMEOUT
        except aiohttp.ClientError:
            answer = Answer.OTHER
        tally.record(action, due, started, time.monotonic(), answer)

    async def _request(self, shopper: Shopper, action: Action) -> Answer:
        """One action; only the answers the shopper needs something from are decoded."""
        if action is Action.CATALOG:
            if shopper.next_page is not None and self.rng.random() < NEXT_PAGE_SHARE:
                query = shopper.next_page
            elif self.rng.random() < CATEGORY_SHARE:
                query = {"limit": PAGE_SIZE, "category": self.rng.choice(CATEGORIES)}
            else:
                query = {"limit": PAGE_SIZE}
            status, body = await self._get("/products", query)
            if status == 200:
                cursor = json.loads(body)["next_cursor"]
                shopper.next_page = {**query, "cursor": cursor} if cursor else None
        elif action is Action.SEARCH:
            query = {"q": self.rng.choice(SEARCH_WORDS), "limit": PAGE_SIZE}
            status, _ = await self._get("/products", query)
        elif action is Action.PRODUCT:
            status, _ = await self._get(f"/products/{self.rng.choice(self.products)}")
        elif action is Action.MY_ORDERS:
            query = {"limit": PAGE_SIZE}
            status, _ = await self._get("/orders", query, shopper.account.authorization)
        else:
            status = await self._place_order(shopper.account)
        return _answer(status)

    async def _get(
        self, path: str, query: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        async with self.session.get(f"{self.api}{path}", params=query, headers=headers) as reply:
            return reply.status, await reply.read()

    async def _place_order(self, account: Account) -> int:
        lines = self.rng.sample(self.products, self.rng.choice((1, 2)))
        body, headers = new_order(lines, account.authorization)
        async with self.session.post(f"{self.api}/orders", json=body, headers=headers) as reply:
            if reply.status == 202:
                self.order_ids.append(UUID((await reply.json())["id"]))
            else:
                await reply.read()
            return reply.status

    # -- the gates -----------------------------------------------------------------------

    async def _gates(self, pool: asyncpg.Pool) -> None:
        label = "the shoppers' orders"
        customers = [account.user_id for account in self.accounts]
        # Counted in PostgreSQL: an order whose answer timed out may have been placed too.
        placed = await pool.fetchval(
            "SELECT count(*) FROM orders WHERE user_id = ANY($1::uuid[])", customers
        )
        self.console.print(f"shoppers: waiting for the {placed:,} orders placed to end ...")
        await wait_terminal(pool, self.console, label, customers, placed, time.monotonic())
        rows = await pool.fetch(
            "SELECT id, status FROM orders WHERE user_id = ANY($1::uuid[])", customers
        )
        ended: dict[UUID, str] = {row["id"]: row["status"] for row in rows}
        unknown = [order_id for order_id in self.order_ids if order_id not in ended]
        if unknown:
            raise GateFailed(f"{label}: {len(unknown)} accepted orders have no row in orders")
        await gate_stock(pool, self.products)
        await gate_no_dead_letters(self.urls.kafka_bootstrap_servers, "after the climb")
        await wait_one_email_per_order(self.stack.maildir, label, ended)
        statuses = Counter(ended.values())
        self.console.print(
            f"shoppers: gates passed: {len(ended):,} orders terminal ("
            + ", ".join(f"{count:,} {status}" for status, count in sorted(statuses.items()))
            + f"), the stock equation holds for {len(self.products)} products with nothing "
            "reserved, no dead letters, one email per order"
        )

    # -- output --------------------------------------------------------------------------

    def _print_step(self, step: Step) -> None:
        tally = step.tally

        def ms(action: Action, percent: int) -> str:
            value = quantile(tally.latencies[action], percent) * 1000
            return "-" if math.isnan(value) else f"{value:.0f} ms"

        table = figures_table(
            f"{step.population:,} shoppers, {step.offered_per_second:,.0f} req/s offered, "
            f"{self.step_seconds:g} s",
            ("action", "2xx", "p50", "p95", "p99", *(kind.value for kind in ERRORS)),
            (
                (
                    action.value,
                    f"{tally.answers[action][Answer.OK]:,}",
                    ms(action, 50),
                    ms(action, 95),
                    ms(action, 99),
                    *(f"{tally.answers[action][kind]:,}" for kind in ERRORS),
                )
                for action in Action
            ),
        )
        self.console.print(table)
        lag = quantile(tally.lags, 95) * 1000
        self.console.print(
            f"  served {step.served_per_second:,.0f} req/s; edge CPU "
            f"{step.cost.edge_ms_per_request:.2f} ms per request "
            f"({self._to_baseline(step)} the baseline's); the whole stack "
            f"{step.cost.stack_cores:.2f} cores; the generator "
            f"{step.cost.generator_core_percent:.0f}% of a core, starting actions "
            f"{lag:.1f} ms late at p95; other work on the machine {step.cost.others_cores:.2f} "
            "cores; "
            + ("[bold green]within the goal[/]" if step.passed else "[bold red]NOT within[/]")
        )

    def _to_baseline(self, step: Step) -> str:
        if self.baseline is None:
            return "-"
        return f"{step.cost.edge_ms_per_request / self.baseline.cost.edge_ms_per_request:.2f}x"

    def _print_summary(self) -> None:
        if self.baseline is not None:
            base = self.baseline
            self.console.print(
                f"baseline: {BASELINE_CLIENTS} clients in a closed loop on GET /products, "
                f"{base.per_second:,.0f} req/s, p95 {base.p95_ms:.0f} ms, edge CPU "
                f"{base.cost.edge_ms_per_request:.2f} ms per request"
            )
        table = figures_table(
            f"Shoppers: {self.step_seconds:g} s per population, think time "
            f"{self.think_seconds:g} s, goal p95 ≤ {P95_GOAL_MS:g} ms for every action",
            (
                "shoppers",
                "offered",
                "served/s",
                "worst p95",
                "of",
                "errors",
                "edge/req",
                "÷ base",
                "stack",
                "gen.",
                "others",
            ),
            (
                (
                    f"{step.population:,}",
                    f"{step.offered_per_second:,.0f}/s",
                    f"{step.served_per_second:,.0f}",
                    f"{step.tally.worst_p95()[1]:.0f} ms",
                    step.tally.worst_p95()[0].value,
                    f"{sum(step.tally.errors().values()):,}",
                    f"{step.cost.edge_ms_per_request:.2f} ms",
                    self._to_baseline(step),
                    f"{step.cost.stack_cores:.2f}",
                    f"{step.cost.generator_core_percent:.0f}%",
                    f"{step.cost.others_cores:.2f}",
                )
                for step in self.steps
            ),
        )
        table.caption = (
            "edge/req: the edge's CPU per request answered, ÷ base: to the baseline's; stack: "
            "the whole stack's CPU in cores; gen.: this generator's in % of a core; others: "
            "other work on the machine, in cores"
        )
        self.console.print(table)
        within = [step.population for step in self.steps if step.passed]
        best = f"{max(within):,} shoppers" if within else "none of the populations tried"
        if self.steps and self.steps[-1].passed:
            best += " (the highest tried: the limit is further up)"
        self.console.print(
            f"largest population with every action's p95 ≤ {P95_GOAL_MS:g} ms and no errors, "
            f"on this machine ({os.cpu_count()} cores) with the whole stack on it: [bold]{best}[/]"
        )


def _bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def run(
    console: Console,
    stack: LocalStack,
    populations: Sequence[int] = POPULATIONS,
    step_seconds: float = STEP_SECONDS,
    think_seconds: float = THINK_SECONDS,
    accounts: int = ACCOUNTS,
) -> None:
    """The benchmark on ``stack``; raises GateFailed when a correctness gate is broken."""
    Shoppers(console, stack, populations, step_seconds, think_seconds, accounts).run()


def _positive(text: str) -> int:
    number = int(text)
    if number <= 0:
        raise argparse.ArgumentTypeError("a whole number above 0")
    return number


_populations = rising_list(int, "populations", "1000,2500")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.shoppers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--populations", type=_populations, default=list(POPULATIONS))
    parser.add_argument(
        "--step-seconds", type=float, default=STEP_SECONDS, help="measured, after the ramp"
    )
    parser.add_argument(
        "--think-seconds", type=float, default=THINK_SECONDS, help="mean time between actions"
    )
    parser.add_argument("--accounts", type=_positive, default=ACCOUNTS, help="shopper accounts")
    args = parser.parse_args()
    console = Console(width=120)
    on_a_stack_of_its_own(
        "shoppers",
        console,
        lambda stack: run(
            console, stack, args.populations, args.step_seconds, args.think_seconds, args.accounts
        ),
    )


if __name__ == "__main__":
    main()
