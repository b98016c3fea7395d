"""The edge refuses to start with settings that would be unsafe in a deployment, saying which
and what to do; on the dev stack (CONVEYOR_DEV_STACK) it starts on made-up ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.edge import ADMIN_EMAIL, API, EdgeProcess, bearer
from tests.support.stack import RunningStack

pytestmark = pytest.mark.e2e

PLACEHOLDER = "replace-with-a-long-pass-phrase"
WEAK = "password123"
AN_EC_KEY = (
    ec.generate_private_key(ec.SECP256R1())
    .private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    .decode()
)
NO_KEY = None


def start_refused(edge: EdgeProcess) -> str:
    """Runs ``conveyor api`` as ``edge`` would, expecting it to exit with an error before it
    serves; what it printed, as one line."""
    run = subprocess.run(
        [sys.executable, "-m", "conveyor", "api"],
        env=edge.environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode != 0, run.stdout + run.stderr
    return " ".join((run.stdout + run.stderr).split())


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        (
            {"CONVEYOR_JWT_SIGNING_KEYS": NO_KEY},
            ["CONVEYOR_JWT_SIGNING_KEYS is not set", "openssl genpkey -algorithm ed25519"],
        ),
        (
            {"CONVEYOR_JWT_SIGNING_KEYS": AN_EC_KEY},
            ["key 1 of CONVEYOR_JWT_SIGNING_KEYS is not an Ed25519 key", "openssl genpkey"],
        ),
        (
            {"CONVEYOR_JWT_SECRET": "a-shared-secret-of-more-than-32-bytes"},
            ["CONVEYOR_JWT_SECRET is no longer read", "CONVEYOR_JWT_SIGNING_KEYS"],
        ),
        (
            {"CONVEYOR_ADMIN_PASSWORD": PLACEHOLDER},
            ["CONVEYOR_ADMIN_PASSWORD is still the example's placeholder"],
        ),
        (
            {"CONVEYOR_ADMIN_PASSWORD": WEAK},
            ["CONVEYOR_ADMIN_PASSWORD is too weak", "set a long pass phrase of your own"],
        ),
        (
            {"CONVEYOR_TRUSTED_PROXIES": '["10.0.0.0/8", "the-ingress"]'},
            ["CONVEYOR_TRUSTED_PROXIES: 'the-ingress' is not an IP address or a network"],
        ),
    ],
    ids=[
        "no signing key",
        "a key of another kind",
        "the old HMAC secret",
        "the example admin password",
        "a weak admin password",
        "a proxy that is no address",
    ],
)
def test_the_edge_refuses_to_start_with_unsafe_settings_saying_what_to_do(
    stack: RunningStack, tmp_path: Path, changes: dict[str, str | None], said: list[str]
) -> None:
    output = start_refused(EdgeProcess(stack.urls, tmp_path / "edge.log", settings=changes))
    for words in said:
        assert words in output
    # Said in a sentence, not a traceback, and never repeating a secret.
    assert "Traceback" not in output
    for secret in (PLACEHOLDER, WEAK, "a-shared-secret", "BEGIN PRIVATE KEY"):
        assert secret not in output


async def test_on_the_dev_stack_the_edge_starts_without_keys_and_its_workers_share_one(
    stack: RunningStack, fresh_database_url: str, tmp_path: Path
) -> None:
    """Each worker is a process of its own; a key each would refuse the others' tokens. A
    database of its own, so its first admin is made with the weak password."""
    edge = EdgeProcess(
        stack.urls.model_copy(update={"database_url": fresh_database_url}),
        tmp_path / "edge.log",
        settings={
            "CONVEYOR_DEV_STACK": "true",
            "CONVEYOR_JWT_SIGNING_KEYS": NO_KEY,
            "CONVEYOR_ADMIN_PASSWORD": WEAK,
        },
        workers=2,
    )
    with edge.running():
        async with httpx.AsyncClient(base_url=edge.base_url) as http:
            login = await http.post(
                f"{API}/auth/login", json={"email": ADMIN_EMAIL, "password": WEAK}
            )
        token = login.json()["access_token"]
        answers: list[int] = []
        key_ids: set[str] = set()
        # A new connection each time, so the kernel hands the requests to either worker.
        for _ in range(12):
            async with httpx.AsyncClient(base_url=edge.base_url) as http:
                me = await http.get(f"{API}/users/me", headers=bearer(token))
                answers.append(me.status_code)
                keys = (await http.get("/.well-known/jwks.json")).json()["keys"]
                key_ids.update(key["kid"] for key in keys)
        warned = "CONVEYOR_JWT_SIGNING_KEYS is not set" in edge.log()
    assert answers == [200] * 12
    assert len(key_ids) == 1
    assert warned
