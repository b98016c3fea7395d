"""The payment sandbox behaves like a card gateway: token outcomes, idempotency, refunds."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from conveyor.devstack.payment_sandbox import payment_gateway_is_healthy
from conveyor.devstack.processes import wait_until
from conveyor.devstack.settings import free_ports

TIMEOUT_DELAY = 5


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    [port] = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "conveyor.devstack.payment_sandbox",
         "--port", str(port), "--timeout-delay", str(TIMEOUT_DELAY)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_until(lambda: payment_gateway_is_healthy(url), timeout_seconds=20)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=10)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def authorize(
    client: aiohttp.ClientSession, url: str, token: str = "tok_visa", *,
    key: str | None = None, amount: str = "39.98", reference: str | None = None,
    wait_seconds: float = 10,
) -> tuple[int, dict[str, Any], dict[str, str]]:  # fmt: skip
    headers = {} if key == "" else {"Idempotency-Key": key or str(uuid.uuid4())}
    body = {"amount": amount, "currency": "EUR", "token": token,
            "reference": reference or str(uuid.uuid4())}  # fmt: skip
    async with client.post(
        f"{url}/v1/payments", json=body, headers=headers,
        timeout=aiohttp.ClientTimeout(total=wait_seconds),
    ) as answer:  # fmt: skip
        return answer.status, await answer.json(content_type=None), dict(answer.headers)


async def test_a_good_card_is_authorized(
    gateway: tuple[str, subprocess.Popen[bytes]], client: aiohttp.ClientSession
) -> None:
    status, body, _ = await authorize(client, gateway[0])
    assert status == 201
    assert body["status"] == "authorized"
    assert body["id"].startswith("pay_")
    assert body["amount"] == "39.98"


async def test_a_declined_card_is_answered_402_and_replayed_for_the_same_key(
    gateway: tuple[str, subprocess.Popen[bytes]], client: aiohttp.ClientSession
) -> None:
    key, reference = str(uuid.uuid4()), str(uuid.uuid4())
    first = await authorize(client, gateway[0], "tok_chargeDeclined", key=key, reference=reference)
    again = await authorize(client, gateway[0], "tok_chargeDeclined", key=key, reference=reference)
    assert first[0] == again[0] == 402
    assert first[1]["type"] == "card_declined"
    assert again[1] == first[1]
    assert again[2].get("Idempotent-Replayed") == "true"


async def test_a_client_with_a_shorter_timeout_gives_up_on_tok_timeout(
    gateway: tuple[str, subprocess.Popen[bytes]], client: aiohttp.ClientSession
) -> None:
    with pytest.raises(TimeoutError):
        await authorize(client, gateway[0], "tok_timeout", wait_seconds=1)
    status, _, _ = await authorize(client, gateway[0], "tok_visa")
    assert status == 201, "a hanging request does not hold up the others"


async def test_a_retry_with_the_same_key_returns_the_same_payment(
    gateway: tuple[str, subprocess.Popen[bytes]], client: aiohttp.ClientSession
) -> None:
    key, reference = str(uuid.uuid4()), str(uuid.uuid4())
    first = await authorize(client, gateway[0], key=key, reference=reference)
    again = await authorize(client, gateway[0], key=key, reference=reference)
    assert first[0] == again[0] == 201
    assert again[1]["id"] == first[1]["id"]
    assert again[2].get("Idempotent-Replayed") == "true"


async def test_the_same_key_with_another_body_is_a_conflict(
    gateway: tuple[str, subprocess.Popen[bytes]], client: aiohttp.ClientSession
) -> None:
    key = str(uuid.uuid4())
    await authorize(client, gateway[0], key=key, amount="10.00")
    status, body, _ = await authorize(client, gateway[0], key=key, amount="11.00")
    assert status == 409
    assert body["type"] == "idempotency_key_reused"


async def test_concurrent_duplicates_make_exactly_one_payment(
    gateway: tuple[str, subprocess.Popen[bytes]], client: aiohttp.ClientSession
) -> None:
    key, reference = str(uuid.uuid4()), str(uuid.uuid4())
    answers = await asyncio.gather(
        *(authorize(client, gateway[0], key=key, reference=reference) for _ in range(10))
    )
    assert {answer[1]["id"] for answer in answers} == {answers[0][1]["id"]}
    async with client.get(f"{gateway[0]}/v1/payments", params={"reference": reference}) as found:
        assert len((await found.json())["items"]) == 1


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"key": ""}, "Idempotency-Key"),
        ({"amount": "12.345"}, "two decimals"),
        ({"amount": "-5.00"}, "positive"),
        ({"token": "tok_unknown"}, "unknown card token"),
    ],
)
async def test_a_malformed_request_is_refused_with_a_clear_400(
    gateway: tuple[str, subprocess.Popen[bytes]],
    client: aiohttp.ClientSession,
    change: dict[str, Any],
    detail: str,
) -> None:
    status, body, _ = await authorize(client, gateway[0], **change)
    assert status == 400
    assert detail in body["detail"] or detail in body["title"]


async def refund(
    client: aiohttp.ClientSession, url: str, payment_id: str, amount: str | None = None
) -> tuple[int, dict[str, Any]]:
    body = {} if amount is None else {"amount": amount}
    async with client.post(
        f"{url}/v1/payments/{payment_id}/refunds", json=body,
        headers={"Idempotency-Key": str(uuid.uuid4())},
    ) as answer:  # fmt: skip
        return answer.status, await answer.json(content_type=None)


async def test_refunds_may_be_partial_and_never_exceed_the_payment(
    gateway: tuple[str, subprocess.Popen[bytes]], client: aiohttp.ClientSession
) -> None:
    _, payment, _ = await authorize(client, gateway[0], amount="30.00")
    assert (await refund(client, gateway[0], payment["id"], "10.00"))[0] == 201
    status, body = await refund(client, gateway[0], payment["id"], "25.00")
    assert status == 409
    assert body["type"] == "refund_exceeds_payment"
    status, rest = await refund(client, gateway[0], payment["id"])
    assert (status, rest["amount"]) == (201, "20.00")
    async with client.get(f"{gateway[0]}/v1/payments/{payment['id']}") as shown:
        assert (await shown.json())["amount_refunded"] == "30.00"


async def test_a_declined_or_unknown_payment_cannot_be_refunded(
    gateway: tuple[str, subprocess.Popen[bytes]], client: aiohttp.ClientSession
) -> None:
    _, declined, _ = await authorize(client, gateway[0], "tok_chargeDeclined")
    assert (await refund(client, gateway[0], declined["payment_id"]))[0] == 409
    assert (await refund(client, gateway[0], "pay_nonexistent"))[0] == 404


def test_the_gateway_stops_cleanly_on_sigterm(
    gateway: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, process = gateway
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert not payment_gateway_is_healthy(url)
