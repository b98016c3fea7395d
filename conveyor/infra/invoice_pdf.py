"""An invoice as a PDF, one A4 page per screenful of lines, rendered with fpdf2.

The edge serves it for download and the notifications processor attaches it to the
confirmation email; both render it from the invoice's row alone (``invoices.Invoice``), so the
two are the same document. It uses the PDF's built-in Helvetica, which needs no font file but
covers Latin-1 only: a character beyond it (a name in another script) prints as "?".
"""

from __future__ import annotations

from fpdf import FPDF
from fpdf.enums import Align, XPos, YPos

from conveyor.domain.money import format_amount
from conveyor.infra.invoices import Invoice

_FONT = "Helvetica"
# Column widths in mm of the lines table; the page's usable width is 180 mm.
_COLUMNS = (("Product", 90.0), ("Quantity", 20.0), ("Unit price", 35.0), ("Subtotal", 35.0))
_ROW_HEIGHT = 7.0


def render_invoice(invoice: Invoice) -> bytes:
    """The invoice's PDF."""
    pdf = FPDF(format="A4")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(auto=True, margin=15)
    # Fixed from the invoice, so rendering it again gives the same document.
    pdf.set_creation_date(invoice.issued_at)
    pdf.set_title(f"Invoice {invoice.display_number}")
    pdf.set_author(_text(invoice.seller.name))
    pdf.add_page()

    seller = invoice.seller
    pdf.set_font(_FONT, "B", 16)
    _line(pdf, seller.name)
    pdf.set_font(_FONT, "", 10)
    for address_line in seller.address.replace(", ", "\n").splitlines():
        _line(pdf, address_line)
    _line(pdf, f"VAT / tax id: {seller.tax_id}")
    _line(pdf, seller.email)
    pdf.ln(8)

    pdf.set_font(_FONT, "B", 14)
    _line(pdf, f"Invoice {invoice.display_number}")
    pdf.set_font(_FONT, "", 10)
    _line(pdf, f"Invoice date: {invoice.issued_at.date().isoformat()}")
    _line(pdf, f"Order: {invoice.order_id}")
    pdf.ln(4)
    pdf.set_font(_FONT, "B", 10)
    _line(pdf, "Billed to")
    pdf.set_font(_FONT, "", 10)
    if invoice.customer_name:
        _line(pdf, invoice.customer_name)
    _line(pdf, invoice.customer_email or f"customer {invoice.user_id}")
    pdf.ln(6)

    pdf.set_font(_FONT, "B", 10)
    for index, (title, width) in enumerate(_COLUMNS):
        _cell(pdf, width, title, numeric=index > 0, border="B")
    pdf.ln(_ROW_HEIGHT)
    pdf.set_font(_FONT, "", 10)
    for item in invoice.lines:
        _cell(pdf, _COLUMNS[0][1], item.product_name)
        _cell(pdf, _COLUMNS[1][1], str(item.quantity), numeric=True)
        _cell(pdf, _COLUMNS[2][1], format_amount(item.unit_price, invoice.currency), numeric=True)
        _cell(pdf, _COLUMNS[3][1], format_amount(item.subtotal, invoice.currency), numeric=True)
        pdf.ln(_ROW_HEIGHT)
    pdf.set_font(_FONT, "B", 11)
    label_width = sum(width for _, width in _COLUMNS[:-1])
    _cell(pdf, label_width, "Total", numeric=True, border="T")
    total = format_amount(invoice.total, invoice.currency)
    _cell(pdf, _COLUMNS[-1][1], total, numeric=True, border="T")
    pdf.ln(_ROW_HEIGHT)

    if invoice.refunded_at is not None and invoice.refund_amount is not None:
        pdf.ln(6)
        pdf.set_font(_FONT, "B", 11)
        _line(
            pdf,
            f"Refunded on {invoice.refunded_at.date().isoformat()}: "
            f"{format_amount(invoice.refund_amount, invoice.currency)}",
        )
        pdf.set_font(_FONT, "", 10)
        _line(pdf, "The order was cancelled and its payment refunded in full.")
    return bytes(pdf.output())


def _text(text: str) -> str:
    """``text`` in what the built-in font can print."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _line(pdf: FPDF, text: str) -> None:
    text = _text(text)
    # multi_cell breaks a text into lines glyph by glyph, two thirds of a whole invoice's
    # rendering when every line went through it; only a text wider than the page needs it.
    if pdf.get_string_width(text) <= pdf.epw:
        pdf.cell(0, 5.5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    else:
        pdf.multi_cell(0, 5.5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _cell(pdf: FPDF, width: float, text: str, *, numeric: bool = False, border: str = "") -> None:
    text = _text(text)
    # A name too long for its column is cut short rather than printed over the next one.
    if pdf.get_string_width(text) > width - 2:
        while len(text) > 1 and pdf.get_string_width(text + "...") > width - 2:
            text = text[:-1]
        text += "..."
    align = Align.R if numeric else Align.L
    pdf.cell(width, _ROW_HEIGHT, text, border=border or 0, align=align)
