"""`conveyor dlq list | show | replay` on real Kafka, against letters a real processor wrote.

The poison record is what an operator makes by mistake: a stock adjustment of a product that
does not exist yet, refused by the inventory processor to inventory.commands.dlq. Once the
product exists, replaying the letter applies the adjustment.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from dataclasses import dataclass
from uuid import UUID

import pytest

from conveyor.infra.dead_letters import (
    REPLAYED_AT_HEADER,
    REPLAYED_FROM_HEADER,
    DeadLetterRecord,
    read_dead_letters,
)
from tests.support.shop import Shop, StockFigures, read_records
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async
from tests.support.workers import Workers

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


async def conveyor(stack: RunningStack, *args: str) -> Ran:
    """The `conveyor` command as an operator runs it, against the session's stack."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "conveyor",
        *args,
        env={**os.environ, **stack.urls.environment(), "COLUMNS": "300"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


async def refused_adjustment(stack: RunningStack, product: UUID) -> DeadLetterRecord:
    """`conveyor inventory adjust` of a product nobody created, once it is dead-lettered."""
    adjusted = await conveyor(stack, "inventory", "adjust", str(product), "5")
    assert adjusted.code == 0, adjusted.err

    async def mine() -> list[DeadLetterRecord]:
        letters = await read_dead_letters(stack.urls.kafka_bootstrap_servers, "inventory.commands")
        return [
            dead
            for dead in letters
            if dead.letter is not None
            and str(product).encode() in (dead.letter.original_value or b"")
        ]

    [dead] = await eventually_async(mine, "the refused adjustment is dead-lettered", within=60)
    return dead


def listed_row(out: str, position: str) -> list[str]:
    """The cells of the row of `conveyor dlq list`'s table for the dead letter at ``position``."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines()]
    [row] = [cells for cells in rows if cells and cells[0] == position]
    return row


async def replays_in_source(stack: RunningStack, dead: DeadLetterRecord) -> list[dict[str, bytes]]:
    """The headers of every record in inventory.commands replayed from ``dead``."""
    wanted = f"{dead.dead_letter_topic}:{dead.position}".encode()
    return [
        dict(record.headers)
        for record in await read_records(stack.urls.kafka_bootstrap_servers, "inventory.commands")
        if (REPLAYED_FROM_HEADER, wanted) in list(record.headers)
    ]


async def test_a_refused_record_replayed_after_its_cause_is_fixed_takes_effect_once(
    shop: Shop, stack: RunningStack, workers: Workers
) -> None:
    product = uuid.uuid4()
    dead = await refused_adjustment(stack, product)
    assert dead.letter is not None
    assert "unknown product" in dead.letter.error

    listed = await conveyor(stack, "dlq", "list", "inventory.commands")
    assert listed.code == 0, listed.err
    row = listed_row(listed.out, dead.position)
    assert row[2] == f"inventory.commands {dead.letter.partition}:{dead.letter.offset}"
    assert f"cannot adjust stock of unknown product {product}" in row[3]
    assert row[4] == "no"

    shown = await conveyor(stack, "dlq", "show", "inventory.commands", dead.position)
    assert shown.code == 0, shown.err
    letter = json.loads(shown.out)
    assert letter["source"] == f"inventory.commands {dead.letter.partition}:{dead.letter.offset}"
    assert letter["key"] == str(product)
    assert letter["value"]["type"] == "AdjustStock"
    assert letter["value"]["payload"]["product_id"] == str(product)
    assert letter["original_headers"]["type"] == "AdjustStock"
    assert letter["replayed"] is None

    # The cause, fixed: the product exists now, with no stock.
    created = await conveyor(
        stack, "inventory", "upsert", "--product", str(product), "--sku", "DLQ-1", "--name", "Mug"
    )
    assert created.code == 0, created.err
    await shop.wait_stock(product, StockFigures(available=0, reserved=0, sold=0))

    dry = await conveyor(
        stack, "dlq", "replay", "inventory.commands", "--offset", dead.position, "--dry-run"
    )
    assert dry.code == 0, dry.err
    assert dry.out.strip() == "1 would replay, 0 already replayed, 0 not replayable"
    assert f"inventory.commands.dlq {dead.position}: would replay" in dry.err
    assert await replays_in_source(stack, dead) == []

    replayed = await conveyor(
        stack, "dlq", "replay", "inventory.commands", "--offset", dead.position
    )
    assert replayed.code == 0, replayed.err
    assert replayed.out.strip() == "1 replayed, 0 already replayed, 0 not replayable"
    assert (
        f"[1/1] inventory.commands.dlq {dead.position}: replayed to inventory.commands"
        in replayed.err
    )
    await shop.wait_stock(product, StockFigures(available=5, reserved=0, sold=0))

    again = await conveyor(stack, "dlq", "replay", "inventory.commands", "--offset", dead.position)
    assert again.code == 0, again.err
    assert again.out.strip() == "0 replayed, 1 already replayed, 0 not replayable"

    [headers] = await replays_in_source(stack, dead)
    # The original headers go back unchanged, with where and when it was replayed.
    assert headers["type"] == b"AdjustStock"
    assert headers["schema_version"] == b"1"
    assert headers[REPLAYED_AT_HEADER]
    await shop.drain()
    assert await shop.stock(product) == StockFigures(available=5, reserved=0, sold=0)
    counted = workers.samples("inventory", "conveyor_dead_letters_replayed_total")
    assert ({"processor": "inventory", "topic": "inventory.commands"}, 1.0) in counted

    [landed] = re.findall(r"replayed to inventory\.commands (\d+:\d+)", replayed.err)
    relisted = await conveyor(stack, "dlq", "list", "inventory.commands.dlq")
    row = listed_row(relisted.out, dead.position)
    assert row[4].endswith(f" to {landed}")


async def test_replay_all_sends_only_the_letters_not_replayed_yet(
    shop: Shop, stack: RunningStack
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    dead_first = await refused_adjustment(stack, first)
    dead_second = await refused_adjustment(stack, second)
    for product in (first, second):
        created = await conveyor(
            stack, "inventory", "upsert", "--product", str(product), "--sku", "S", "--name", "N"
        )
        assert created.code == 0, created.err
        await shop.wait_stock(product, StockFigures(0, 0, 0))
    one = await conveyor(
        stack, "dlq", "replay", "inventory.commands", "--offset", dead_first.position
    )
    assert one.code == 0, one.err

    everything = await conveyor(stack, "dlq", "replay", "inventory.commands", "--all")

    assert everything.code == 0, everything.err
    assert f"inventory.commands.dlq {dead_first.position}: already replayed" in everything.err
    assert f"inventory.commands.dlq {dead_second.position}: replayed to" in everything.err
    assert len(await replays_in_source(stack, dead_first)) == 1
    assert len(await replays_in_source(stack, dead_second)) == 1
    await shop.wait_stock(first, StockFigures(5, 0, 0))
    await shop.wait_stock(second, StockFigures(5, 0, 0))


async def test_the_tool_says_what_to_do_when_a_topic_or_letter_is_not_there(
    stack: RunningStack,
) -> None:
    unknown = await conveyor(stack, "dlq", "list", "no.such.topic")
    assert unknown.code == 1
    assert "there is no topic no.such.topic.dlq" in unknown.err
    assert "inventory.commands" in unknown.err

    missing = await conveyor(stack, "dlq", "show", "orders.replies", "5:99999999")
    assert missing.code == 1
    assert "orders.replies.dlq has no dead letter at 5:99999999" in missing.err
    assert "`conveyor dlq list orders.replies` shows the ones it has" in missing.err

    unnamed = await conveyor(stack, "dlq", "replay", "orders.replies")
    assert unnamed.code == 1
    assert "--offset PARTITION:OFFSET" in unnamed.err
    assert "--all" in unnamed.err
