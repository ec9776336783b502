"""Sliding-window rate and latency statistics (ROS-free, thread-unsafe by design).

Callers hold their own lock; these are small value objects.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class RateMeter:
    """Events per second over the last ``window_sec`` seconds."""

    def __init__(self, window_sec: float = 5.0, max_events: int = 10000):
        if window_sec <= 0:
            raise ValueError('window_sec must be > 0')
        self._window = window_sec
        self._times: deque[float] = deque(maxlen=max_events)
        self.total = 0

    def tick(self, now: float) -> None:
        """Record one event at monotonic time ``now``."""
        self._times.append(now)
        self.total += 1

    def rate(self, now: float) -> float:
        """Return events per second in the window ending at ``now``."""
        while self._times and now - self._times[0] > self._window:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], self._times[-1] - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0


class Percentiles:
    """Keep the last ``size`` samples and report percentiles."""

    def __init__(self, size: int = 1000):
        if size <= 0:
            raise ValueError('size must be > 0')
        self._samples: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        """Record one sample."""
        self._samples.append(value)

    def __len__(self) -> int:
        return len(self._samples)

    def percentile(self, q: float) -> float:
        """Return the q-th percentile, q from 0 to 100, of the kept samples, or 0.0."""
        if not self._samples:
            return 0.0
        return float(np.percentile(np.fromiter(self._samples, dtype=float), q))
