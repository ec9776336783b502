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
        """Return ``time.time()``."""
        return time.time()

    def monotonic(self) -> float:
        """Return ``time.monotonic()``."""
        return time.monotonic()
