"""Account e-mails through the edge, read from the mail sink as their owners would read them:
verifying an address, resetting a forgotten password, the codes working once and for a
while, the limits on asking, and e-mails that wait out a mail server that is away."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.devstack.settings import free_ports
from conveyor.devstack.smtp_sink import ReceivedMail, read_mailbox
from tests.devstack.sink import start_sink, stop_sink
from tests.support.edge import (
    ADMIN_EMAIL,
    PASSWORD_RESET_SUBJECT,
    VERIFICATION_SUBJECT,
    Account,
    Api,
    EdgeProcess,
    bearer,
    refused_within_bound,
)
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "a brand new pass phrase 2025"


def new_email() -> str:
    return f"acct-{uuid.uuid4().hex[:10]}@example.org"


async def register(api: Api, email: str) -> httpx.Response:
    body = {"email": email, "name": "Grace Hopper", "password": "compiler-1952-cobol"}
    response = await api.http.post("/auth/register", json=body)
    assert response.status_code == 201, response.text
    return response


def mails_to(api: Api, email: str) -> list[ReceivedMail]:
    assert api.maildir is not None
    return read_mailbox(api.maildir, email)


async def me(api: Api, account: Account) -> dict[str, object]:
    found: dict[str, object] = (await api.http.get("/users/me", headers=account.auth)).json()
    return found


async def age_codes(stack: RunningStack, user_id: uuid.UUID) -> None:
    """Make the account's codes as old as their lifetime: they have just expired."""
    connection = await asyncpg.connect(stack.urls.database_url)
    try:
        await connection.execute(
            "UPDATE account_tokens SET expires_at = now() WHERE user_id = $1", user_id
        )
    finally:
        await connection.close()


# -- verifying the address -------------------------------------------------------------------


async def test_registering_mails_a_code_that_verifies_the_address(api: Api) -> None:
    email = new_email()
    user = (await register(api, email)).json()
    assert user["email_verified"] is False

    [code] = await api.codes_mailed(email, VERIFICATION_SUBJECT)
    [mail] = mails_to(api, email)
    assert mail.envelope_to == (email,)
    assert "Grace Hopper" in mail.body
    # A link to the shop's own page, the code in it: the shopper clicks rather than copies.
    assert f"{api.edge.base_url}/verify?token={code}" in mail.body.splitlines()

    verified = await api.http.post("/auth/verify", json={"token": code})
    assert verified.status_code == 204
    tokens = await api.login(email, "compiler-1952-cobol")
    assert (await api.http.get("/users/me", headers=bearer(tokens["access_token"]))).json()[
        "email_verified"
    ] is True


async def test_a_verification_code_works_once(api: Api) -> None:
    email = new_email()
    await register(api, email)
    [code] = await api.codes_mailed(email, VERIFICATION_SUBJECT)
    assert (await api.http.post("/auth/verify", json={"token": code})).status_code == 204

    again = await api.http.post("/auth/verify", json={"token": code})
    assert again.status_code == 422
    assert again.headers["content-type"] == "application/problem+json"
    assert "ask for a new one" in again.json()["detail"]


async def test_an_expired_verification_code_is_refused_saying_to_ask_for_a_new_one(
    api: Api, stack: RunningStack
) -> None:
    email = new_email()
    user_id = uuid.UUID((await register(api, email)).json()["id"])
    [code] = await api.codes_mailed(email, VERIFICATION_SUBJECT)
    await age_codes(stack, user_id)

    refused = await api.http.post("/auth/verify", json={"token": code})
    assert refused.status_code == 422
    assert "expired" in refused.json()["detail"]
    assert "/auth/verify/resend" in refused.json()["detail"]


async def test_a_code_never_given_out_verifies_nothing(api: Api) -> None:
    refused = await api.http.post("/auth/verify", json={"token": "not-a-code-we-gave-out"})
    assert refused.status_code == 422
    assert "unknown or already used" in refused.json()["detail"]


async def test_an_unverified_account_asks_for_a_new_code_and_either_code_verifies(
    api: Api, account: Account
) -> None:
    resent = await api.http.post("/auth/verify/resend", headers=account.auth)
    assert resent.status_code == 202
    first, second = await api.codes_mailed(account.email, VERIFICATION_SUBJECT, count=2)
    assert first != second
    assert (await api.http.post("/auth/verify", json={"token": second})).status_code == 204
    assert (await me(api, account))["email_verified"] is True

    # Verified, the other code is of no use any more, and there is nothing to ask for.
    assert (await api.http.post("/auth/verify", json={"token": first})).status_code == 422
    again = await api.http.post("/auth/verify/resend", headers=account.auth)
    assert again.status_code == 409


async def test_asking_for_codes_again_and_again_is_429(api: Api, account: Account) -> None:
    # Twice the budget and one more: at least one fixed minute holds more than the budget.
    answers = [await api.http.post("/auth/verify/resend", headers=account.auth) for _ in range(7)]
    assert {answer.status_code for answer in answers} == {202, 429}
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1


async def test_accounts_admins_open_verify_their_address_too(api: Api, admin: Account) -> None:
    email = new_email()
    created = await api.http.post(
        "/users",
        json={"email": email, "name": "Alan", "password": "turing-machine-1936", "role": "admin"},
        headers=admin.auth,
    )
    assert created.status_code == 201
    assert created.json()["email_verified"] is False
    [code] = await api.codes_mailed(email, VERIFICATION_SUBJECT)
    assert (await api.http.post("/auth/verify", json={"token": code})).status_code == 204


async def test_the_first_admin_starts_verified(api: Api, admin: Account) -> None:
    assert (await me(api, admin))["email_verified"] is True
    assert mails_to(api, ADMIN_EMAIL) == []


# -- resetting a forgotten password ----------------------------------------------------------


async def test_a_password_reset_sets_the_new_password_and_ends_every_login(
    api: Api, account: Account
) -> None:
    other_login = await api.login(account.email, account.password)
    asked = await api.http.post("/auth/password-reset", json={"email": account.email.upper()})
    assert asked.status_code == 202
    [code] = await api.codes_mailed(account.email, PASSWORD_RESET_SUBJECT)
    [mail] = [m for m in mails_to(api, account.email) if m.subject == PASSWORD_RESET_SUBJECT]
    assert f"{api.edge.base_url}/reset-password?token={code}" in mail.body.splitlines()

    reset = await api.http.post(
        "/auth/password-reset/confirm", json={"token": code, "new_password": NEW_PASSWORD}
    )
    assert reset.status_code == 204

    old = await api.http.post(
        "/auth/login", json={"email": account.email, "password": account.password}
    )
    assert old.status_code == 401
    tokens = await api.login(account.email, NEW_PASSWORD)
    for refresh_token in (account.refresh_token, other_login["refresh_token"]):
        refused = await api.http.post("/auth/refresh", json={"refresh_token": refresh_token})
        assert refused.status_code == 401
    await refused_within_bound(api, account.auth, "an access token from before the reset")
    # The code came by e-mail, so the address is proven too.
    me_now = await api.http.get("/users/me", headers=bearer(tokens["access_token"]))
    assert me_now.json()["email_verified"] is True


async def test_a_reset_code_works_once_and_a_weak_password_leaves_it_usable(
    api: Api, account: Account
) -> None:
    await api.http.post("/auth/password-reset", json={"email": account.email})
    [code] = await api.codes_mailed(account.email, PASSWORD_RESET_SUBJECT)

    weak = await api.http.post(
        "/auth/password-reset/confirm", json={"token": code, "new_password": "password123"}
    )
    assert weak.status_code == 422
    assert "too easy" in weak.json()["detail"]
    confirm = {"token": code, "new_password": NEW_PASSWORD}
    assert (await api.http.post("/auth/password-reset/confirm", json=confirm)).status_code == 204
    again = await api.http.post("/auth/password-reset/confirm", json=confirm)
    assert again.status_code == 422
    assert "/auth/password-reset" in again.json()["detail"]


async def test_an_expired_reset_code_is_refused(
    api: Api, account: Account, stack: RunningStack
) -> None:
    await api.http.post("/auth/password-reset", json={"email": account.email})
    [code] = await api.codes_mailed(account.email, PASSWORD_RESET_SUBJECT)
    await age_codes(stack, account.id)
    refused = await api.http.post(
        "/auth/password-reset/confirm", json={"token": code, "new_password": NEW_PASSWORD}
    )
    assert refused.status_code == 422
    assert "expired" in refused.json()["detail"]
    await api.login(account.email, account.password)


async def test_a_reset_for_an_unknown_address_is_202_and_sends_nothing(
    api: Api, account: Account
) -> None:
    unknown = new_email()
    nobody = await api.http.post("/auth/password-reset", json={"email": unknown})
    somebody = await api.http.post("/auth/password-reset", json={"email": account.email})
    assert nobody.status_code == somebody.status_code == 202
    assert nobody.content == somebody.content
    # The known address's e-mail, asked after, has arrived: the unknown one had its turn.
    await api.codes_mailed(account.email, PASSWORD_RESET_SUBJECT)
    assert mails_to(api, unknown) == []


# -- an edge that takes orders only from verified addresses ----------------------------------


@pytest.fixture(scope="module")
def verifying_edge(
    stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeProcess]:
    edge = EdgeProcess(
        stack.urls,
        tmp_path_factory.mktemp("verifying-edge") / "edge.log",
        settings={"CONVEYOR_REQUIRE_VERIFIED_EMAIL": "true"},
    )
    with edge.running():
        yield edge


async def test_where_verified_addresses_are_required_an_unverified_account_cannot_order(
    verifying_edge: EdgeProcess, api: Api, admin: Account, stack: RunningStack
) -> None:
    product = (await api.new_product(admin))["id"]
    client = Api(verifying_edge, stack.maildir)
    try:
        account = await client.new_account()
        refused = await client.place(account, [(product, 1)])
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert "verify your e-mail address" in refused.json()["detail"]

        [code] = await client.codes_mailed(account.email, VERIFICATION_SUBJECT)
        assert (await client.http.post("/auth/verify", json={"token": code})).status_code == 204
        assert (await client.place(account, [(product, 1)])).status_code == 202
    finally:
        await client.close()


# -- a mail server that is away --------------------------------------------------------------


@pytest.fixture
async def away_mail_server(
    stack: RunningStack, fresh_database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Api, int, Path]]:
    """An edge of its own database whose mail server is not there yet: its port and maildir,
    for the test to start it on."""
    [port] = free_ports(1)
    urls = stack.urls.model_copy(
        update={"database_url": fresh_database_url, "smtp_url": f"smtp://127.0.0.1:{port}"}
    )
    with EdgeProcess(urls, tmp_path / "edge.log").running() as edge:
        client = Api(edge, tmp_path / "mail")
        try:
            yield client, port, tmp_path / "mail"
        finally:
            await client.close()


async def account_emails_failed(api: Api) -> float:
    async with httpx.AsyncClient(base_url=api.edge.base_url) as http:
        text = (await http.get("/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "conveyor_account_emails_total" and sample.labels["outcome"] == "failed"
    )


async def test_an_account_email_waits_for_a_mail_server_that_is_away_then_goes_once(
    away_mail_server: tuple[Api, int, Path], fresh_database_url: str
) -> None:
    api, port, maildir = away_mail_server
    email = new_email()
    await register(api, email)
    await eventually_async(lambda: account_emails_failed(api), "a failed try is counted")

    sink = start_sink(port, maildir)
    try:
        [code] = await api.codes_mailed(email, VERIFICATION_SUBJECT)
    finally:
        stop_sink(sink)
    assert (await api.http.post("/auth/verify", json={"token": code})).status_code == 204
    # Accepted by the server, the e-mail and the code it held left the outbox.
    connection = await asyncpg.connect(fresh_database_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM account_emails") == 0
    finally:
        await connection.close()
