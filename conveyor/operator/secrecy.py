"""Keeping what the operator reads from Secrets out of its log lines.

The operator's own messages never quote a Secret's value: they name the Secret and its key.
The libraries it hands such a value to do quote it (aiokafka logs every broker it fails to
reach, host and port), so every log handler also gets this filter, which replaces the values
remembered here before a line is written.
"""

from __future__ import annotations

import logging

REDACTED = "<redacted>"


class SecretValues(logging.Filter):
    """Values read from Secrets, and the parts of them a library may quote on its own."""

    def __init__(self) -> None:
        super().__init__()
        self._values: set[str] = set()

    def remember_bootstrap_servers(self, servers: str) -> None:
        """A Kafka address list: the whole, each ``host:port``, and each host as Python quotes
        it in a repr (aiokafka's "Unable to bootstrap from [('host', 9092, ...)]")."""
        self._values.add(servers)
        for server in servers.split(","):
            server = server.strip()
            host = server.rpartition(":")[0] or server
            self._values.update({server, repr(host), f'"{host}"'})
        self._values.discard("")

    def redact(self, text: str) -> str:
        # Longest first, so a whole value is replaced before one of its parts.
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._values:
            return True
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info is not None:
            # A traceback quotes what it met: formatted here, so its text can be redacted.
            traceback = logging.Formatter().formatException(record.exc_info)
            if self.redact(traceback) != traceback:
                record.exc_text, record.exc_info = self.redact(traceback), None
        return True

    def guard(self, *loggers: logging.Logger) -> None:
        """Filters every handler of ``loggers`` (a handler, unlike a logger, sees the records
        of the loggers below it as well)."""
        for logger in loggers:
            for handler in logger.handlers:
                if self not in handler.filters:
                    handler.addFilter(self)
