"""What the camera logs about outages and recoveries, throttled (ROS-free, pure).

The capture worker reports every state change and every failed open attempt; logging
each would flood the journal of a device whose camera is unplugged for a week, and
logging only the first (as before) leaves an operator blind after it. This keeps the
first failure of an outage immediate, then at most one summary per ``throttle_sec``
(attempts so far, the last error, the next delay), and one line when frames flow again.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from pianist_ros.camera.reconnect import CameraState
from pianist_ros.camera.reconnect import CameraStatus

#: At most one outage line per this many seconds (the first one is immediate).
LOG_THROTTLE_SEC = 30.0

#: (level, message) with the levels of the ``logging`` module.
LogLine = tuple[int, str]

_OUTAGE_STATES = (CameraState.CONNECTING, CameraState.RECONNECTING, CameraState.STALLED)


class OutageLog:
    """Turn camera status snapshots into the lines worth logging.

    :param source: log-safe description of the source, named in the lines.
    :param throttle_sec: minimum seconds between two outage lines.
    :param clock: monotonic seconds (injected for tests).
    """

    def __init__(self, source: str, throttle_sec: float = LOG_THROTTLE_SEC,
                 clock: Callable[[], float] = time.monotonic):
        self.source = source
        self.throttle_sec = throttle_sec
        self._clock = clock
        self._outage_since: float | None = None
        self._attempts = 0
        self._last_line: float | None = None
        self._logged = False
        self._unlogged = 0
        self._streamed = False
        self._state: CameraState | None = None

    def observe(self, status: CameraStatus) -> list[LogLine]:
        """Return the lines to log for ``status`` (often none)."""
        now = self._clock()
        state, previous = status.state, self._state
        self._state = state
        if state == CameraState.STREAMING:
            return self._recovered(now) if previous != state else []
        if state == CameraState.RECONNECTING:
            self._start_outage(now)
            self._attempts = max(self._attempts, status.failed_attempts)
            if self._logged:
                text = (f'still no frames from {self.source} after {self._attempts} failed '
                        f'attempts over {now - self._outage_since:.0f} s; last error: '
                        f'{status.last_error}; next attempt in {status.backoff_sec:.1f} s')
            else:
                text = (f'{status.last_error}; retry {status.failed_attempts + 1} in '
                        f'{status.backoff_sec:.1f} s')
            return self._throttled(logging.WARNING, text, now)
        if state == previous:
            return []
        if state == CameraState.CONNECTING:
            self._start_outage(now)
            return []
        if state == CameraState.STALLED:
            self._start_outage(now)
            return self._throttled(
                logging.WARNING, f'{status.last_error}; releasing the source and reconnecting',
                now)
        if state == CameraState.ENDED:
            if status.damaged:
                return [(logging.ERROR, f'ended early: {status.last_error}; replace the file '
                         'and deactivate/activate to play it again')]
            return [(logging.INFO, f'{status.last_error}; deactivate/activate to play it '
                     'again')]
        if state == CameraState.FAILED:
            return [(logging.ERROR, f'giving up: {status.last_error}; fix the source and '
                     're-activate')]
        return []

    def _start_outage(self, now: float) -> None:
        if self._outage_since is None:
            self._outage_since = now
            self._attempts = 0
            self._logged = False

    def _throttled(self, level: int, text: str, now: float) -> list[LogLine]:
        """Return the line unless one was logged within throttle_sec."""
        if self._last_line is not None and now - self._last_line < self.throttle_sec:
            return []
        self._last_line = now
        self._logged = True
        if self._unlogged:
            text += f' ({self._unlogged} short outages since the last line were not logged)'
            self._unlogged = 0
        return [(level, text)]

    def _recovered(self, now: float) -> list[LogLine]:
        since, attempts, logged = self._outage_since, self._attempts, self._logged
        self._outage_since = None
        self._attempts = 0
        self._logged = False
        streamed, self._streamed = self._streamed, True
        if since is None or (not streamed and attempts == 0):
            return [(logging.INFO, f'streaming from {self.source}')]
        if not logged:
            # Its loss was throttled away: keep quiet about the recovery too.
            self._unlogged += 1
            return []
        again = 'again ' if streamed else ''
        return [(logging.INFO, f'streaming {again}from {self.source} after {attempts + 1} '
                 f'attempts, {now - since:.1f} s without frames')]
