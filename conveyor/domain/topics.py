"""Every Kafka topic Conveyor uses, declared once: its name, key, messages and partitions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from conveyor.domain import messages as m

# One count for every topic: a table is co-partitioned with the topic it reads, so an
# order's commands, replies and saga state all land on the same partition number.
DEFAULT_PARTITIONS = 6

DEAD_LETTER_SUFFIX = ".dlq"
# Records whose handling waits on a service that is down are parked here, then tried again.
RETRY_SUFFIX = ".retry"

KeyField = Literal["order_id", "product_id"]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key_field: KeyField
    message_types: tuple[type[m.Message], ...]
    partitions: int = DEFAULT_PARTITIONS
    public: bool = False
    compacted: bool = False

    def allows(self, message_type: type[m.Message]) -> bool:
        return message_type in self.message_types


ORDERS_COMMANDS = TopicSpec("orders.commands", "order_id", (m.PlaceOrder, m.CancelOrder))
ORDERS_REPLIES = TopicSpec(
    "orders.replies",
    "order_id",
    (
        m.StockReserved,
        m.StockRejected,
        m.StockReleased,
        m.PaymentAuthorized,
        m.PaymentDeclined,
        m.PaymentRefunded,
        m.PaymentVoided,
    ),
)
ORDERS_EVENTS = TopicSpec(
    "orders.events",
    "order_id",
    (m.OrderPlaced, m.OrderConfirmed, m.OrderRejected, m.OrderCancelled),
    public=True,
)
INVENTORY_COMMANDS = TopicSpec(
    "inventory.commands",
    "product_id",
    (m.UpsertProduct, m.AdjustStock, m.ReserveStock, m.ReleaseStock, m.CommitStock),
)
INVENTORY_EVENTS = TopicSpec("inventory.events", "product_id", (m.StockChanged,), public=True)
PAYMENTS_COMMANDS = TopicSpec(
    "payments.commands", "order_id", (m.AuthorizePayment, m.RefundPayment, m.VoidPayment)
)
NOTIFICATIONS_EVENTS = TopicSpec("notifications.events", "order_id", (m.NotificationSent,))
# The recommendations processor's repartition topic: confirmed orders' products, keyed by
# product, so each product's co-purchase counts live in one partition (docs/recommendations.md).
RECOMMENDATIONS_COPURCHASES = TopicSpec(
    "recommendations.copurchases", "product_id", (m.ProductsBoughtTogether,)
)

TOPICS: Mapping[str, TopicSpec] = {
    spec.name: spec
    for spec in (
        ORDERS_COMMANDS,
        ORDERS_REPLIES,
        ORDERS_EVENTS,
        INVENTORY_COMMANDS,
        INVENTORY_EVENTS,
        PAYMENTS_COMMANDS,
        NOTIFICATIONS_EVENTS,
        RECOMMENDATIONS_COPURCHASES,
    )
}


def resolve(topic: TopicSpec | str) -> TopicSpec:
    if isinstance(topic, TopicSpec):
        return topic
    try:
        return TOPICS[topic]
    except KeyError:
        raise KeyError(f"{topic!r} is not a declared topic; declared: {sorted(TOPICS)}") from None


def topic_for(message_type: type[m.Message]) -> TopicSpec:
    """The one topic a message type travels on."""
    [spec] = [spec for spec in TOPICS.values() if spec.allows(message_type)]
    return spec


def dead_letter_topic(topic: TopicSpec | str) -> str:
    return resolve(topic).name + DEAD_LETTER_SUFFIX


def retry_topic(topic: TopicSpec | str) -> str:
    return resolve(topic).name + RETRY_SUFFIX


def source_topic(topic: str) -> str:
    """The declared topic a record read from ``topic`` belongs to (itself, or a retry's source)."""
    return topic.removesuffix(RETRY_SUFFIX)


def consumer_group(processor: str) -> str:
    """The Kafka consumer group of a processor: every replica of it joins this one."""
    return f"conveyor-{processor}"
