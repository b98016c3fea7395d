"""CPU that processes used between two readings: the stack's, Conveyor's and this one's."""

from __future__ import annotations

from collections.abc import Iterable

import psutil

from conveyor.devstack.components import Components
from conveyor.devstack.stack import LocalStack

# The stack's own services, named apart from the processors (one of which is "payments").
SERVICE_LABELS = {
    "kafka": "Kafka",
    "postgres": "PostgreSQL",
    "redis": "Redis",
    "smtp": "mail sink",
    "payments": "payment gateway",
}


def running_pids(stack: LocalStack, components: Components, names: Iterable[str]) -> dict[str, int]:
    """The stack's services (by ``SERVICE_LABELS``) and those of its components named."""
    # From the state files the stack keeps: asking for its status would run its health
    # checks, each an event loop of its own.
    running = components.state.load()
    pids = {name: running[name].pid for name in names if name in running}
    for name, record in stack.state.load().items():
        pids[SERVICE_LABELS[name]] = record.pid
    return pids


GENERATOR = "load generator"


def _cpu_seconds(pid: int) -> float:
    """CPU a process and its live descendants used, and its reaped children."""
    try:
        process = psutil.Process(pid)
        times = process.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in process.children(recursive=True):
            try:
                child_times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += child_times.user + child_times.system
        return total
    except psutil.NoSuchProcess:
        return 0.0


class CpuMeter:
    """CPU per process between two readings, by a label for each process."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.started: dict[str, float] = {}

    def start(self) -> None:
        self.started = self._read()

    def used(self) -> dict[str, float]:
        return {
            label: seconds - self.started.get(label, 0.0) for label, seconds in self._read().items()
        }

    def _read(self) -> dict[str, float]:
        readings = {label: _cpu_seconds(pid) for label, pid in self.pids.items()}
        # This process alone: the stack's services are its children too.
        own = psutil.Process().cpu_times()
        readings[GENERATOR] = own.user + own.system
        return readings


def machine_busy_seconds() -> float:
    """CPU the whole machine used since it started, every process of it, all cores."""
    times = psutil.cpu_times()
    # Linux's fields; guest time is already in user.
    return (
        times.user
        + times.system
        + sum(getattr(times, name, 0.0) for name in ("nice", "irq", "softirq", "steal"))
    )
