"""The domain's errors: a small hierarchy every layer above can catch as one."""


class DomainError(Exception):
    """Something in Conveyor's own language is wrong: a message, a topic, a transition."""


class UndecodableMessage(DomainError):
    """Bytes read from a topic are not a valid Conveyor message; ``reason`` says why.

    Processors route such records to the topic's dead-letter topic instead of stopping.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MessageNotAllowedOnTopic(DomainError):
    """A message was about to be written to a topic that does not declare its type."""
