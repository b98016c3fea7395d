"""The local stack a test session runs on (``conveyor.devstack``), as the fixtures hand it out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conveyor.devstack.stack import LocalStack
from conveyor.infra.settings import ServiceUrls


@dataclass(frozen=True)
class RunningStack:
    urls: ServiceUrls
    maildir: Path
    local: LocalStack

    @property
    def postgres_server_dsn(self) -> str:
        """The server's maintenance database, for creating and dropping test databases."""
        base, _, _ = self.urls.database_url.rpartition("/")
        return f"{base}/postgres"
