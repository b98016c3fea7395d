"""Errors raised when an outside service cannot do what Conveyor asked of it.

Third-party exceptions are wrapped here, at the boundary, so callers handle one hierarchy.
"""


class InfraError(Exception):
    """An outside service (Kafka, PostgreSQL, Redis) failed or is unreachable."""


class ServiceSettingsRefused(InfraError):
    """The settings saying where the outside services are, and how to reach them, do not
    hold together; the message names the setting and what to do."""


class KafkaUnavailable(InfraError):
    """No Kafka broker answered, or it refused what was asked."""


class MigrationError(InfraError):
    """The schema could not be brought up to date; the message says what to do."""


class TopicRefused(InfraError):
    """Kafka refused a change to a topic (bad config, shrinking partitions, ...); the message
    is Kafka's own reason."""


class TopicsMissing(InfraError):
    """Topics a processor needs, and must not create itself, are absent or too small; the
    message names them."""


class DeadLetterNotFound(InfraError):
    """The dead-letter topic, or the dead letter asked for, is not in Kafka; the message
    says which exist."""


class NoInvoice(InfraError):
    """The order has no invoice and is not to get one now: it is unknown to the database,
    not confirmed (yet), or was cancelled before it was confirmed. ``status`` is the order's
    status in the database (None: no row); the message says which."""

    def __init__(self, message: str, status: str | None) -> None:
        super().__init__(message)
        self.status = status
