r"""Reconnect state machine and backoff schedule of the camera (ROS-free, pure).

Nothing here sleeps, reads a device or starts a thread: the capture worker feeds it
events (opened, frame, bad frame, stall, end, open failed) and asks it when the next
attempt is due. The clock and the random source are injected, so tests drive the
whole schedule deterministically.

States::

    UNCONFIGURED -> INACTIVE -> CONNECTING -> STREAMING -> (STALLED ->) RECONNECTING
                                     ^            |  \\-> ENDED (file end, no loop)
                                     |            v
                                     +------ RECONNECTING -> FAILED (max_attempts)

UNCONFIGURED / INACTIVE / FINALIZED mirror the lifecycle states; the node sets them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import enum
import random
import time
from typing import Callable

JITTER_NONE = 'none'
JITTER_FULL = 'full'
JITTER_EQUAL = 'equal'
JITTER_DECORRELATED = 'decorrelated'
JITTER_MODES = (JITTER_NONE, JITTER_FULL, JITTER_EQUAL, JITTER_DECORRELATED)

#: Consecutive failed attempts after which diagnostics report ERROR, not WARN.
ERROR_AFTER_ATTEMPTS = 3
#: Distinct recent errors kept, so the cause of a loss survives the retries after it.
RECENT_ERRORS = 8


class CameraState(enum.Enum):
    """What the camera is doing; the names are published on ``camera/state``."""

    UNCONFIGURED = 'UNCONFIGURED'
    INACTIVE = 'INACTIVE'
    CONNECTING = 'CONNECTING'
    STREAMING = 'STREAMING'
    STALLED = 'STALLED'
    RECONNECTING = 'RECONNECTING'
    ENDED = 'ENDED'
    FAILED = 'FAILED'
    FINALIZED = 'FINALIZED'


#: States in which the worker is waiting to (re)open the source.
WAITING_STATES = (CameraState.CONNECTING, CameraState.RECONNECTING)


@dataclass(frozen=True)
class BackoffPolicy:
    """Reconnect timing.

    :param initial_delay: first delay after a loss, in seconds.
    :param max_delay: cap of any delay, in seconds.
    :param multiplier: growth factor per failed attempt (>= 1).
    :param jitter: ``none``, ``full`` (uniform in [0, d]), ``equal`` (d/2 + uniform
        [0, d/2]) or ``decorrelated`` (uniform in [initial, previous * multiplier]).
    :param max_attempts: consecutive failed attempts before giving up (0 = forever).
    :param stable_after: seconds of uninterrupted streaming that reset the schedule.
    """

    initial_delay: float = 0.5
    max_delay: float = 10.0
    multiplier: float = 2.0
    jitter: str = JITTER_FULL
    max_attempts: int = 0
    stable_after: float = 10.0

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay <= 0:
            raise ValueError('initial_delay must be >= 0 and max_delay > 0')
        if self.initial_delay > self.max_delay:
            raise ValueError(f'initial_delay ({self.initial_delay}) must not exceed '
                             f'max_delay ({self.max_delay})')
        if self.multiplier < 1.0:
            raise ValueError(f'multiplier must be >= 1, got {self.multiplier}')
        if self.jitter not in JITTER_MODES:
            raise ValueError(f'jitter must be one of {", ".join(JITTER_MODES)}, '
                             f'got {self.jitter!r}')
        if self.max_attempts < 0 or self.stable_after < 0:
            raise ValueError('max_attempts and stable_after must be >= 0')


class Backoff:
    """Exponential backoff delays with jitter; ``reset()`` starts over."""

    def __init__(self, policy: BackoffPolicy, rng: random.Random | None = None):
        self.policy = policy
        self._rng = rng if rng is not None else random.Random()
        self.attempt = 0
        self._previous = policy.initial_delay

    def reset(self) -> None:
        """Start the schedule over (after a stable streaming period)."""
        self.attempt = 0
        self._previous = self.policy.initial_delay

    def ceiling(self, attempt: int) -> float:
        """Return the un-jittered delay of ``attempt`` (0-based), capped at max_delay."""
        p = self.policy
        # Cap the exponent so huge attempt counts never overflow a float.
        exponent = min(attempt, 1000)
        try:
            raw = p.initial_delay * p.multiplier ** exponent
        except OverflowError:
            raw = p.max_delay
        return min(p.max_delay, raw)

    def next_delay(self) -> float:
        """Return the delay before the next attempt and advance the schedule."""
        p = self.policy
        if p.jitter == JITTER_DECORRELATED:
            high = max(p.initial_delay, self._previous * p.multiplier)
            delay = min(p.max_delay, self._rng.uniform(p.initial_delay, high))
            self._previous = delay
        else:
            ceiling = self.ceiling(self.attempt)
            if p.jitter == JITTER_FULL:
                delay = self._rng.uniform(0.0, ceiling)
            elif p.jitter == JITTER_EQUAL:
                delay = ceiling / 2 + self._rng.uniform(0.0, ceiling / 2)
            else:
                delay = ceiling
        self.attempt += 1
        return delay


@dataclass(frozen=True)
class CameraStatus:
    """A consistent snapshot of the machine, for diagnostics and ``camera/state``."""

    state: CameraState
    frames_ok: int
    frames_failed: int
    reconnects: int
    failed_attempts: int
    backoff_sec: float
    next_attempt_in: float
    last_error: str
    last_error_time: float | None
    consecutive_failures: int
    recent_errors: tuple[str, ...] = ()
    #: ENDED because the file is damaged or truncated, not at its real end.
    damaged: bool = False


class ReconnectMachine:
    """The camera's runtime states and counters; fed events, never blocking.

    :param policy: backoff timing.
    :param max_consecutive_failures: failed reads / bad frames in a row that mean the
        stream is lost.
    :param clock: monotonic seconds (injected for tests).
    :param wall_clock: wall-clock seconds for ``last_error_time`` (injected for tests).
    :param rng: random source for the jitter (injected for tests).
    """

    def __init__(self, policy: BackoffPolicy, max_consecutive_failures: int = 5,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None):
        if max_consecutive_failures < 1:
            raise ValueError('max_consecutive_failures must be >= 1')
        self.policy = policy
        self.max_consecutive_failures = max_consecutive_failures
        self._clock = clock
        self._wall = wall_clock
        self.backoff = Backoff(policy, rng)
        self.state = CameraState.INACTIVE
        self.frames_ok = 0
        self.frames_failed = 0
        self.reconnects = 0
        self.consecutive_failures = 0
        self.backoff_sec = 0.0
        self.next_attempt_at = 0.0
        self.last_error = ''
        self.last_error_time: float | None = None
        self._recent: deque[str] = deque(maxlen=RECENT_ERRORS)
        self._streaming_since: float | None = None
        self._ever_streamed = False
        self._failed_attempts = 0
        self._damaged = False

    # ---- events ---------------------------------------------------------------------

    def start(self) -> CameraState:
        """Begin capturing: the first attempt is due now."""
        self.state = CameraState.CONNECTING
        self.next_attempt_at = self._clock()
        self.backoff_sec = 0.0
        self._failed_attempts = 0
        self.backoff.reset()
        self._ever_streamed = False
        self._damaged = False
        return self.state

    def stop(self) -> CameraState:
        """Stop capturing (deactivate); counters are kept for diagnostics."""
        self.state = CameraState.INACTIVE
        self._streaming_since = None
        return self.state

    def on_opened(self) -> CameraState:
        """Record a successful open: stream."""
        if self._ever_streamed:
            self.reconnects += 1
        self._ever_streamed = True
        self.state = CameraState.STREAMING
        self._streaming_since = self._clock()
        self.consecutive_failures = 0
        self.backoff_sec = 0.0
        # max_attempts counts failed opens in a row; the delay only resets once stable.
        self._failed_attempts = 0
        return self.state

    def on_open_failed(self, error: str) -> CameraState:
        """Record a failed open: schedule the next attempt (or give up)."""
        self._record_error(error)
        self._failed_attempts += 1
        return self._schedule()

    def on_config_error(self, error: str) -> CameraState:
        """Give up until reconfigured: the source can never open as configured."""
        self._record_error(error)
        self.state = CameraState.FAILED
        self.backoff_sec = 0.0
        return self.state

    def on_frame(self) -> CameraState:
        """Count a good frame."""
        self.frames_ok += 1
        self.consecutive_failures = 0
        self._maybe_reset_backoff()
        return self.state

    def on_bad_frame(self, error: str) -> CameraState:
        """Count a failed read or unusable frame; lose the stream after too many."""
        self.frames_failed += 1
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.max_consecutive_failures:
            return self.on_lost(f'{self.consecutive_failures} failed reads in a row; '
                                f'last: {error}')
        self._record_error(error)
        return self.state

    def on_lost(self, error: str) -> CameraState:
        """Handle a lost stream (read error, too many failures): reconnect."""
        self._maybe_reset_backoff()
        self._record_error(error)
        self._streaming_since = None
        return self._schedule()

    def on_stall(self, error: str) -> CameraState:
        """Enter STALLED (no frame for stall_timeout) until the source is let go."""
        self._maybe_reset_backoff()
        self._record_error(error)
        self._streaming_since = None
        self.state = CameraState.STALLED
        return self.state

    def on_released(self) -> CameraState:
        """Reconnect once the stalled source was released or abandoned."""
        return self._schedule()

    def on_end(self, message: str, damaged: bool = False) -> CameraState:
        """Record the end of a finite source (``damaged``: it ended early)."""
        self.state = CameraState.ENDED
        self._damaged = damaged
        self._record_error(message)
        self._streaming_since = None
        return self.state

    # ---- queries --------------------------------------------------------------------

    def seconds_until_attempt(self) -> float:
        """Return seconds until the next open attempt (0 when due; inf when none)."""
        if self.state not in WAITING_STATES:
            return float('inf')
        return max(0.0, self.next_attempt_at - self._clock())

    @property
    def failed_attempts(self) -> int:
        """Return consecutive failed open attempts since the last stable stream."""
        return self._failed_attempts

    def snapshot(self) -> CameraStatus:
        """Return a consistent copy of the state and counters."""
        wait = self.seconds_until_attempt()
        return CameraStatus(
            state=self.state, frames_ok=self.frames_ok, frames_failed=self.frames_failed,
            reconnects=self.reconnects, failed_attempts=self._failed_attempts,
            backoff_sec=self.backoff_sec,
            next_attempt_in=0.0 if wait == float('inf') else wait,
            last_error=self.last_error, last_error_time=self.last_error_time,
            consecutive_failures=self.consecutive_failures,
            recent_errors=tuple(self._recent), damaged=self._damaged)

    # ---- internals ------------------------------------------------------------------

    def _record_error(self, error: str) -> None:
        self.last_error = error
        self.last_error_time = self._wall()
        if not self._recent or self._recent[-1] != error:
            self._recent.append(error)

    def _maybe_reset_backoff(self) -> None:
        if (self._streaming_since is not None
                and self._clock() - self._streaming_since >= self.policy.stable_after):
            self.backoff.reset()
            self._failed_attempts = 0

    def _schedule(self) -> CameraState:
        max_attempts = self.policy.max_attempts
        if max_attempts and self._failed_attempts >= max_attempts:
            self.state = CameraState.FAILED
            self.backoff_sec = 0.0
            return self.state
        self.consecutive_failures = 0
        self.backoff_sec = self.backoff.next_delay()
        self.next_attempt_at = self._clock() + self.backoff_sec
        self.state = CameraState.RECONNECTING
        return self.state
