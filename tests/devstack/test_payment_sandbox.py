"""The payment sandbox behaves like a card gateway: token outcomes, idempotency, refunds, voids
and its API key."""

from __future__ import annotations

import asyncio
import signal
import ssl
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest

from conveyor.devstack.certificates import LocalAuthority
from conveyor.devstack.payment_sandbox import payment_gateway_is_healthy
from conveyor.devstack.settings import free_ports
from tests.support.waiting import eventually

TIMEOUT_DELAY = 5


API_KEY = "sk_test_sandbox"


@contextmanager
def sandbox(
    *options: str, scheme: str = "http", trusted: str = ""
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    [port] = free_ports(1)
    url = f"{scheme}://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "conveyor.devstack.payment_sandbox",
         "--port", str(port), "--timeout-delay", str(TIMEOUT_DELAY), *options],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        eventually(
            lambda: payment_gateway_is_healthy(url, trusted), f"the sandbox serves {url}", within=20
        )
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    with sandbox() as started:
        yield started


@pytest.fixture(scope="module")
def gateway_with_key() -> Iterator[str]:
    with sandbox("--api-key", API_KEY) as (url, _):
        yield url


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> LocalAuthority:
    return LocalAuthority(tmp_path_factory.mktemp("authority"))


@pytest.fixture(scope="module")
def gateway_over_https(authority: LocalAuthority) -> Iterator[str]:
    served = authority.server("payment-gateway", ["127.0.0.1"])
    options = ("--api-key", API_KEY, "--certificate", str(served.chain),
               "--private-key", str(served.key))  # fmt: skip
    trusted = authority.certificate_path.read_text()
    with sandbox(*options, scheme="https", trusted=trusted) as (url, _):
        yield url


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
    assert len(await ledger(client, gateway[0], reference)) == 1


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"key": ""}, "Idempotency-Key"),
        ({"amount": "12.345"}, "two decimals"),
        ({"amount": "-5.00"}, "positive"),
        ({"token": ""}, "token"),
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


async def test_a_token_no_card_stands_behind_is_declined_not_a_bad_request(
    gateway: tuple[str, subprocess.Popen[bytes]], client: aiohttp.ClientSession
) -> None:
    status, body, _ = await authorize(client, gateway[0], token="tok_unknown")
    assert status == 402
    assert "tok_unknown" in body["detail"]


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


async def ledger(client: aiohttp.ClientSession, url: str, reference: str) -> list[dict[str, Any]]:
    async with client.get(f"{url}/v1/payments", params={"reference": reference}) as found:
        items: list[dict[str, Any]] = (await found.json())["items"]
        return items


async def test_a_late_authorization_is_made_at_once_though_its_answer_comes_too_late(
    gateway: tuple[str, subprocess.Popen[bytes]], client: aiohttp.ClientSession
) -> None:
    key, reference = str(uuid.uuid4()), str(uuid.uuid4())
    with pytest.raises(TimeoutError):
        await authorize(client, gateway[0], "tok_lateAuthorize", key=key, reference=reference,
                        wait_seconds=1)  # fmt: skip
    [made] = await ledger(client, gateway[0], reference)
    assert (made["status"], made["amount"]) == ("authorized", "39.98")
    # Asked again under its key, once the answer is ready: the same payment, not a second one.
    status, body, _ = await authorize(
        client, gateway[0], "tok_lateAuthorize", key=key, reference=reference
    )
    assert (status, body["id"]) == (201, made["id"])
    assert len(await ledger(client, gateway[0], reference)) == 1


async def test_a_malformed_answer_lacks_the_id_of_the_payment_it_made(
    gateway: tuple[str, subprocess.Popen[bytes]], client: aiohttp.ClientSession
) -> None:
    reference = str(uuid.uuid4())
    status, body, _ = await authorize(client, gateway[0], "tok_malformed", reference=reference)
    assert status == 201
    assert "id" not in body
    [made] = await ledger(client, gateway[0], reference)
    assert made["status"] == "authorized"


async def test_a_rate_limited_card_is_answered_429_once_then_authorized(
    gateway: tuple[str, subprocess.Popen[bytes]], client: aiohttp.ClientSession
) -> None:
    key, reference = str(uuid.uuid4()), str(uuid.uuid4())
    status, body, headers = await authorize(
        client, gateway[0], "tok_rateLimited", key=key, reference=reference
    )
    assert (status, body["type"], headers["Retry-After"]) == (429, "rate_limited", "1")
    assert await ledger(client, gateway[0], reference) == []
    status, body, _ = await authorize(
        client, gateway[0], "tok_rateLimited", key=key, reference=reference
    )
    assert (status, body["status"]) == (201, "authorized")


async def void(
    client: aiohttp.ClientSession, url: str, payment_id: str, key: str | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with client.post(
        f"{url}/v1/payments/{payment_id}/void",
        headers={"Idempotency-Key": key or str(uuid.uuid4())},
    ) as answer:
        return answer.status, await answer.json(content_type=None), dict(answer.headers)


async def test_a_void_gives_the_whole_authorization_back_once(
    gateway: tuple[str, subprocess.Popen[bytes]], client: aiohttp.ClientSession
) -> None:
    _, payment, _ = await authorize(client, gateway[0])
    key = f"void-{payment['id']}"
    status, voided, _ = await void(client, gateway[0], payment["id"], key)
    assert (status, voided["status"], voided["amount_refunded"]) == (200, "voided", "0.00")
    status, again, headers = await void(client, gateway[0], payment["id"], key)
    assert (status, again) == (200, voided)
    assert headers.get("Idempotent-Replayed") == "true"
    status, body, _ = await void(client, gateway[0], payment["id"])
    assert (status, body["type"]) == (409, "not_voidable")


async def test_a_voided_payment_cannot_be_refunded_nor_a_refunded_one_voided(
    gateway: tuple[str, subprocess.Popen[bytes]], client: aiohttp.ClientSession
) -> None:
    _, voided, _ = await authorize(client, gateway[0])
    await void(client, gateway[0], voided["id"])
    status, body = await refund(client, gateway[0], voided["id"])
    assert (status, body["type"]) == (409, "not_refundable")

    _, refunded, _ = await authorize(client, gateway[0], amount="30.00")
    assert (await refund(client, gateway[0], refunded["id"], "10.00"))[0] == 201
    status, body, _ = await void(client, gateway[0], refunded["id"])
    assert (status, body["type"]) == (409, "not_voidable")
    async with client.get(f"{gateway[0]}/v1/payments/{refunded['id']}") as shown:
        kept = await shown.json()
    assert (kept["status"], kept["amount_refunded"]) == ("authorized", "10.00")

    _, declined, _ = await authorize(client, gateway[0], "tok_chargeDeclined")
    assert (await void(client, gateway[0], declined["payment_id"]))[0] == 409
    assert (await void(client, gateway[0], "pay_nonexistent"))[0] == 404


async def test_with_an_api_key_a_request_without_it_is_refused_401(
    gateway_with_key: str, client: aiohttp.ClientSession
) -> None:
    reference = str(uuid.uuid4())
    for presented in ({}, {"Authorization": "Bearer not-the-key"}):
        async with client.post(
            f"{gateway_with_key}/v1/payments",
            json={"amount": "5.00", "currency": "EUR", "token": "tok_visa",
                  "reference": reference},
            headers={"Idempotency-Key": str(uuid.uuid4()), **presented},
        ) as answer:  # fmt: skip
            assert answer.status == 401
            assert answer.content_type == "application/problem+json"
            assert (await answer.json())["type"] == "unauthorized"
    async with client.post(
        f"{gateway_with_key}/v1/payments",
        json={"amount": "5.00", "currency": "EUR", "token": "tok_visa", "reference": reference},
        headers={"Idempotency-Key": str(uuid.uuid4()), "Authorization": f"Bearer {API_KEY}"},
    ) as answer:
        assert answer.status == 201
    async with client.get(
        f"{gateway_with_key}/v1/payments",
        params={"reference": reference},
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as found:
        assert len((await found.json())["items"]) == 1
    assert payment_gateway_is_healthy(gateway_with_key), "health needs no key"


async def test_over_https_only_clients_trusting_its_authority_and_holding_the_key_are_served(
    gateway_over_https: str, authority: LocalAuthority
) -> None:
    trusting = ssl.create_default_context(cafile=authority.certificate_path)
    body = {"amount": "5.00", "currency": "EUR", "token": "tok_visa",
            "reference": str(uuid.uuid4())}  # fmt: skip
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting)) as session:
        for presented, expected in (({}, 401), ({"Authorization": f"Bearer {API_KEY}"}, 201)):
            headers = {"Idempotency-Key": str(uuid.uuid4()), **presented}
            async with session.post(
                f"{gateway_over_https}/v1/payments", json=body, headers=headers
            ) as answer:
                assert answer.status == expected
    async with aiohttp.ClientSession() as trusting_only_the_system:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await trusting_only_the_system.get(f"{gateway_over_https}/healthz")
    assert not payment_gateway_is_healthy(gateway_over_https), "untrusted: not healthy"
    plain = gateway_over_https.replace("https://", "http://")
    assert not payment_gateway_is_healthy(plain), "no plain HTTP beside the HTTPS"


def test_the_gateway_stops_cleanly_on_sigterm(
    gateway: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, process = gateway
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert not payment_gateway_is_healthy(url)
