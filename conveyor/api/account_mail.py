"""Account e-mails (address verification, password reset): what they say, and the sender that
hands them to the mail server (SMTP_URL).

The e-mails wait in a PostgreSQL outbox (``conveyor.api.data.account_emails``), written in the
transaction that made their code. Each edge worker runs one ``AccountMailSender``: a request
that wrote an e-mail wakes its own worker's sender, so the e-mail leaves at once, and every
sender also looks every ``POLL_SECONDS`` for e-mails left to anyone: those due again after a
failed try, and those whose sender stopped mid-send. A sender claims a batch for a while
(``FOR UPDATE SKIP LOCKED``), so senders side by side never take the same e-mail, and one that
stops leaves its batch to the others once the claim lapses.

An e-mail is deleted once the server accepted it. A sender that stops between the two leaves
it to be sent again, with the same Message-ID, which mail clients show once. A failed try is
tried again later and later until the code expires; then the e-mail is dropped (it would be
of no use) and counted as expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from email.message import Message
from urllib.parse import urlencode

import asyncpg

from conveyor.api import metrics
from conveyor.api.data import account_emails
from conveyor.api.data.account_emails import PendingEmail, Purpose
from conveyor.infra.mail import Mailer, compose

SENDER = "Conveyor <accounts@conveyor.local>"
POLL_SECONDS = 5.0
BATCH = 20
# Longer than a batch's sends may take (each ends within the mailer's timeout), so no live
# sender's e-mail is taken by another.
MAILER_TIMEOUT_SECONDS = 10.0
CLAIM = timedelta(seconds=BATCH * MAILER_TIMEOUT_SECONDS + 60)
# The waits after each failed try; the last repeats until the code expires.
RETRY_DELAYS = tuple(timedelta(seconds=s) for s in (5, 30, 120, 600))
PRUNE_EVERY_SECONDS = 60.0
PRUNE_BATCH = 1000
# An expired code is kept this long, so one sent late is told it expired, not that it is unknown.
CODES_KEPT_AFTER_EXPIRY = timedelta(days=1)
log = logging.getLogger("conveyor.api")

_SUBJECTS = {
    Purpose.VERIFY_EMAIL: "Confirm your e-mail address",
    Purpose.RESET_PASSWORD: "Reset your password",
}
_BODIES = {
    Purpose.VERIFY_EMAIL: """Hello {name},

please confirm that {recipient} is your e-mail address, so that Conveyor may write to you
about your orders.

{how}

It works once, until {deadline}.

If you did not open an account with Conveyor, ignore this e-mail.
""",
    Purpose.RESET_PASSWORD: """Hello {name},

someone, we hope you, asked to reset the password of your Conveyor account ({recipient}).

{how}

It works once, until {deadline}; every login of the account ends when it is used.

If you did not ask, ignore this e-mail: your password stays as it is.
""",
}
# Where the shop's pages for each purpose are, and what to do there.
_PAGES = {
    Purpose.VERIFY_EMAIL: ("/verify", "Confirm it by opening this link"),
    Purpose.RESET_PASSWORD: ("/reset-password", "Choose a new password by opening this link"),
}
# Without the shop's address: the code, and the API call to send it with.
_API_CALLS = {
    Purpose.VERIFY_EMAIL: 'Send it to POST /api/v1/auth/verify as {"token": "<your code>"}.',
    Purpose.RESET_PASSWORD: "Send it with your new password to POST "
    '/api/v1/auth/password-reset/confirm as {"token": "<your code>", "new_password": "..."}.',
}
# Lines may end in CRLF, as mail travels.
_CODE = re.compile(r"^Your code: ([A-Za-z0-9_-]+)\r?$", re.MULTILINE)


def message(email: PendingEmail, public_url: str | None) -> Message:
    """The e-mail; its Message-ID is the outbox row's, the same on every try. With the shop's
    ``public_url`` it links to the shop's page for it, the code in the link; the code is
    given on a line of its own either way, for a client that is not a browser."""
    if public_url is None:
        how = f"Your code: {email.token}\n\n{_API_CALLS[email.purpose]}"
    else:
        path, what = _PAGES[email.purpose]
        link = f"{public_url.rstrip('/')}{path}?{urlencode({'token': email.token})}"
        how = f"{what}:\n\n{link}\n\nYour code: {email.token}"
    body = _BODIES[email.purpose].format(
        name=email.name,
        recipient=email.recipient,
        how=how,
        deadline=email.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    return compose(email.id, SENDER, email.recipient, _SUBJECTS[email.purpose], body)


def code_in(body: str) -> str | None:
    """The code an account e-mail's body carries (for whoever reads the mail by program)."""
    found = _CODE.search(body)
    return None if found is None else found.group(1)


def retry_delay(failed_tries: int) -> timedelta:
    return RETRY_DELAYS[min(failed_tries, len(RETRY_DELAYS) - 1)]


class AccountMailSender:
    """One edge worker's sender: ``run`` until cancelled; ``wake`` when an e-mail was written."""

    def __init__(self, pool: asyncpg.Pool, smtp_url: str, public_url: str | None) -> None:
        self._pool = pool
        self._public_url = public_url
        self._mailer = Mailer(smtp_url, metrics.SMTP_CONNECTIONS, MAILER_TIMEOUT_SECONDS)
        self._due = asyncio.Event()

    def wake(self) -> None:
        self._due.set()

    async def run(self) -> None:
        next_prune = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), POLL_SECONDS)
            # Cleared before looking, so an e-mail written meanwhile wakes the next round.
            self._due.clear()
            try:
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                    await self._prune()
                while await self._send_due() == BATCH:
                    pass
            except Exception:
                # Whatever failed (the database, most likely), the e-mails wait in the outbox:
                # the sender must live on to send them.
                log.exception("account e-mails not sent this round; trying again shortly")

    async def close(self) -> None:
        await self._mailer.close()

    async def _send_due(self) -> int:
        """Send one batch of due e-mails; returns how many were claimed."""
        claimed = await account_emails.claim_due(self._pool, BATCH, CLAIM)
        sent = []
        try:
            for email in claimed:
                try:
                    await self._mailer.send(message(email, self._public_url))
                except Exception as exc:  # any failure: this e-mail is tried again later
                    metrics.ACCOUNT_EMAILS.labels(email.purpose.value, "failed").inc()
                    delay = retry_delay(email.attempts)
                    log.warning(
                        "an account e-mail was not sent (%r); trying again in %s", exc, delay
                    )
                    await account_emails.retry_later(self._pool, email.id, delay, repr(exc))
                else:
                    metrics.ACCOUNT_EMAILS.labels(email.purpose.value, "sent").inc()
                    sent.append(email.id)
        finally:
            # Also when a database call failed: what the server accepted is not sent again.
            if sent:
                await account_emails.delete_sent(self._pool, sent)
        return len(claimed)

    async def _prune(self) -> None:
        expired = await account_emails.delete_expired(
            self._pool, datetime.now(UTC) - CODES_KEPT_AFTER_EXPIRY, PRUNE_BATCH
        )
        for purpose, count in expired.items():
            metrics.ACCOUNT_EMAILS.labels(purpose.value, "expired").inc(count)
            log.warning(
                "dropped %d %s e-mails whose code expired before they were sent", count, purpose
            )
