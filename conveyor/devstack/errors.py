"""What can go wrong while running the local stack; each message says what to do next."""


class DevStackError(Exception):
    """The local stack could not do what was asked."""


class PrerequisiteMissing(DevStackError):
    """A tool the stack needs (Java, Maven, a wheel) is not on this machine."""


class ServiceDidNotStart(DevStackError):
    """A service was started but never became healthy; the message carries its log tail."""
