"""How the edge runs; each field comes from ``CONVEYOR_<FIELD>`` in the environment."""

from __future__ import annotations

import ipaddress
import os
import re
from functools import lru_cache
from pathlib import Path

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import SettingsConfigDict

from conveyor.api.errors import Unprocessable, validation_message
from conveyor.api.signing_keys import HOW_TO_MAKE_ONE, new_signing_key_pem, read_signing_keys
from conveyor.api.storefront import default_web_dir
from conveyor.api.strength import check_strength
from conveyor.domain.rest import MIN_PASSWORD_LENGTH
from conveyor.infra.settings import RetentionSettings

# A key for one process's life: its tokens stop working when it restarts. Only the dev stack
# may run on it (`conveyor api` hands it to its workers); anywhere else the edge refuses to
# start without CONVEYOR_JWT_SIGNING_KEYS.
_EPHEMERAL_KEY = new_signing_key_pem()
# Words of the example values in the manifests and the README, letters only: a first admin
# must not keep them.
_PLACEHOLDER_PASSWORD_WORDS = ("replacewith", "changeme", "passphraseofyourown")


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity, which taskset and cpusets narrow.

    A CPU quota (``docker run --cpus``, a Kubernetes CPU limit) does not narrow it; set
    CONVEYOR_API_WORKERS under one.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS has no affinity call
        return os.cpu_count() or 1


class SettingsRefused(Exception):
    """The edge's settings are invalid or unsafe; the message names each and what to do."""


class ApiSettings(RetentionSettings):
    # Secrets are checked here: an error must never repeat the value it refuses.
    model_config = SettingsConfigDict(
        env_prefix="CONVEYOR_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    # A developer's machine (`conveyor dev up` sets it; a deployment never does): the edge may
    # start without signing keys, on a key of its own that dies with it, and with a weak first
    # admin password. Anywhere else it refuses to start with either.
    dev_stack: bool = False

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=18000, ge=0, le=65535)
    # uvicorn worker processes of `conveyor api`: one per CPU, so one edge uses the machine.
    api_workers: int = Field(default_factory=usable_cpus, ge=1)
    # PostgreSQL connections each worker process keeps at most. An edge holds this times its
    # workers times its replicas, which must fit in the server's max_connections beside the
    # processors' (docs/edge.md): the autoscaler adds replicas exactly when load is highest.
    database_pool_size: int = Field(default=20, ge=2)

    # Ed25519 private keys in PEM, one after another: the first signs access tokens, each
    # after it only verifies them, so tokens signed before a rotation live out their time.
    # Every worker and replica must have the same (docs/accounts.md).
    jwt_signing_keys: SecretStr = SecretStr(_EPHEMERAL_KEY)
    # Replaced by jwt_signing_keys; read only to refuse it with what to do instead.
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "conveyor"
    jwt_audience: str = "conveyor-api"
    access_token_seconds: int = Field(default=900, ge=30)
    refresh_token_seconds: int = Field(default=14 * 24 * 3600, ge=60)
    # The longest a login lasts from its sign-in, however often it is refreshed: a stolen
    # refresh token kept fresh by rotation still dies by then. No refresh token outlives it.
    session_max_seconds: int = Field(default=30 * 24 * 3600, ge=1)

    admin_email: str | None = None
    admin_password: SecretStr | None = None

    # Requests per minute, per authenticated user and per client address; the auth routes
    # have their own, tighter budget per address because they are where passwords are guessed.
    rate_limit_user_per_minute: int = Field(default=1200, ge=1)
    rate_limit_address_per_minute: int = Field(default=2400, ge=1)
    rate_limit_auth_per_minute: int = Field(default=60, ge=1)
    # Attempts per minute at one account's password while signed in (changing it), from any
    # address: what someone holding a stolen access token may guess at.
    rate_limit_account_per_minute: int = Field(default=10, ge=1)
    # Account e-mails (verification again, password reset) asked for one address a minute,
    # whoever asks: bounds the mail anyone can make Conveyor send to someone else's inbox.
    rate_limit_account_emails_per_minute: int = Field(default=3, ge=1)

    # How long the code in an account e-mail works: long enough for a verification e-mail to
    # be read the next day, short for a password reset, whose code opens the account.
    verification_token_seconds: int = Field(default=48 * 3600, ge=60)
    password_reset_token_seconds: int = Field(default=30 * 60, ge=60)
    # The shop's address as shoppers reach it (https://shop.example.com): account e-mails link
    # to its pages with their code. Set, never taken from a request's Host header, which
    # whoever asks for a password reset chooses. Unset, the e-mails carry the code alone.
    public_url: AnyHttpUrl | None = None
    # Whether only accounts with a verified address may place orders (403 otherwise). Either
    # way an order's e-mails go only to a verified address. On by default; `make run` and the
    # tests' shared edge turn it off.
    require_verified_email: bool = True

    # Password hashing (argon2id; docs/accounts.md). The cost of one hash or check: its memory
    # in KiB, its passes over that memory, and its lanes (threads). argon2-cffi's defaults,
    # RFC 9106's second recommended set. A hash made with other costs still verifies (the
    # costs are part of it) and is made anew with these at the account's next login.
    password_hash_memory_kib: int = Field(default=64 * 1024, ge=8 * 1024)
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_parallelism: int = Field(default=4, ge=1, le=64)
    # The memory one worker process may spend on hashes at once: as many hashes run side by
    # side as fit in it, and the rest wait their turn. A worker's memory peaks this far above
    # its idle size, whatever the number of logins arriving at once.
    password_hashing_budget_mib: int = Field(default=128, ge=8)
    # The least zxcvbn score (0 to 4) a new password must have: 3 is "safely unguessable:
    # moderate protection from an offline slow-hash attack", what argon2 is for.
    password_min_score: int = Field(default=3, ge=0, le=4)
    # Failed logins per account (keyed by its e-mail address, known or not; docs/accounts.md):
    # after this many attempts in a row without success, each further attempt must wait a
    # delay, this long after the first and doubling each time up to the most; an account with
    # no attempt for the last period starts again from nothing, and a success clears it.
    login_attempts_before_delay: int = Field(default=5, ge=1)
    login_delay_first_seconds: int = Field(default=2, ge=1)
    login_delay_max_seconds: int = Field(default=900, ge=1)
    login_attempts_forgotten_after_seconds: int = Field(default=3600, ge=1)
    # Addresses and networks (CIDR) of the proxies in front of the edge, an ingress or a load
    # balancer, whose X-Forwarded-For names the client. From any other peer the header is
    # ignored: a client must not choose the address its rate limit is counted against.
    trusted_proxies: list[str] = Field(default_factory=list)
    # How long the edge waits for Redis to accept a connection, and to answer a command,
    # before counting it unreachable (rate limits then fall back: docs/edge.md). A
    # command is tried twice, so a silent Redis holds a request about twice this.
    redis_connect_timeout_seconds: float = Field(default=0.5, gt=0, le=30)
    redis_timeout_seconds: float = Field(default=0.5, gt=0, le=30)

    # The built web storefront and admin console served under / (docs/web.md): by default
    # the repository's web/dist (`make web` builds it). Without a bundle there the edge still
    # runs, and / says how to build one.
    web_dir: Path = Field(default_factory=default_web_dir)

    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    cors_origins: list[str] = Field(default_factory=list)
    # How long POST /orders waits for Kafka to acknowledge before answering 503.
    kafka_send_timeout_seconds: float = Field(default=10.0, gt=0)
    # An order the edge recorded but could not announce (it died during the send) is
    # withdrawn once this old: longer than any send may take, so a live request never
    # loses its order to the sweep.
    withdraw_unannounced_after_seconds: float = Field(default=120.0, gt=0)
    retry_after_seconds: int = Field(default=5, ge=1)
    # Requests one worker process answers at once; one more is answered 503 with Retry-After
    # at once rather than queued (probes and /metrics are never refused, long polls are not
    # counted while they wait). A cheap request takes the edge about 0.5 ms of CPU (an
    # estimate), so behind 200 in flight a new one may wait about 100 ms: half the 200 ms
    # objective, leaving the other half for PostgreSQL and Kafka.
    max_requests_in_flight: int = Field(default=200, ge=1)
    # Orders one account may have pending at once: one account cannot hold scarce stock
    # behind slow payments. Counted from the orders the edge recorded, so an order accepted
    # a moment ago counts before the projector has seen it.
    max_pending_orders_per_user: int = Field(default=10, ge=1)
    # Long polls (GET /orders/{id}?wait=) one user may have waiting at once on one worker
    # process: each holds a connection and a subscriber of that worker while it waits.
    max_waits_per_user: int = Field(default=5, ge=1)
    # How stale an edge worker's answers may be (0 keeps nothing): a catalog page, a search
    # or a product with its price and stock; and whether a login is still live and its
    # account active and in its role (a logout or a disabled account is refused within this
    # on every worker, at once on the worker that handled it). See docs/edge.md.
    catalog_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    session_cache_seconds: float = Field(default=5.0, ge=0, le=60)

    @property
    def uses_ephemeral_key(self) -> bool:
        return self.jwt_signing_keys.get_secret_value() == _EPHEMERAL_KEY

    @model_validator(mode="after")
    def _periods_outlast_what_they_must(self) -> ApiSettings:
        _must_outlast(
            self,
            "withdraw_unannounced_after_seconds",
            "kafka_send_timeout_seconds",
            "or an order still being sent could be withdrawn",
        )
        _must_outlast(
            self,
            "login_attempts_forgotten_after_seconds",
            "login_delay_max_seconds",
            "or an account's attempts would be forgotten while it waits out its delay and its "
            "delays would never grow",
        )
        return self

    @property
    def password_hashes_at_once(self) -> int:
        """How many hashes one worker runs side by side within its hashing budget."""
        return self.password_hashing_budget_mib * 1024 // self.password_hash_memory_kib

    @model_validator(mode="after")
    def _one_hash_fits_the_budget(self) -> ApiSettings:
        if self.password_hashes_at_once < 1:
            raise ValueError(
                "CONVEYOR_PASSWORD_HASHING_BUDGET_MIB must hold at least one hash of "
                "CONVEYOR_PASSWORD_HASH_MEMORY_KIB: raise the budget or lower the hash's memory"
            )
        return self

    @model_validator(mode="after")
    def _safe_outside_the_dev_stack(self) -> ApiSettings:
        if self.dev_stack:
            return self
        if self.uses_ephemeral_key:
            raise ValueError(
                "CONVEYOR_JWT_SIGNING_KEYS is not set, and outside the dev stack every worker "
                f"and replica must sign with the same key: {HOW_TO_MAKE_ONE} and set its PEM "
                "(CONVEYOR_DEV_STACK=true runs on a key of the process's own, on a developer's "
                "machine only)"
            )
        if self.admin_password is not None:
            _refuse_weak_admin_password(
                self.admin_password.get_secret_value(), self.admin_email, self.password_min_score
            )
        return self

    @field_validator("jwt_signing_keys")
    @classmethod
    def _readable(cls, keys: SecretStr) -> SecretStr:
        read_signing_keys(keys.get_secret_value())
        return keys

    @field_validator("jwt_secret")
    @classmethod
    def _replaced(cls, secret: SecretStr | None) -> None:
        if secret is not None:
            raise ValueError(
                "CONVEYOR_JWT_SECRET is no longer read: access tokens are signed with Ed25519 "
                f"keys from CONVEYOR_JWT_SIGNING_KEYS; {HOW_TO_MAKE_ONE}, set its PEM there "
                "and unset CONVEYOR_JWT_SECRET (tokens signed with the secret end; their "
                "holders refresh or sign in again)"
            )

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy)
            except ValueError as error:
                raise ValueError(
                    f"CONVEYOR_TRUSTED_PROXIES: {proxy!r} is not an IP address or a network "
                    "(CIDR, with no host bits set)"
                ) from error
        return proxies


def _refuse_weak_admin_password(password: str, email: str | None, min_score: int) -> None:
    letters = re.sub("[^a-z]", "", password.lower())
    if any(word in letters for word in _PLACEHOLDER_PASSWORD_WORDS):
        raise ValueError(
            "CONVEYOR_ADMIN_PASSWORD is still the example's placeholder; set a long pass "
            "phrase of your own"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(
            f"CONVEYOR_ADMIN_PASSWORD is too short for the first admin; set a pass phrase of "
            f"{MIN_PASSWORD_LENGTH} characters or more"
        )
    try:
        check_strength(password, email or "", "Administrator", min_score)
    except Unprocessable as weak:
        raise ValueError(
            f"CONVEYOR_ADMIN_PASSWORD is too weak for the first admin ({weak.detail}); set a "
            "long pass phrase of your own"
        ) from weak


def _explained(issue: ErrorDetails) -> str:
    if issue["type"] == "value_error":
        return validation_message(issue)  # the validators above name their settings
    variable = "CONVEYOR_" + "_".join(str(part) for part in issue["loc"]).upper()
    return f"{variable}: {validation_message(issue)}"


def _must_outlast(settings: ApiSettings, longer: str, shorter: str, or_else: str) -> None:
    if getattr(settings, longer) <= getattr(settings, shorter):
        raise ValueError(
            f"CONVEYOR_{longer.upper()} must exceed CONVEYOR_{shorter.upper()}, {or_else}"
        )


@lru_cache
def get_settings() -> ApiSettings:
    """The edge's settings from the environment; SettingsRefused says what is wrong."""
    try:
        return ApiSettings()
    except ValidationError as error:
        raise SettingsRefused("; ".join(_explained(issue) for issue in error.errors())) from None
