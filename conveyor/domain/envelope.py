"""The envelope every message travels in: its identity, type, schema version and time.

``event_id`` is the message's own identity: a consumer that has seen it once ignores it the
second time, which is what makes at-least-once delivery safe.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Generic, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from conveyor.domain.messages import Message

CURRENT_SCHEMA_VERSION = 1
# The schema versions this code can read; a newer producer's messages are refused, not guessed.
READABLE_SCHEMA_VERSIONS = frozenset({1})

M = TypeVar("M", bound=Message)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel, Generic[M]):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID = Field(default_factory=uuid.uuid4)
    type: str
    schema_version: int = CURRENT_SCHEMA_VERSION
    occurred_at: AwareDatetime = Field(default_factory=utc_now)
    # The event that caused this one, so a saga's steps can be traced back.
    causation_id: UUID | None = None
    # The order or product whose flow this message belongs to.
    correlation_id: UUID | None = None
    payload: M
