"""An invoice as a PDF: one A4 page, and more when its lines need them.

The edge serves it for download and the notifications processor attaches it to the
confirmation email; both render it from the invoice's row alone (``invoices.Invoice``), so the
two are the same document, and rendering it again gives the same bytes.

The PDF is written here rather than through a PDF library. An invoice is a few dozen lines of
text and a few rules, and fpdf2, which rendered it before, spent about 1.5 ms on each through
its general machinery: a third of the notifications processor's time, once per confirmed
order. It uses the PDF's built-in Helvetica (``pdf_fonts`` has its widths), which needs no font
file but covers Latin-1 only: a character beyond it (a name in another script) prints as "?".
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from conveyor.domain.money import format_amount
from conveyor.infra.invoices import Invoice
from conveyor.infra.pdf_fonts import HELVETICA, HELVETICA_BOLD

# Lengths are in millimetres, as laid out; a PDF measures in points (1/72 inch).
_POINTS_PER_MM = 72 / 25.4
_PAGE_WIDTH, _PAGE_HEIGHT = 210.0, 297.0  # A4
_MARGIN = 15.0
_USABLE_WIDTH = _PAGE_WIDTH - 2 * _MARGIN
_PADDING = 1.0  # between a cell's edge and its text
_RULE_WIDTH = 0.2
_LINE_HEIGHT = 5.5
_ROW_HEIGHT = 7.0
# Column widths of the lines table; together the usable width.
_COLUMNS = (("Product", 90.0), ("Quantity", 20.0), ("Unit price", 35.0), ("Subtotal", 35.0))


@dataclass(frozen=True)
class _Font:
    resource: str  # its name in the pages' resources
    base_font: str  # one of the PDF's built-in fonts
    widths: tuple[int, ...]  # per byte, in thousandths of the size


_REGULAR = _Font("F1", "Helvetica", HELVETICA)
_BOLD = _Font("F2", "Helvetica-Bold", HELVETICA_BOLD)


@dataclass(frozen=True)
class _Cell:
    width: float
    text: str
    right_aligned: bool = False
    rule: str = ""  # "above" or "below" the cell, or none


def render_invoice(invoice: Invoice) -> bytes:
    """The invoice's PDF."""
    page = _Layout()
    seller = invoice.seller
    page.set_font(_BOLD, 16)
    page.line(seller.name)
    page.set_font(_REGULAR, 10)
    for address_line in seller.address.replace(", ", "\n").splitlines():
        page.line(address_line)
    page.line(f"VAT / tax id: {seller.tax_id}")
    page.line(seller.email)
    page.skip(8)

    page.set_font(_BOLD, 14)
    page.line(f"Invoice {invoice.display_number}")
    page.set_font(_REGULAR, 10)
    page.line(f"Invoice date: {invoice.issued_at.date().isoformat()}")
    page.line(f"Order: {invoice.order_id}")
    page.skip(4)
    page.set_font(_BOLD, 10)
    page.line("Billed to")
    page.set_font(_REGULAR, 10)
    if invoice.customer_name:
        page.line(invoice.customer_name)
    page.line(invoice.customer_email or f"customer {invoice.user_id}")
    page.skip(6)

    page.set_font(_BOLD, 10)
    page.row(
        [
            _Cell(width, title, right_aligned=index > 0, rule="below")
            for index, (title, width) in enumerate(_COLUMNS)
        ]
    )
    page.set_font(_REGULAR, 10)
    product, quantity, unit_price, subtotal = (width for _, width in _COLUMNS)
    for item in invoice.lines:
        page.row(
            [
                _Cell(product, item.product_name),
                _Cell(quantity, str(item.quantity), right_aligned=True),
                _Cell(
                    unit_price, format_amount(item.unit_price, invoice.currency), right_aligned=True
                ),
                _Cell(subtotal, format_amount(item.subtotal, invoice.currency), right_aligned=True),
            ]
        )
    page.set_font(_BOLD, 11)
    total = format_amount(invoice.total, invoice.currency)
    page.row(
        [
            _Cell(product + quantity + unit_price, "Total", right_aligned=True, rule="above"),
            _Cell(subtotal, total, right_aligned=True, rule="above"),
        ]
    )

    if invoice.refunded_at is not None and invoice.refund_amount is not None:
        page.skip(6)
        page.set_font(_BOLD, 11)
        page.line(
            f"Refunded on {invoice.refunded_at.date().isoformat()}: "
            f"{format_amount(invoice.refund_amount, invoice.currency)}"
        )
        page.set_font(_REGULAR, 10)
        page.line("The order was cancelled and its payment refunded in full.")
    return page.document(
        title=f"Invoice {invoice.display_number}", author=seller.name, created=invoice.issued_at
    )


class _Layout:
    """Text and rules placed from the top of the page down, onto a new page when one is full."""

    def __init__(self) -> None:
        self.pages: list[list[str]] = []
        self.font = _REGULAR
        self.size = 10.0
        self._new_page()

    def set_font(self, font: _Font, size: float) -> None:
        self.font, self.size = font, size

    def width(self, text: str) -> float:
        """How wide ``text`` prints in the current font, in mm."""
        glyphs = sum(map(self.font.widths.__getitem__, _printable(text)))
        return glyphs * self.size / 1000 / _POINTS_PER_MM

    def line(self, text: str) -> None:
        """``text`` across the page, wrapped at spaces onto more lines when it is too wide."""
        for piece in self._wrapped(_printable(text).decode("latin-1")):
            self.row([_Cell(_USABLE_WIDTH, piece)], _LINE_HEIGHT)

    def row(self, cells: Sequence[_Cell], height: float = _ROW_HEIGHT) -> None:
        """``cells`` side by side from the left margin; a text too wide for its cell is cut short
        rather than printed over the next one."""
        if self.y + height > _PAGE_HEIGHT - _MARGIN:
            self._new_page()
        # Vertically centred as a reader expects: the baseline a third of the size below the
        # row's middle.
        baseline = self.y + height / 2 + 0.3 * self.size / _POINTS_PER_MM
        x = _MARGIN
        for cell in cells:
            text = self._fitted(_printable(cell.text).decode("latin-1"), cell.width - 2 * _PADDING)
            left = x + cell.width - _PADDING - self.width(text) if cell.right_aligned else x
            self._text(left + (0 if cell.right_aligned else _PADDING), baseline, text)
            if cell.rule:
                rule_y = self.y if cell.rule == "above" else self.y + height
                self._rule(x, x + cell.width, rule_y)
            x += cell.width
        self.y += height

    def skip(self, height: float) -> None:
        self.y += height

    def document(self, *, title: str, author: str, created: datetime) -> bytes:
        return _pdf(
            [_content(page) for page in self.pages],
            {
                "Title": title,
                "Author": author,
                "Creator": "Conveyor",
                "CreationDate": f"D:{created.astimezone(UTC):%Y%m%d%H%M%S}Z",
            },
        )

    def _new_page(self) -> None:
        self.pages.append([f"{_points(_RULE_WIDTH)} w"])
        self.y = _MARGIN

    def _text(self, x: float, baseline: float, text: str) -> None:
        self.pages[-1].append(
            f"BT /{self.font.resource} {self.size:g} Tf {_points(x)} "
            f"{_points(_PAGE_HEIGHT - baseline)} Td {_string(text)} Tj ET"
        )

    def _rule(self, x1: float, x2: float, y: float) -> None:
        height = _points(_PAGE_HEIGHT - y)
        self.pages[-1].append(f"{_points(x1)} {height} m {_points(x2)} {height} l S")

    def _wrapped(self, text: str) -> list[str]:
        room = _USABLE_WIDTH - 2 * _PADDING
        if self.width(text) <= room:
            return [text]
        lines: list[str] = []
        current = ""
        for word in text.split(" "):
            joined = f"{current} {word}" if current else word
            if self.width(joined) <= room:
                current = joined
                continue
            if current:
                lines.append(current)
            # A word wider than a whole line alone is cut where the line ends.
            while len(word) > 1 and self.width(word) > room:
                cut = max(1, self._leading_fit(word, room))
                lines.append(word[:cut])
                word = word[cut:]
            current = word
        lines.append(current)
        return lines

    def _fitted(self, text: str, room: float) -> str:
        if self.width(text) <= room:
            return text
        return text[: max(1, self._leading_fit(text, room - self.width("...")))] + "..."

    def _leading_fit(self, text: str, room: float) -> int:
        """How many of ``text``'s first characters fit in ``room`` (one pass: names run to
        200 characters, and trying shorter and shorter prefixes took 160 ms for an invoice
        of 100 such lines)."""
        widths = self.font.widths
        budget = room * _POINTS_PER_MM * 1000 / self.size
        used = 0
        # Latin-1 with "?" for the rest: one byte per character, so indexes agree.
        for index, glyph in enumerate(_printable(text)):
            used += widths[glyph]
            if used > budget:
                return index
        return len(text)


def _printable(text: str) -> bytes:
    """``text`` as the bytes the built-in fonts print: Latin-1, anything else as "?"."""
    raw = text.encode("latin-1", "replace")
    # Latin-1's control characters (0-31, 127-159) are no glyph of WinAnsiEncoding's.
    return raw.translate(_CONTROLS_AS_QUESTION_MARKS)


_CONTROLS_AS_QUESTION_MARKS = bytes(
    ord("?") if code < 32 or 127 <= code < 160 else code for code in range(256)
)


def _points(millimetres: float) -> str:
    return f"{millimetres * _POINTS_PER_MM:.2f}"


def _string(text: str) -> str:
    """A PDF literal string of ``text`` (already printable)."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return f"({escaped})"


def _content(operations: list[str]) -> bytes:
    return "\n".join(operations).encode("latin-1")


def _pdf(contents: list[bytes], info: dict[str, str]) -> bytes:
    """A PDF 1.4 file of one page per content stream, its objects numbered as laid out:
    1 catalog, 2 page tree, 3-4 fonts, 5 document information, then each page and its content."""
    first_page = 6
    page_refs = " ".join(f"{first_page + 2 * index} 0 R" for index in range(len(contents)))
    width, height = _points(_PAGE_WIDTH), _points(_PAGE_HEIGHT)
    fonts = " ".join(
        f"/{font.resource} {3 + index} 0 R" for index, font in enumerate((_REGULAR, _BOLD))
    )
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        (
            f"<< /Type /Pages /Kids [{page_refs}] /Count {len(contents)} "
            f"/MediaBox [0 0 {width} {height}] /Resources << /Font << {fonts} >> >> >>"
        ).encode(),
        *(
            f"<< /Type /Font /Subtype /Type1 /BaseFont /{font.base_font} "
            "/Encoding /WinAnsiEncoding >>".encode()
            for font in (_REGULAR, _BOLD)
        ),
        (
            "<< "
            + " ".join(
                f"/{key} {_string(_printable(value).decode('latin-1'))}"
                for key, value in info.items()
            )
            + " >>"
        ).encode("latin-1"),
    ]
    for index, content in enumerate(contents):
        compressed = zlib.compress(content)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /Contents {first_page + 2 * index + 1} 0 R >>".encode()
        )
        objects.append(
            f"<< /Length {len(compressed)} /Filter /FlateDecode >>\nstream\n".encode()
            + compressed
            + b"\nendstream"
        )

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    table_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 5 0 R >>\n"
        f"startxref\n{table_at}\n%%EOF\n"
    ).encode()
    return bytes(out)
