"""What an account e-mail says, with and without the shop's address to link to."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from conveyor.api.account_mail import code_in, message
from conveyor.api.data.account_emails import PendingEmail, Purpose

CODE = "c0de_-XYZ"


def pending(purpose: Purpose) -> PendingEmail:
    return PendingEmail(
        uuid.uuid4(), purpose, "ada@example.org", "Ada", CODE, datetime(2030, 1, 2, tzinfo=UTC), 0
    )


def text(purpose: Purpose, public_url: str | None) -> str:
    body = message(pending(purpose), public_url).get_payload(decode=True)
    assert isinstance(body, bytes)
    return body.decode()


def test_with_the_shops_address_each_email_links_to_its_page_with_the_code() -> None:
    verify = text(Purpose.VERIFY_EMAIL, "https://shop.example.com/")
    reset = text(Purpose.RESET_PASSWORD, "https://shop.example.com")

    assert f"https://shop.example.com/verify?token={CODE}" in verify.splitlines()
    assert f"https://shop.example.com/reset-password?token={CODE}" in reset.splitlines()
    assert "POST /api" not in verify + reset  # a shopper is not asked to call the API
    assert code_in(verify) == code_in(reset) == CODE  # still there for a program reading it


def test_without_the_shops_address_the_email_says_which_call_takes_the_code() -> None:
    verify = text(Purpose.VERIFY_EMAIL, None)
    reset = text(Purpose.RESET_PASSWORD, None)

    assert "http" not in verify + reset
    assert "POST /api/v1/auth/verify" in verify
    assert "POST /api/v1/auth/password-reset/confirm" in reset
    assert code_in(verify) == code_in(reset) == CODE
