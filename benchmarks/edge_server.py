"""The edge as the benchmark runs it: ``python -m benchmarks.edge_server PORT [--without-kafka]``.

``--without-kafka`` gives the app a command sender that accepts at once, so the same
endpoint can be measured without Kafka.
The access log is off in both variants: the benchmark measures the edge, not its logging.
"""

from __future__ import annotations

import sys
import uuid
from uuid import UUID

import uvicorn

from conveyor.api.app import create_app
from conveyor.domain.messages import Message


class AcceptsAtOnce:
    async def send(self, message: Message, *, event_id: UUID | None = None) -> UUID:
        return event_id or uuid.uuid4()

    async def check_reachable(self) -> None:
        return None

    async def close(self) -> None:
        return None


def main() -> None:
    port = int(sys.argv[1])
    app = create_app(sender=AcceptsAtOnce() if "--without-kafka" in sys.argv else None)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
