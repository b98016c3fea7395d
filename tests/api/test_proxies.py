"""X-Forwarded-For names the client only when a trusted proxy (CONVEYOR_TRUSTED_PROXIES) sent
it: from any other peer it is ignored, so no client can pick the address its rate limit is
counted against."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.support.edge import API, EdgeProcess
from tests.support.stack import RunningStack

pytestmark = pytest.mark.e2e

PROXY = "127.0.0.1"
# Loopback too, so it reaches the edge, but not among the trusted proxies.
ANOTHER_PEER = "127.0.0.2"
AUTH_PER_MINUTE = 3
# Twice the budget and one: however the requests fall into the one-minute windows, one of
# the windows holds more than the budget.
ATTEMPTS = 2 * AUTH_PER_MINUTE + 1


@pytest.fixture(scope="module")
def behind_a_proxy(
    stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeProcess]:
    edge = EdgeProcess(
        stack.urls,
        tmp_path_factory.mktemp("behind-a-proxy") / "edge.log",
        settings={
            "CONVEYOR_TRUSTED_PROXIES": f'["{PROXY}"]',
            "CONVEYOR_RATE_LIMIT_AUTH_PER_MINUTE": str(AUTH_PER_MINUTE),
        },
    )
    with edge.running():
        yield edge


def a_client_address() -> str:
    """An address no other request has come from (the IPv6 documentation range)."""
    return str(ipaddress.IPv6Address((0x20010DB8 << 96) | secrets.randbits(64)))


async def logins_from(edge: EdgeProcess, peer: str, forwarded_for: list[str]) -> list[int]:
    """A failing login from ``peer`` per address, each saying it came from that address.

    Each for an e-mail address of its own, so only the per-address budget can refuse one
    (not the wait after failed logins per e-mail address)."""
    transport = httpx.AsyncHTTPTransport(local_address=peer)
    async with httpx.AsyncClient(base_url=edge.base_url + API, transport=transport) as http:
        return [
            (
                await http.post(
                    "/auth/login",
                    json={
                        "email": f"nobody-{secrets.token_hex(6)}@example.org",
                        "password": "a wrong guess",
                    },
                    headers={"X-Forwarded-For": address},
                )
            ).status_code
            for address in forwarded_for
        ]


async def test_from_a_trusted_proxy_each_forwarded_client_has_its_own_budget(
    behind_a_proxy: EdgeProcess,
) -> None:
    many_clients = [a_client_address() for _ in range(ATTEMPTS)]
    one_client = [a_client_address()] * ATTEMPTS
    assert await logins_from(behind_a_proxy, PROXY, many_clients) == [401] * ATTEMPTS
    assert 429 in await logins_from(behind_a_proxy, PROXY, one_client)


async def test_from_any_other_peer_x_forwarded_for_is_ignored(
    behind_a_proxy: EdgeProcess,
) -> None:
    claimed = [a_client_address() for _ in range(ATTEMPTS)]
    # Counted against the peer itself, whatever it claims.
    assert 429 in await logins_from(behind_a_proxy, ANOTHER_PEER, claimed)
