"""Money as the contract writes it: exact decimals with two places, sent as strings ("19.99")."""

from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field, PlainSerializer

CENT = Decimal("0.01")


def _exactly_cents(amount: Decimal) -> Decimal:
    if amount != amount.quantize(CENT):
        raise ValueError("an amount has at most two decimal places")
    return amount.quantize(CENT)


Amount = Annotated[
    Decimal,
    Field(ge=0, max_digits=12, allow_inf_nan=False),
    AfterValidator(_exactly_cents),
    # A string keeps every cent exact in JSON, where numbers are binary floats.
    PlainSerializer(lambda amount: f"{amount:.2f}", return_type=str, when_used="json"),
]

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR")]


def format_amount(amount: Decimal, currency: str) -> str:
    """An amount as a person reads it: thousands grouped, two places, the currency after it
    ("1,234.50 EUR"); the code rather than a symbol, which not every currency or font has."""
    return f"{amount.quantize(CENT):,.2f} {currency.strip()}"
