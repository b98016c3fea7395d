"""How table entries are stored: value, expiry and partition in one record, read back whole;
state in an earlier layout is refused with what to do, never misread."""

from __future__ import annotations

import json

import pytest

from conveyor.streams.state import StateFormatError, decode_entry, encode_entry
from conveyor.streams.stock import Hold, ProductStock


def test_an_entry_reads_back_as_it_was_written() -> None:
    stock = ProductStock(sku="KB-1", name="Keyboard", received=5, available=3, reserved=2)
    raw = encode_entry(stock, 1_800_000_000.5, 4)
    assert decode_entry(ProductStock, raw, "products") == (stock, 1_800_000_000.5, 4)
    assert json.loads(raw)["v"]["available"] == 3
    assert decode_entry(Hold, encode_entry(Hold(state="reserved", quantity=2), None, 0), "holds")[
        1:
    ] == (None, 0)


def test_an_entry_in_the_earlier_layout_is_refused_with_what_to_do() -> None:
    legacy = json.dumps({"sku": "KB-1", "name": "Keyboard", "received": 5, "available": 5})
    with pytest.raises(StateFormatError, match="delete its changelog topics"):
        decode_entry(ProductStock, legacy.encode(), "products")
