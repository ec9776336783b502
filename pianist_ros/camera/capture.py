"""Capture threads: a supervisor with a stall watchdog over one session per open (ROS-free).

``VideoCapture.read()`` can block forever on an unplugged USB camera or a half-dead
stream, and a capture handle must not be released while another thread is inside
``read()``. So every open of the source gets its own :class:`CaptureSession`: a
daemon thread that opens, reads and finally closes the source, and is the only
thread that ever touches its handle. The :class:`CaptureWorker` supervisor waits on
the session with a deadline; when no frame arrives within ``stall_timeout`` it tells
the session to stop and *abandons* it: the session closes its handle itself once
the blocked call returns (network reads have an FFMPEG timeout, so they do). At most
``max_abandoned`` abandoned sessions may be alive; beyond that the worker opens
nothing new, so a driver that never returns cannot leak threads without bound.

The supervisor feeds the :class:`~pianist_ros.camera.reconnect.ReconnectMachine` and
waits on events, never polls, so a camera that is down costs no CPU.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import logging
import threading
import time
from typing import Callable

import numpy as np

from pianist_ros.camera.errors import SourceConfigError
from pianist_ros.camera.errors import SourceDamaged
from pianist_ros.camera.errors import SourceEnded
from pianist_ros.camera.errors import SourceOpenError
from pianist_ros.camera.errors import SourceReadError
from pianist_ros.camera.reconnect import CameraState
from pianist_ros.camera.reconnect import CameraStatus
from pianist_ros.camera.reconnect import ReconnectMachine
from pianist_ros.camera.reconnect import WAITING_STATES
from pianist_ros.camera.sources import FrameSource

_LOG = logging.getLogger(__name__)

#: Frames larger than this (8K UHD) are refused as garbage, whatever the source says.
MAX_FRAME_PIXELS = 7680 * 4320

#: Pause after a failed read inside a session, so a dead handle cannot spin a core.
FAILED_READ_PAUSE_SEC = 0.02

FrameCallback = Callable[[np.ndarray, int], None]
StatusCallback = Callable[[CameraStatus], None]

# Session mailbox item kinds.
_FRAME = 'frame'
_FAIL = 'fail'
_LOST = 'lost'
_END = 'end'


@dataclass(frozen=True)
class CaptureConfig:
    """Timing of the capture threads.

    :param stall_timeout: seconds without a frame after which a stream is STALLED.
    :param open_timeout: seconds an open may take before it counts as failed.
    :param release_timeout: seconds ``stop()`` waits for a session to close its source
        before leaving it to finish on its own.
    :param max_abandoned: hung sessions allowed to linger before opens are refused.
    """

    stall_timeout: float = 3.0
    open_timeout: float = 10.0
    release_timeout: float = 2.0
    max_abandoned: int = 2

    def __post_init__(self) -> None:
        if self.stall_timeout <= 0 or self.open_timeout <= 0 or self.release_timeout < 0:
            raise ValueError('stall_timeout and open_timeout must be > 0, '
                             'release_timeout >= 0')
        if self.max_abandoned < 1:
            raise ValueError('max_abandoned must be >= 1')


def check_frame(frame, expected_shape: tuple[int, ...] | None) -> str | None:
    """Return why ``frame`` must not be published, or ``None`` when it is fine.

    :param frame: what the source returned.
    :param expected_shape: the shape of this session's first good frame, if any.
    """
    if frame is None:
        return 'read returned no frame'
    if not isinstance(frame, np.ndarray):
        return f'frame is a {type(frame).__name__}, not an array'
    if frame.size == 0:
        return 'empty frame'
    if frame.dtype != np.uint8:
        return f'frame has dtype {frame.dtype}, expected uint8'
    if frame.ndim != 3 or frame.shape[2] != 3:
        return f'frame has shape {frame.shape}, expected HxWx3 (bgr8)'
    if frame.shape[0] * frame.shape[1] > MAX_FRAME_PIXELS:
        return f'frame of {frame.shape[1]}x{frame.shape[0]} exceeds the size limit'
    if expected_shape is not None and frame.shape != expected_shape:
        return (f'frame size changed from {expected_shape[1]}x{expected_shape[0]} '
                f'to {frame.shape[1]}x{frame.shape[0]}')
    return None


class CaptureSession:
    """One open of the source, owned by one daemon thread from open to close."""

    _OK = 'ok'
    _ERROR = 'error'
    _CONFIG = 'config'

    def __init__(self, factory: Callable[[], FrameSource], stamp: Callable[[], int],
                 name: str = 'camera-session'):
        self._factory = factory
        self._stamp = stamp
        self._cond = threading.Condition()
        self._items: deque = deque(maxlen=4)
        self._opened: tuple[str, str] | None = None
        self._stopping = False
        self._source: FrameSource | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.dropped = 0

    def start(self) -> None:
        """Start the session thread (it opens the source)."""
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Return whether the session thread still runs (and may hold the handle)."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Ask the thread to close the source and exit; never touches the handle."""
        with self._cond:
            self._stopping = True
            source = self._source
            self._cond.notify_all()
        if source is not None:
            source.interrupt()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the thread to exit; return whether it did."""
        if self._thread.ident is not None:
            self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()

    def wait_opened(self, timeout: float) -> tuple[str, str] | None:
        """Wait for the open result ``(kind, message)``; ``None`` on timeout or stop."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._opened is None and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._opened

    def get(self, timeout: float) -> tuple | None:
        """Return the oldest mailbox item, or ``None`` after ``timeout`` s or a stop."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._items and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._items.popleft() if self._items else None

    def _post(self, item: tuple) -> None:
        with self._cond:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()

    def _set_opened(self, kind: str, message: str) -> None:
        with self._cond:
            self._opened = (kind, message)
            self._cond.notify_all()

    def _is_stopping(self) -> bool:
        with self._cond:
            return self._stopping

    def _run(self) -> None:
        source = None
        try:
            try:
                source = self._factory()
                with self._cond:
                    self._source = source
                source.open()
            except SourceConfigError as exc:
                self._set_opened(self._CONFIG, str(exc))
                return
            except SourceOpenError as exc:
                self._set_opened(self._ERROR, str(exc))
                return
            self._set_opened(self._OK, '')
            self._read_loop(source)
        except Exception as exc:  # noqa: BLE001 - a session must report, never die silently
            _LOG.debug('capture session failed: %r', exc)
            if self._opened is None:
                self._set_opened(self._ERROR, f'open failed: {exc!r}')
            else:
                self._post((_LOST, f'capture failed: {exc!r}'))
        finally:
            if source is not None:
                source.close()

    def _read_loop(self, source: FrameSource) -> None:
        while not self._is_stopping():
            try:
                frame = source.read()
            except SourceEnded as exc:
                self._post((_END, str(exc), isinstance(exc, SourceDamaged)))
                return
            except SourceReadError as exc:
                self._post((_LOST, str(exc)))
                return
            if self._is_stopping():
                return
            if frame is None:
                self._post((_FAIL, 'read returned no frame'))
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping, FAILED_READ_PAUSE_SEC)
                continue
            self._post((_FRAME, frame, self._stamp()))


class CaptureWorker:
    """Supervise sessions: open with backoff, watch for stalls, deliver frames.

    :param factory: builds a fresh, unopened source for each attempt.
    :param config: capture timing.
    :param machine: the reconnect state machine (the worker is its only writer
        while running; read it through :meth:`status`).
    :param on_frame: called with ``(frame, stamp_ns)`` for every good frame, on the
        supervisor thread.
    :param on_status: called with a snapshot whenever the state changes and after
        every failed open attempt.
    :param stamp: capture time source in nanoseconds (the node's clock).
    """

    def __init__(self, factory: Callable[[], FrameSource], config: CaptureConfig,
                 machine: ReconnectMachine, on_frame: FrameCallback,
                 on_status: StatusCallback, stamp: Callable[[], int] = time.time_ns):
        self._factory = factory
        self._config = config
        self._machine = machine
        self._on_frame = on_frame
        self._on_status = on_status
        self._stamp = stamp
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._session: CaptureSession | None = None
        self._abandoned: list[CaptureSession] = []
        self._expected_shape: tuple[int, ...] | None = None
        self._last_emitted: tuple[CameraState, int] | None = None
        self._thread = threading.Thread(target=self._run, name='camera-capture', daemon=True)
        self.callback_errors = 0

    # ---- control (any thread) -------------------------------------------------------

    def start(self) -> None:
        """Start capturing (CONNECTING)."""
        with self._lock:
            self._machine.start()
        self._emit()
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop capturing and release the source within a bounded time.

        :param timeout: seconds to wait for the source to be closed (default: the
            configured ``release_timeout``); a session still blocked in the driver
            after that is abandoned and closes its handle when the call returns.
        :return: whether every thread and handle was released within the time.
        """
        timeout = self._config.release_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self._stop.set()
        session = self._session
        if session is not None:
            session.stop()
        if self._thread.ident is not None:
            self._thread.join(max(0.1, deadline - time.monotonic()))
        released = not self._thread.is_alive()
        if session is not None and not session.join(deadline - time.monotonic()):
            self._abandon(session)
            released = False
        with self._lock:
            self._machine.stop()
            self._session = None
        self._emit()
        # Sessions abandoned earlier (stalls) may still hold a handle too.
        return released and self.abandoned == 0

    def status(self) -> CameraStatus:
        """Return a snapshot of the state machine (thread-safe)."""
        with self._lock:
            return self._machine.snapshot()

    @property
    def abandoned(self) -> int:
        """Return how many abandoned sessions are still blocked in the driver."""
        self._reap()
        return len(self._abandoned)

    def wait_released(self, timeout: float) -> bool:
        """Wait until no thread of this worker is alive; return whether that happened."""
        deadline = time.monotonic() + timeout
        for thread_owner in [self] + list(self._abandoned):
            remaining = max(0.0, deadline - time.monotonic())
            if thread_owner is self:
                if self._thread.ident is not None:
                    self._thread.join(remaining)
            else:
                thread_owner.join(remaining)
        return not self._thread.is_alive() and self.abandoned == 0

    # ---- supervisor thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                state = self.status().state
                if state in WAITING_STATES:
                    self._attempt()
                elif state == CameraState.STREAMING:
                    self._stream_step()
                elif state == CameraState.STALLED:
                    self._drop_session()
                    self._update(self._machine.on_released)
                else:
                    # ENDED or FAILED: nothing to do until an operator acts.
                    self._stop.wait()
        except Exception as exc:  # noqa: BLE001 - report a bug instead of dying silently
            _LOG.exception('camera capture worker crashed')
            self._update(self._machine.on_config_error, f'capture worker crashed: {exc!r}')
        finally:
            self._drop_session()

    def _attempt(self) -> None:
        wait = self.status().next_attempt_in
        if wait > 0:
            self._stop.wait(wait)
            return
        hung = self.abandoned
        if hung >= self._config.max_abandoned:
            self._update(self._machine.on_open_failed,
                         f'{hung} capture threads are still blocked in the driver; '
                         'not opening the source again until they return')
            return
        session = CaptureSession(self._factory, self._stamp)
        self._session = session
        if self._stop.is_set():
            return
        session.start()
        result = session.wait_opened(self._config.open_timeout + 1.0)
        if self._stop.is_set():
            return
        if result is None:
            self._drop_session()
            self._update(self._machine.on_open_failed,
                         f'opening the source took longer than {self._config.open_timeout:g} s')
            return
        kind, message = result
        if kind == CaptureSession._OK:
            self._expected_shape = None
            self._update(self._machine.on_opened)
            return
        self._drop_session()
        if kind == CaptureSession._CONFIG:
            self._update(self._machine.on_config_error, message)
        else:
            self._update(self._machine.on_open_failed, message)

    def _stream_step(self) -> None:
        session = self._session
        item = session.get(self._config.stall_timeout) if session is not None else None
        if self._stop.is_set():
            return
        if item is None:
            self._update(self._machine.on_stall,
                         f'no frame for {self._config.stall_timeout:g} s (stream stalled)')
            return
        kind = item[0]
        if kind == _FRAME:
            frame, stamp_ns = item[1], item[2]
            problem = check_frame(frame, self._expected_shape)
            if problem is not None:
                self._failure(problem)
                return
            self._expected_shape = frame.shape
            with self._lock:
                self._machine.on_frame()
            try:
                self._on_frame(frame, stamp_ns)
            except Exception as exc:  # noqa: BLE001 - a publish error must not kill capture
                self.callback_errors += 1
                _LOG.debug('frame callback failed: %r', exc)
        elif kind == _FAIL:
            self._failure(item[1])
        elif kind == _LOST:
            self._drop_session()
            self._update(self._machine.on_lost, item[1])
        elif kind == _END:
            self._drop_session()
            self._update(self._machine.on_end, item[1], item[2])

    def _failure(self, problem: str) -> None:
        state = self._update(self._machine.on_bad_frame, problem)
        if state != CameraState.STREAMING:
            self._drop_session()

    def _drop_session(self) -> None:
        """Stop the current session; abandon it if it does not exit at once."""
        session, self._session = self._session, None
        if session is None:
            return
        session.stop()
        if not session.join(0.2):
            self._abandon(session)

    def _abandon(self, session: CaptureSession) -> None:
        with self._lock:
            if session not in self._abandoned:
                self._abandoned.append(session)

    def _reap(self) -> None:
        with self._lock:
            self._abandoned = [s for s in self._abandoned if s.alive]

    def _update(self, event: Callable, *args) -> CameraState:
        with self._lock:
            state = event(*args)
        self._emit()
        return state

    def _emit(self) -> None:
        status = self.status()
        # Every failed attempt is reported too, so the owner can log a long outage.
        key = (status.state, status.failed_attempts)
        if key == self._last_emitted:
            return
        self._last_emitted = key
        try:
            self._on_status(status)
        except Exception as exc:  # noqa: BLE001 - reporting must not kill capture
            self.callback_errors += 1
            _LOG.debug('status callback failed: %r', exc)
