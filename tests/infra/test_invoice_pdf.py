"""The invoice's PDF as a reader extracts it: every detail printed, a line wider than the
page wrapped rather than lost, lines beyond a page on the next, the same document each time it
is rendered."""

from __future__ import annotations

import io
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pypdf

from conveyor.infra.invoice_pdf import render_invoice
from conveyor.infra.invoices import Invoice, InvoiceLine
from conveyor.infra.settings import SellerSettings

ISSUED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


MUG = InvoiceLine("Blue mug", 2, Decimal("12.50"), Decimal("25.00"))


def invoice(customer_name: str, lines: tuple[InvoiceLine, ...] = (MUG,)) -> Invoice:
    return Invoice(
        order_id=uuid.UUID(int=7),
        year=2026,
        number=42,
        issued_at=ISSUED,
        user_id=uuid.UUID(int=8),
        customer_name=customer_name,
        customer_email="ada@example.com",
        lines=lines,
        total=sum((line.subtotal for line in lines), Decimal(0)),
        currency="EUR",
        seller=SellerSettings(),
        refunded_at=None,
        refund_amount=None,
    )


def pages_of(content: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(content)).pages]


def text_of(content: bytes) -> str:
    return "\n".join(pages_of(content))


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


def test_lines_beyond_a_page_go_on_the_next_and_the_total_after_the_last() -> None:
    lines = tuple(
        InvoiceLine(f"Product {index:02d}", 1, Decimal("1.00"), Decimal("1.00"))
        for index in range(60)
    )
    pages = pages_of(render_invoice(invoice("Ada Lovelace", lines)))
    assert len(pages) == 2
    text = "\n".join(pages)
    for index in range(60):
        assert text.count(f"Product {index:02d} 1 1.00 EUR 1.00 EUR") == 1, text
    assert "Total 60.00 EUR" in pages[-1]


def test_names_print_as_given_and_what_the_font_lacks_as_a_question_mark() -> None:
    lines = (
        InvoiceLine("Mug (blue) \\ 50% Café", 1, Decimal("9.00"), Decimal("9.00")),
        InvoiceLine("Чайник", 1, Decimal("20.00"), Decimal("20.00")),
    )
    text = text_of(render_invoice(invoice("Zoë O'Brien", lines)))
    assert "Mug (blue) \\ 50% Café 1 9.00 EUR" in text, text
    assert "?????? 1 20.00 EUR" in text, text
    assert "Zoë O'Brien" in text, text


def test_a_product_name_too_long_for_its_column_is_cut_short() -> None:
    name = "Enamel mug with a lid, a wooden handle and a saucer, dishwasher safe"
    text = text_of(render_invoice(invoice("Ada Lovelace", (replace(MUG, product_name=name),))))
    cut = next(line for line in text.splitlines() if line.startswith("Enamel mug"))
    assert cut.endswith("... 2 12.50 EUR 25.00 EUR"), cut
    assert name not in text
