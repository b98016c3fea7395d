"""A minimal Faust application the broker tests run as a real worker process.

It counts records per key in a table and publishes each new count, so a test can see from
outside whether the table kept its state across a restart (recovered from its changelog).
"""

import os

import faust

app = faust.App(
    os.environ["PROBE_APP_ID"],
    broker=f"kafka://{os.environ['KAFKA_BOOTSTRAP_SERVERS']}",
    store="memory://",
    datadir=os.environ["PROBE_DATADIR"],
    processing_guarantee=os.environ.get("PROBE_GUARANTEE", "at_least_once"),
    topic_partitions=1,
    topic_replication_factor=1,
    web_enabled=False,
)
source = app.topic(os.environ["PROBE_INPUT"], key_type=str, value_type=str)
counts_out = app.topic(os.environ["PROBE_OUTPUT"], key_type=str, value_type=str)
counts = app.Table("counts", default=int, partitions=1)


@app.agent(source)
async def count(stream):  # type: ignore[no-untyped-def]
    async for key, _ in stream.items():
        counts[key] += 1
        await counts_out.send(key=key, value=str(counts[key]))
