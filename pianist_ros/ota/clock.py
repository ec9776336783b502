"""The clock the OTA manager reads; tests inject a fake one to move wall time."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall and monotonic time."""

    def time(self) -> float:
        """Return wall-clock seconds since the epoch (manifest expiry, report stamps)."""

    def monotonic(self) -> float:
        """Return monotonic seconds (timeouts, scheduling)."""


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        """Return the wall-clock time in seconds since the epoch."""
        return time.time()

    def monotonic(self) -> float:
        """Return the monotonic time in seconds."""
        return time.monotonic()
