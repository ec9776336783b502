"""When to record (trigger policy) and the bounded drop-oldest frame queue."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import enum
import threading
from typing import Generic, TypeVar

T = TypeVar('T')


class Decision(enum.Enum):
    """Why a frame was or was not recorded."""

    RECORD = 'record'
    DISABLED = 'disabled'
    SKIPPED_NTH = 'skipped_nth'
    SKIPPED_RATE = 'skipped_rate'
    SKIPPED_NO_HANDS = 'skipped_no_hands'


@dataclass(frozen=True)
class TriggerSettings:
    """Trigger knobs (the ``trigger.*`` parameters)."""

    every_n: int = 1
    max_rate_hz: float = 0.0
    only_with_hands: bool = False
    hands_max_age_sec: float = 1.0

    def __post_init__(self) -> None:
        if self.every_n < 1:
            raise ValueError('every_n must be >= 1')
        if self.max_rate_hz < 0:
            raise ValueError('max_rate_hz must be >= 0')
        if self.hands_max_age_sec <= 0:
            raise ValueError('hands_max_age_sec must be > 0')


class TriggerPolicy:
    """Decide per received frame whether to record it.

    Order: disabled, hands, every Nth, rate limit. The Nth counter only counts frames
    that passed the hands check, so ``every_n=10`` with hands means every 10th frame
    that shows hands. Not thread-safe: the caller serialises calls.
    """

    def __init__(self, settings: TriggerSettings, enabled: bool = True):
        self.settings = settings
        self.enabled = enabled
        self._counter = 0
        self._last_record: float | None = None
        self._hands: int | None = None
        self._hands_time = 0.0

    def set_hands(self, count: int, now: float) -> None:
        """Remember the latest hands count received at monotonic time ``now``."""
        self._hands = int(count)
        self._hands_time = now

    def hands(self, now: float) -> int | None:
        """Return the latest hands count, or ``None`` when none is fresh."""
        if self._hands is None or now - self._hands_time > self.settings.hands_max_age_sec:
            return None
        return self._hands

    def decide(self, now: float) -> Decision:
        """Return the decision for a frame arriving at monotonic time ``now``."""
        s = self.settings
        if not self.enabled:
            return Decision.DISABLED
        if s.only_with_hands and not self.hands(now):
            return Decision.SKIPPED_NO_HANDS
        self._counter += 1
        if self._counter < s.every_n:
            return Decision.SKIPPED_NTH
        if (s.max_rate_hz > 0 and self._last_record is not None
                and now - self._last_record < 1.0 / s.max_rate_hz):
            # Keep the counter full so the next frame after the rate gap is taken.
            return Decision.SKIPPED_RATE
        self._counter = 0
        self._last_record = now
        return Decision.RECORD


class DropOldestQueue(Generic[T]):
    """A bounded FIFO whose ``put`` never blocks: when full the oldest item is dropped.

    Thread-safe. ``put`` returns the dropped item so the caller can count it.
    """

    def __init__(self, depth: int):
        if depth < 1:
            raise ValueError('depth must be >= 1')
        self._items: deque[T] = deque()
        self._depth = depth
        self._cond = threading.Condition()
        self._closed = False
        self.put_count = 0
        self.dropped = 0

    @property
    def depth(self) -> int:
        """Return the capacity."""
        return self._depth

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, item: T) -> T | None:
        """Append ``item``; return the evicted oldest item if the queue was full.

        :raises RuntimeError: after :meth:`close`.
        """
        with self._cond:
            if self._closed:
                raise RuntimeError('queue is closed')
            evicted = None
            if len(self._items) >= self._depth:
                evicted = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.put_count += 1
            self._cond.notify()
            return evicted

    def get(self, timeout: float) -> T | None:
        """Pop the oldest item, waiting up to ``timeout`` seconds; ``None`` if none."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            return self._items.popleft()

    def close(self) -> None:
        """Refuse further puts and wake waiters."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def drain(self) -> list[T]:
        """Remove and return every queued item."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            return items
