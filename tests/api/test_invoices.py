"""A confirmed order's invoice through the edge: a PDF with the seller, its number, every
line and the total; only for its owner (or an admin); none for a pending or rejected order;
a refund note once the order is cancelled; and the same invoice attached to the
confirmation e-mail."""

from __future__ import annotations

import io
import re
import uuid
from typing import Any

import httpx
import pypdf
import pytest

from conveyor.devstack.smtp_sink import read_mailbox
from conveyor.infra.settings import SellerSettings
from tests.support.edge import Account, Api
from tests.support.waiting import eventually_async
from tests.support.workers import Workers

pytestmark = pytest.mark.e2e

NUMBER = re.compile(r"Invoice (\d{4}-\d{6})")


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(content)).pages)


async def invoice(api: Api, account: Account, order_id: str) -> httpx.Response:
    return await api.http.get(f"/orders/{order_id}/invoice", headers=account.auth)


async def confirmed_order(api: Api, account: Account, admin: Account) -> tuple[dict[str, Any], str]:
    """An order of 3 mugs at 12.50 and 1 kettle at 30.00, confirmed; and the mug's name."""
    mug_name = f"Enamel mug {uuid.uuid4().hex[:6]}"
    mug = await api.new_product(admin, price="12.50", stock=50, name=mug_name)
    kettle = await api.new_product(admin, price="30.00", stock=50, name="Kettle")
    placed = await api.place(account, [(mug["id"], 3), (kettle["id"], 1)])
    assert placed.status_code == 202, placed.text
    return await api.wait_for(account, placed.json()["id"], "confirmed"), mug_name


async def test_a_confirmed_orders_invoice_is_a_pdf_with_its_lines_and_total(
    api: Api, account: Account, admin: Account, workers: Workers
) -> None:
    order, mug_name = await confirmed_order(api, account, admin)

    response = await invoice(api, account, order["id"])

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    text = pdf_text(response.content)
    number = NUMBER.search(text)
    assert number is not None, text
    assert response.headers["content-disposition"] == (
        f'attachment; filename="invoice-{number.group(1)}.pdf"'
    )
    seller = SellerSettings()
    for expected in (seller.name, seller.tax_id, seller.email, order["id"], account.email):
        assert expected in text
    assert f"{mug_name} 3 12.50 EUR 37.50 EUR" in text
    assert "Kettle 1 30.00 EUR 30.00 EUR" in text
    assert "Total 67.50 EUR" in text
    assert "Refunded" not in text
    # Asked again (by its owner or an admin): the same invoice, the same number.
    again = await invoice(api, admin, order["id"])
    assert NUMBER.findall(pdf_text(again.content)) == [number.group(1)]


async def test_another_users_order_has_no_invoice_for_them(
    api: Api, account: Account, admin: Account, workers: Workers
) -> None:
    order, _ = await confirmed_order(api, account, admin)
    stranger = await api.new_account()

    response = await invoice(api, stranger, order["id"])

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert (await invoice(api, stranger, str(uuid.uuid4()))).status_code == 404


async def test_a_pending_or_rejected_order_has_no_invoice(
    api: Api, account: Account, admin: Account, workers: Workers
) -> None:
    product = await api.new_product(admin, price="5.00", stock=10)
    # The gateway answers these too late: the order stays pending through the payment's tries.
    pending = (await api.place(account, [(product["id"], 1)], token="tok_timeout")).json()
    declined = (await api.place(account, [(product["id"], 1)], token="tok_chargeDeclined")).json()

    waiting = await invoice(api, account, pending["id"])
    rejected = await api.wait_for(account, declined["id"], "rejected")
    refused = await invoice(api, account, rejected["id"])

    assert waiting.status_code == 409
    assert waiting.headers["content-type"] == "application/problem+json"
    assert "once it is confirmed" in waiting.json()["detail"]
    assert refused.status_code == 409
    assert "rejected" in refused.json()["detail"]


async def test_a_cancelled_orders_invoice_keeps_its_number_and_notes_the_refund(
    api: Api, account: Account, admin: Account, workers: Workers
) -> None:
    order, _ = await confirmed_order(api, account, admin)
    issued = NUMBER.findall(pdf_text((await invoice(api, account, order["id"])).content))

    cancelled = await api.http.post(f"/orders/{order['id']}/cancel", headers=account.auth)
    assert cancelled.status_code == 202, cancelled.text
    await api.wait_for(account, order["id"], "cancelled", within=60)

    async def refund_noted() -> str | None:
        text = pdf_text((await invoice(api, account, order["id"])).content)
        return text if "Refunded on" in text else None

    text = await eventually_async(refund_noted, "the invoice notes the refund")
    assert NUMBER.findall(text) == issued
    assert re.search(r"Refunded on \d{4}-\d{2}-\d{2}: 67\.50 EUR", text), text


async def test_the_confirmation_email_carries_the_invoice(
    api: Api, admin: Account, workers: Workers
) -> None:
    customer = await api.new_account(verified=True)
    order, mug_name = await confirmed_order(api, customer, admin)
    downloaded = pdf_text((await invoice(api, customer, order["id"])).content)
    [number] = NUMBER.findall(downloaded)
    assert api.maildir is not None
    maildir = api.maildir

    async def confirmation() -> list[Any]:
        return [
            mail
            for mail in read_mailbox(maildir, customer.email)
            if order["id"] in mail.body and "confirmed" in mail.subject
        ]

    [email] = await eventually_async(confirmation, f"the confirmation of {order['id']}")
    [attached] = list(email.message.iter_attachments())
    assert attached.get_content_type() == "application/pdf"
    assert attached.get_filename() == f"invoice-{number}.pdf"
    assert f"Your invoice {number} is attached." in email.body
    text = pdf_text(attached.get_content())
    assert NUMBER.findall(text) == [number]
    assert f"{mug_name} 3 12.50 EUR 37.50 EUR" in text
