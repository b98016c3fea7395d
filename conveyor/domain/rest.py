"""The REST contract's representations: what the edge accepts and answers
(``docs/architecture.md#the-rest-edge``).

Families per resource: ``…Create`` and ``…Update`` are what a client may send (unknown
fields are refused, so a client cannot slip in a price, a role or a status), ``…Public`` is
what the edge answers. Examples feed the OpenAPI document.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from conveyor.domain.messages import OrderStatus, RejectionReason
from conveyor.domain.money import CENT, Amount, Currency


def _storable(text: str) -> str:
    # PostgreSQL text holds neither NUL nor lone surrogates; refuse them here, as a 422.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid Unicode") from exc
    return text


# No control characters: they belong in no name, SKU or address, and NUL cannot be stored.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
# Descriptions and bios may hold line breaks and tabs, but never NUL.
_NO_NUL = r"^[^\x00]*$"
_Storable = AfterValidator(_storable)

Email = Annotated[
    str,
    StringConstraints(
        min_length=3,
        max_length=320,
        pattern=r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$",
    ),
]
MIN_PASSWORD_LENGTH = 10
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
NewPassword = Annotated[str, StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=256)]
_PRICE = re.compile(r"^[0-9]{1,10}(\.[0-9]{1,2})?$")
_PRICE_SCHEMA = {"type": "string", "pattern": _PRICE.pattern, "examples": ["19.99"]}


def _price(value: object) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str) and _PRICE.fullmatch(value):
        return Decimal(value).quantize(CENT)
    raise ValueError('a price is a decimal string with at most two places, like "19.99"')


# What clients send as a price: strictly a decimal string, so no binary float sneaks in.
Price = Annotated[
    Decimal,
    PlainValidator(_price, json_schema_input_type=str),
    PlainSerializer(lambda amount: f"{amount:.2f}", return_type=str, when_used="json"),
    WithJsonSchema(_PRICE_SCHEMA),
]
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=_PRINTABLE), _Storable
]
Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Category = Annotated[str, StringConstraints(max_length=100, pattern=_PRINTABLE), _Storable]
Description = Annotated[str, StringConstraints(max_length=5000, pattern=_NO_NUL), _Storable]
Bio = Annotated[str, StringConstraints(max_length=2000, pattern=_NO_NUL), _Storable]
AvatarUrl = Annotated[str, StringConstraints(max_length=2048, pattern=_PRINTABLE), _Storable]
# An https address with a host: a browser shows it as an image and runs nothing
# (javascript:, data:), nor fetches it in the clear (http:).
_HTTPS_URL = re.compile(
    r"^https://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?([/?#][^\x00-\x20\x7f]*)?$"
)


def _https_url(url: str) -> str:
    if not _HTTPS_URL.fullmatch(url):
        raise ValueError("an avatar URL must be an https:// address with a host name")
    return url


NewAvatarUrl = Annotated[
    str,
    StringConstraints(max_length=2048),
    AfterValidator(_https_url),
    _Storable,
    WithJsonSchema({"type": "string", "maxLength": 2048, "pattern": _HTTPS_URL.pattern}),
]
Location = Annotated[str, StringConstraints(max_length=200, pattern=_PRINTABLE), _Storable]
Phone = Annotated[str, StringConstraints(max_length=40, pattern=_PRINTABLE), _Storable]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every error answer."""

    type: str = Field(examples=["about:blank"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["no order 5f0c… for you"])
    instance: str | None = None
    errors: list[ValidationIssue] | None = None


# -- auth --------------------------------------------------------------------------------


class Registration(_Input):
    email: Email = Field(examples=["ada@example.org"])
    name: Name = Field(examples=["Ada Lovelace"])
    password: NewPassword = Field(
        examples=["correct horse battery staple"],
        description="At least 10 characters and hard to guess (zxcvbn's estimate, judged "
        "on the first 64 characters); passwords containing the e-mail address or the name are "
        "refused.",
    )


class Credentials(_Input):
    email: Email = Field(examples=["ada@example.org"])
    password: Password = Field(examples=["correct horse battery staple"])


class RefreshRequest(_Input):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = Field(
        default=None,
        description="The refresh token. Left out, the one in the `conveyor_refresh` cookie "
        "that signing in set is used (a browser's way: no script of the page can read it).",
    )


# The code an account e-mail carries (URL-safe base64 of 256 random bits).
AccountToken = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
]


class EmailVerification(_Input):
    token: AccountToken = Field(description="The code from the verification e-mail.")


class PasswordResetRequest(_Input):
    email: Email = Field(examples=["ada@example.org"])


class PasswordReset(_Input):
    token: AccountToken = Field(description="The code from the password reset e-mail.")
    new_password: NewPassword = Field(
        examples=["correct horse battery staple"],
        description="At least 10 characters; common passwords and ones containing the "
        "e-mail address or the name are refused.",
    )


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")


# -- users -------------------------------------------------------------------------------


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class UserStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class Profile(BaseModel):
    bio: Bio | None = None
    avatar_url: AvatarUrl | None = Field(default=None, examples=["https://example.org/ada.png"])
    location: Location | None = Field(default=None, examples=["London"])
    phone: Phone | None = Field(default=None, examples=["+44 20 7946 0958"])


class ProfileUpdate(Profile):
    model_config = ConfigDict(extra="forbid")

    # Only a new one is checked: one stored before https was required is still shown.
    avatar_url: NewAvatarUrl | None = Field(default=None, examples=["https://example.org/ada.png"])


class UserPublic(BaseModel):
    id: UUID
    email: str
    email_verified: bool = Field(
        description="Whether the owner proved the address is theirs (POST /auth/verify); "
        "order e-mails go only to a verified address."
    )
    name: str
    role: Role
    status: UserStatus
    profile: Profile
    created_at: datetime
    updated_at: datetime


class SelfUpdate(_Input):
    """What users may change about themselves: never their role or status."""

    name: Name | None = None
    profile: ProfileUpdate | None = None


class UserCreate(Registration):
    role: Role = Role.USER


class UserAdminUpdate(_Input):
    name: Name | None = None
    role: Role | None = None
    status: UserStatus | None = None


class PasswordChange(_Input):
    current_password: Password = Field(examples=["correct horse battery staple"])
    new_password: NewPassword = Field(
        examples=["a new and longer pass phrase"],
        description="At least 10 characters, other than the current one; common passwords "
        "and ones containing the e-mail address or the name are refused.",
    )


class SessionPublic(BaseModel):
    """One of the caller's logins: a sign-in and the tokens refreshed from it since."""

    id: UUID = Field(description="The login's id (the `sid` of its access tokens).")
    created_at: datetime = Field(description="When it signed in.")
    last_used_at: datetime = Field(
        description="When it last signed in or refreshed its tokens; using an access token "
        "is not recorded, so a login in use is at most an access token's life behind."
    )
    user_agent: str | None = Field(
        examples=["Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"],
        description="The User-Agent it signed in with, if any.",
    )
    client_address: str | None = Field(
        examples=["203.0.113.7"], description="The address it signed in from."
    )
    current: bool = Field(description="Whether it is the login of the token that asked.")


# -- catalog -----------------------------------------------------------------------------


class StockLevel(BaseModel):
    available: int = Field(ge=0)


class ProductPublic(BaseModel):
    id: UUID
    sku: str
    name: str
    description: str
    price: Amount
    currency: Currency
    category: str
    stock: StockLevel


class Recommendation(BaseModel):
    product: ProductPublic
    score: float = Field(
        ge=0,
        description="How much the two are bought together: each order counts 1, halving "
        "every CONVEYOR_RECOMMENDATION_HALF_LIFE_SECONDS (as of the latest such order).",
    )


class Recommendations(BaseModel):
    """The products bought together with a product, highest score first."""

    items: list[Recommendation]


class ProductCreate(_Input):
    sku: Sku = Field(examples=["MUG-001"])
    name: Name = Field(examples=["Enamel mug"])
    description: Description = Field(default="", examples=["A sturdy camping mug."])
    price: Price
    currency: Currency = Field(examples=["EUR"])
    category: Category = Field(default="", examples=["kitchen"])
    initial_stock: int = Field(default=0, ge=0, le=1_000_000_000)


class ProductUpdate(_Input):
    name: Name | None = None
    description: Description | None = None
    price: Price | None = None
    category: Category | None = None


class StockAdjustment(_Input):
    delta: int = Field(
        ge=-1_000_000_000,
        le=1_000_000_000,
        examples=[25],
        description="Units to add (positive) or remove (negative); never zero.",
        json_schema_extra={"not": {"const": 0}},
    )

    @model_validator(mode="after")
    def _changes_something(self) -> StockAdjustment:
        if self.delta == 0:
            raise ValueError("delta must not be zero")
        return self


class StockAdjustmentAccepted(BaseModel):
    product_id: UUID
    adjustment_id: UUID
    delta: int


# -- orders ------------------------------------------------------------------------------


class OrderLineRequest(_Input):
    product_id: UUID
    quantity: int = Field(ge=1, le=10_000, examples=[2])


class OrderCreate(_Input):
    items: list[OrderLineRequest] = Field(min_length=1, max_length=100)
    currency: Currency = Field(examples=["EUR"])
    payment_token: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        examples=["tok_visa"],
        description="A token from the payment gateway; in the sandbox tok_visa succeeds, "
        "tok_chargeDeclined is declined and tok_timeout times out.",
    )


class OrderItem(BaseModel):
    product_id: UUID
    quantity: int
    price: Amount
    subtotal: Amount


class OrderPublic(BaseModel):
    id: UUID
    user_id: UUID
    status: OrderStatus
    reason: RejectionReason | None = Field(
        description="Why a rejected order was rejected (null otherwise): out_of_stock, "
        "payment_declined (the card was declined), payment_unavailable (the payment gateway "
        "did not answer), or timed_out (the order's deadline passed before its stock and "
        "payment were settled; nothing is kept or charged)."
    )
    items: list[OrderItem]
    total: Amount
    currency: Currency
    created_at: datetime
    updated_at: datetime


class CancelAccepted(BaseModel):
    order_id: UUID
    status: OrderStatus = Field(description="The order's status when the cancel was accepted.")


# -- notifications -----------------------------------------------------------------------


class NotificationPublic(BaseModel):
    id: UUID
    order_id: UUID
    event: Literal["OrderConfirmed", "OrderRejected", "OrderCancelled"]
    subject: str
    sent_at: datetime


# -- statistics --------------------------------------------------------------------------


class OrdersInMinute(BaseModel):
    minute: datetime = Field(description="The minute's start (UTC).")
    placed: int = Field(ge=0, description="Orders placed in that minute.")


class RejectionCount(BaseModel):
    reason: RejectionReason
    count: int = Field(ge=1)


class OrderStatistics(BaseModel):
    """The orders placed in the last ``minutes``, from the read model: what the admin
    console's operations panel shows."""

    minutes: int = Field(description="The window, in minutes, ending now.")
    since: datetime = Field(description="The window's start.")
    placed: int = Field(ge=0, description="Orders placed in the window.")
    per_minute: list[OrdersInMinute] = Field(
        description="Orders placed per minute, oldest first; a minute with none is left out."
    )
    by_status: dict[OrderStatus, int] = Field(
        description="The window's orders by their status now; a status with none is left out.",
        examples=[{"pending": 2, "confirmed": 40, "rejected": 3}],
    )
    rejections: list[RejectionCount] = Field(
        description="The window's rejected orders by reason, the most frequent first."
    )


# -- operations --------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str] = Field(examples=[{"kafka": "ok", "postgres": "ok", "redis": "ok"}])


class JsonWebKey(BaseModel):
    """An Ed25519 public key that verifies access tokens (RFC 8037)."""

    kty: Literal["OKP"] = "OKP"
    crv: Literal["Ed25519"] = "Ed25519"
    x: str = Field(description="The public key, base64url without padding.")
    kid: str = Field(description="The key's RFC 7638 thumbprint; a token's `kid` header names it.")
    alg: Literal["EdDSA"] = "EdDSA"
    use: Literal["sig"] = "sig"


class JsonWebKeySet(BaseModel):
    """Every key access tokens may be verified with: the one signing now first, then the ones
    that signed tokens which have not expired yet."""

    keys: list[JsonWebKey]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null on the last page."
    )
