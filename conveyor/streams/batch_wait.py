"""How long a processor waits after a batch's first record for more to join it.

A batch's fixed costs (the fetch and its hand-over, a producer request, a changelog flush, a
wake-up of every processor downstream) are shared by the records in it, so waiting for more
saves CPU, the more so on a busy machine. But for the processors an order waits on (orders,
inventory, payments) every wait is also latency at every hop, which on a machine with CPU
to spare buys nothing.

Which of the two holds shows in how old their records are when they get to them: young
while they keep up with time to spare, older as CPU runs short and records queue in
sockets, in the consumer's buffers and behind other processes. So those processors wait as
long as their records have lately been old, up to their longest wait
(``BatchWait.following_age``): a few milliseconds on an idle machine, the whole wait on a busy
one, which relieves it. A record's age is read from its Kafka timestamp, the time it was
produced; a producer's clock ahead of this one only shortens the wait, and one behind can
lengthen it to the longest wait and no further.

The processors no order waits on (notifications, recommendations), and the projector, whose
batch is one database transaction, wait a fixed time (``BatchWait.fixed``): with waits as
short as the saga's, they cost more at every rate and nobody gains.
"""

from __future__ import annotations

import math

# How much one batch's first record moves the age a wait follows when batches come close
# together: about the last five count, so one straggler does not set the wait.
AGE_WEIGHT = 0.2
# How fast what earlier batches said fades with time between them: after a quiet second a
# batch's own record counts for most of it, so a lone order after a rush is not held up
# by the rush.
AGE_MEMORY_SECONDS = 0.5


class BatchWait:
    """The wait after a batch's first record: fixed, or its records' recent age up to
    ``longest``."""

    def __init__(self, longest: float, *, follows_age: bool) -> None:
        self.longest = longest
        self.follows_age = follows_age
        # None until a first record: the first orders after a quiet start are not held up,
        # and a backlog found at the start is waited for at once.
        self._recent_age: float | None = None
        self._observed_at = 0.0

    @classmethod
    def fixed(cls, seconds: float) -> BatchWait:
        return cls(seconds, follows_age=False)

    @classmethod
    def following_age(cls, longest: float) -> BatchWait:
        return cls(longest, follows_age=True)

    def seconds(self) -> float:
        if not self.follows_age:
            return self.longest
        # Never beyond the longest wait: every age is counted at most that (observe).
        return 0.0 if self._recent_age is None else self._recent_age

    def observe(self, produced_at: float, now: float) -> None:
        """A batch's first record, produced at ``produced_at`` (Unix time), taken at ``now``."""
        if not self.follows_age:
            return  # a fixed wait has nothing to follow
        # An age beyond the longest wait asks for no more than the longest wait: a backlog
        # seconds old must not keep the wait long for many batches after it is gone.
        age = min(max(0.0, now - produced_at), self.longest)
        if self._recent_age is None:
            self._recent_age = age
        else:
            quiet = max(0.0, now - self._observed_at)
            weight = 1 - (1 - AGE_WEIGHT) * math.exp(-quiet / AGE_MEMORY_SECONDS)
            self._recent_age += weight * (age - self._recent_age)
        self._observed_at = now
