"""The invoice's PDF as a reader extracts it: every detail printed, a line wider than the
page wrapped rather than lost, the same document each time it is rendered."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pypdf

from conveyor.infra.invoice_pdf import render_invoice
from conveyor.infra.invoices import Invoice, InvoiceLine
from conveyor.infra.settings import SellerSettings

ISSUED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def invoice(customer_name: str) -> Invoice:
    return Invoice(
        order_id=uuid.UUID(int=7),
        year=2026,
        number=42,
        issued_at=ISSUED,
        user_id=uuid.UUID(int=8),
        customer_name=customer_name,
        customer_email="ada@example.com",
        lines=(InvoiceLine("Blue mug", 2, Decimal("12.50"), Decimal("25.00")),),
        total=Decimal("25.00"),
        currency="EUR",
        seller=SellerSettings(),
        refunded_at=None,
        refund_amount=None,
    )


def text_of(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(content)).pages)


def test_every_detail_is_printed_and_a_render_again_is_the_same_document() -> None:
    document = render_invoice(invoice("Ada Lovelace"))
    text = text_of(document)
    for expected in (
        "Conveyor Demo Shop",
        "Invoice 2026-000042",
        "Invoice date: 2026-12-01",
        f"Order: {uuid.UUID(int=7)}",
        "Ada Lovelace",
        "ada@example.com",
        "Blue mug 2 12.50 EUR 25.00 EUR",
        "Total 25.00 EUR",
    ):
        assert expected in text, text
    assert render_invoice(invoice("Ada Lovelace")) == document


def test_a_name_wider_than_the_page_is_wrapped_whole() -> None:
    words = [f"Lovelace{index:02d}" for index in range(30)]
    text = text_of(render_invoice(invoice(" ".join(words))))
    printed = text.split()
    assert all(word in printed for word in words), text
    # Wrapped: the name spans several lines of the page.
    assert len({line for line in text.splitlines() if "Lovelace" in line}) > 1
