"""How table entries are stored: value, expiry and partition in one record, read back whole;
state in an earlier layout is refused with what to do, never misread."""

from __future__ import annotations

import json

import pytest

from conveyor.streams.state import StateFormatError, decode_entry, encode_entry, entry_expiry
from conveyor.streams.stock import Hold, ProductStock


def test_an_entry_reads_back_as_it_was_written() -> None:
    stock = ProductStock(sku="KB-1", name="Keyboard", received=5, available=3, reserved=2)
    raw = encode_entry(stock, 1_800_000_000.5, 4)
    assert decode_entry(ProductStock, raw, "products") == (stock, 1_800_000_000.5, 4)
    assert json.loads(raw)["v"]["available"] == 3
    assert decode_entry(Hold, encode_entry(Hold(state="reserved", quantity=2), None, 0), "holds")[
        1:
    ] == (None, 0)


def test_a_value_that_spells_the_layout_s_own_markers_reads_back_as_written() -> None:
    # A walk reads the expiry and partition from the entry's first bytes; what the value
    # holds, even text shaped like them, must not be taken for them.
    stock = ProductStock(
        sku='{"x": 1, "p": 2', name='Mug, "p": 9, "v": {}}', received=1, available=1
    )
    raw = encode_entry(stock, None, 5)
    assert entry_expiry(raw, "products") == (None, 5)
    assert decode_entry(ProductStock, raw, "products") == (stock, None, 5)


def test_an_entry_in_the_earlier_layout_is_refused_with_what_to_do() -> None:
    legacy = json.dumps({"sku": "KB-1", "name": "Keyboard", "received": 5, "available": 5})
    with pytest.raises(StateFormatError, match="delete its changelog topics"):
        decode_entry(ProductStock, legacy.encode(), "products")


@pytest.mark.parametrize(
    "damaged",
    [
        b'{"x": null, "p": 0}',
        b'{"x": soon, "p": 0, "v": {}}',
        b'{"p": 0, "x": null, "v": {}}',
    ],
)
def test_an_entry_not_in_the_layout_is_refused_not_misread(damaged: bytes) -> None:
    with pytest.raises(StateFormatError):
        entry_expiry(damaged, "products")
