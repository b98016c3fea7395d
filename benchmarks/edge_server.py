"""The edge as the benchmark runs it: ``python -m benchmarks.edge_server PORT [--without-kafka]``.

``--without-kafka`` swaps the command sender for one that accepts at once (through
``dependency_overrides``, as tests do), so the same endpoint can be measured without Kafka.
The access log is off in both variants: the benchmark measures the edge, not its logging.
"""

from __future__ import annotations

import sys
import uuid
from uuid import UUID

import uvicorn

from conveyor.api.app import create_app
from conveyor.api.deps import command_sender
from conveyor.domain.messages import Message


class AcceptsAtOnce:
    async def send(self, message: Message, *, event_id: UUID | None = None) -> UUID:
        return event_id or uuid.uuid4()

    async def close(self) -> None:
        return None


def main() -> None:
    port = int(sys.argv[1])
    app = create_app()
    if "--without-kafka" in sys.argv:
        sender = AcceptsAtOnce()

        async def accepts_at_once() -> AcceptsAtOnce:
            return sender

        app.dependency_overrides[command_sender] = accepts_at_once
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
