"""Failed logins per account: after a few in a row, each further attempt waits a growing delay.

The per-address budget on ``/auth`` stops one client guessing fast; this stops many clients
guessing one account's password. After CONVEYOR_LOGIN_ATTEMPTS_BEFORE_DELAY attempts in a row
without success, the account's next attempt must wait CONVEYOR_LOGIN_DELAY_FIRST_SECONDS, the
one after twice that, and so on up to CONVEYOR_LOGIN_DELAY_MAX_SECONDS; an attempt made too
early is answered 429 with ``Retry-After`` and is not counted. A success clears the count, and
an account with no attempt for CONVEYOR_LOGIN_ATTEMPTS_FORGOTTEN_AFTER_SECONDS starts again
from nothing: the real owner is slowed down, never locked out for good.

Counted in Redis, so every worker and replica shares one count, under a SHA-256 of the
lowercased e-mail address whether or not an account has it: an unknown address is slowed
down exactly like a known one, so the answers do not tell which addresses have accounts.

An attempt is counted as it begins, before its password is checked, by one script that also
decides whether it may go ahead: guesses sent at once get no more tries than guesses sent one
after another. When Redis is unreachable the attempt is let through, counted as unchecked in
``conveyor_rate_limit_decisions_total{scope="failed_logins"}``; the per-address budget still holds.
"""

from __future__ import annotations

import logging
import math

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from conveyor.api import metrics, security
from conveyor.api.errors import TooManyRequests
from conveyor.api.settings import ApiSettings
from conveyor.infra.readmodel import PREFIX

SCOPE = "failed_logins"
log = logging.getLogger("conveyor.api")

# KEYS: the account's count of attempts, and its wait. ARGV: attempts before a delay, the
# first delay, the longest, how long the count outlives the last attempt (seconds). Answers
# the milliseconds left to wait, or 0 when the attempt may go ahead (and is then counted).
_ATTEMPT = """
local waiting = redis.call('PTTL', KEYS[2])
if waiting > 0 then
  return waiting
end
local attempts = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local beyond = attempts - tonumber(ARGV[1])
if beyond >= 0 then
  local delay = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ math.min(beyond, 62))
  redis.call('SET', KEYS[2], '1', 'EX', math.floor(delay))
end
return 0
"""


class LoginThrottle:
    def __init__(self, cache: aioredis.Redis, settings: ApiSettings) -> None:
        self._cache = cache
        self._attempt = cache.register_script(_ATTEMPT)
        self._limits = (
            settings.login_attempts_before_delay,
            settings.login_delay_first_seconds,
            settings.login_delay_max_seconds,
            settings.login_attempts_forgotten_after_seconds,
        )

    async def admit(self, email: str) -> None:
        """Count a login attempt with ``email``; TooManyRequests while its delay runs."""
        try:
            waiting_ms = int(await self._attempt(keys=_keys(email), args=self._limits))
        except RedisError as exc:
            metrics.RATE_LIMIT_DECISIONS.labels(SCOPE, "unchecked").inc()
            log.warning("login throttle unavailable, letting the attempt through: %r", exc)
            return
        if waiting_ms > 0:
            metrics.RATE_LIMIT_DECISIONS.labels(SCOPE, "refused").inc()
            retry_after = math.ceil(waiting_ms / 1000)
            raise TooManyRequests(
                f"too many logins with this e-mail address failed in a row; wait {retry_after} s "
                f"before trying again (each further failure doubles the wait, up to "
                f"{self._limits[2]} s; the right password clears it)",
                retry_after,
            )

    async def succeeded(self, email: str) -> None:
        """The right password came with ``email``: its count starts again from nothing."""
        try:
            await self._cache.delete(*_keys(email))
        except RedisError as exc:
            log.warning("login throttle unavailable, its count not cleared: %r", exc)


def _keys(email: str) -> list[str]:
    account = security.address_digest(email)
    return [f"{PREFIX}:login-attempts:{account}", f"{PREFIX}:login-delay:{account}"]
