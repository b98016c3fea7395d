"""Passwords: argon2id hashes within a memory budget, and a new password's strength (zxcvbn).

argon2id is memory-hard on purpose: each hash and each check holds its whole memory cost
(64 MiB by default) while it runs. A worker therefore runs at most as many of them at once as
fit in CONVEYOR_PASSWORD_HASHING_BUDGET_MIB, on threads of its own; the logins beyond wait
their turn holding only their request. Before, each login took a thread of the default pool
(six on two CPUs) and its 64 MiB as it arrived: 200 logins at once lifted a worker from 89 MB
to 459 MB. More hashes side by side than CPUs would not answer the logins sooner anyway.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from conveyor.api import strength
from conveyor.api.settings import ApiSettings

T = TypeVar("T")


class Passwords:
    """One worker's password work: hashing and checking within its memory budget, and
    judging new passwords. ``start`` before use, ``close`` at the end."""

    def __init__(self, settings: ApiSettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.password_hash_time_cost,
            memory_cost=settings.password_hash_memory_kib,
            parallelism=settings.password_hash_parallelism,
            type=Type.ID,
        )
        self._hashing = ThreadPoolExecutor(
            settings.password_hashes_at_once, thread_name_prefix="password-hashing"
        )
        # One thread: zxcvbn keeps the account's details for a judgement in a module global.
        self._judging = ThreadPoolExecutor(1, thread_name_prefix="password-strength")
        self._min_score = settings.password_min_score
        self._dummy_hash = ""

    async def start(self) -> None:
        # Checked against when the e-mail is unknown, so a login takes as long either way and
        # does not tell an attacker which addresses have accounts.
        self._dummy_hash = await self.hash(secrets.token_urlsafe(16))

    def close(self) -> None:
        self._hashing.shutdown(wait=False, cancel_futures=True)
        self._judging.shutdown(wait=False, cancel_futures=True)

    async def hash(self, password: str) -> str:
        return await _on(self._hashing, self._hasher.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Whether ``password`` is the one ``password_hash`` was made of; None (no such
        account) takes as long and is never right."""

        def verify() -> bool:
            try:
                return self._hasher.verify(password_hash or self._dummy_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await _on(self._hashing, verify) and password_hash is not None

    async def upgraded(self, password: str, password_hash: str) -> str | None:
        """A hash of ``password`` with the current costs, when ``password_hash`` (which it
        verified against) was made with others; None when it is current."""
        if not self._hasher.check_needs_rehash(password_hash):
            return None
        return await self.hash(password)

    async def check_strength(self, password: str, email: str, name: str) -> None:
        """``strength.check_strength`` on this worker's judging thread: zxcvbn takes up to
        tens of milliseconds of CPU, off the event loop."""
        await _on(self._judging, strength.check_strength, password, email, name, self._min_score)


async def _on(executor: ThreadPoolExecutor, work: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(executor, work, *args)
