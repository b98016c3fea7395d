"""The five processors of the order saga; ``build(name)`` gives one ready to run."""

from __future__ import annotations

from collections.abc import Callable

from conveyor.infra.settings import ServiceUrls
from conveyor.streams.processors import inventory, notifications, orders, payments, projector
from conveyor.streams.runtime import PROCESSORS, Processor, ProcessorName, WorkerSettings

_REGISTER: dict[str, Callable[[Processor], None]] = {
    "orders": orders.register,
    "inventory": inventory.register,
    "payments": payments.register,
    "notifications": notifications.register,
    "projector": projector.register,
}
assert set(_REGISTER) == set(PROCESSORS)


def build(name: ProcessorName, urls: ServiceUrls, settings: WorkerSettings) -> Processor:
    processor = Processor(name, urls, settings)
    _REGISTER[name](processor)
    return processor
