"""The recorder core: trigger, bounded queue, dispatcher thread, backend, disk guards.

ROS-free. The node calls :meth:`Recorder.offer` from its image callback (it only
decides and enqueues, never blocks), :meth:`Recorder.set_hands` from the hands/count
callback, and :meth:`Recorder.snapshot` from diagnostics. One dispatcher thread takes
frames from the queue, checks the disk guards, names the files and hands jobs to the
backend; the backend reports results back from its own threads.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import logging
import threading
import time
from typing import Callable

import numpy as np

from pianist_ros.common.rate import Percentiles
from pianist_ros.recorder.backends import EncoderBackend
from pianist_ros.recorder.backends import Job
from pianist_ros.recorder.backends import make_backend
from pianist_ros.recorder.backends import Result
from pianist_ros.recorder.config import RecorderConfig
from pianist_ros.recorder.errors import BackendError
from pianist_ros.recorder.errors import StorageError
from pianist_ros.recorder.policy import Decision
from pianist_ros.recorder.policy import DropOldestQueue
from pianist_ros.recorder.policy import TriggerPolicy
from pianist_ros.recorder.policy import TriggerSettings
from pianist_ros.recorder.storage import GuardState
from pianist_ros.recorder.storage import SessionStore
from pianist_ros.recorder.storage import stamp_text

_LOG = logging.getLogger(__name__)

#: How long one backend.submit may wait before the dispatcher re-checks shutdown (s).
_SUBMIT_SLICE_SEC = 0.2


@dataclass
class _Queued:
    frame: np.ndarray
    encoding: str
    stamp_ns: int
    hands: int | None


def trigger_settings(cfg: RecorderConfig) -> TriggerSettings:
    """Return the trigger part of ``cfg``."""
    return TriggerSettings(cfg.trigger_every_n, cfg.trigger_max_rate_hz,
                           cfg.trigger_only_with_hands, cfg.trigger_hands_max_age_sec)


class Recorder:
    """Record triggered frames as JPEG files through an :class:`EncoderBackend`.

    :param cfg: validated configuration.
    :param backend: the encoder backend (default: built from ``cfg.backend``).
    :param store: where files go (default: a new session under ``cfg.output_path``).
    :param clock: monotonic clock, injectable for trigger tests.
    :raises BackendError: when the configured backend cannot be built.
    """

    def __init__(self, cfg: RecorderConfig, backend: EncoderBackend | None = None,
                 store: SessionStore | None = None,
                 clock: Callable[[], float] = time.monotonic, topic: str = ''):
        self.cfg = cfg
        self.topic = topic or cfg.topic
        self.backend = backend if backend is not None else make_backend(cfg)
        self.store = store if store is not None else SessionStore(
            cfg.output_path, cfg.max_total_bytes, cfg.min_free_bytes)
        self._clock = clock
        self._lock = threading.Lock()
        self._policy = TriggerPolicy(trigger_settings(cfg), enabled=cfg.enabled)
        self._queue: DropOldestQueue[_Queued] = DropOldestQueue(cfg.queue_depth)
        self._sidecar = cfg.sidecar
        self._times = Percentiles(1000)
        self._thread: threading.Thread | None = None
        self._closing = False
        self._flush_deadline = float('inf')
        self._seq = 0
        self._started = False
        self._closed = False
        self.counters = {
            'frames_received': 0, 'frames_triggered': 0, 'frames_submitted': 0,
            'frames_written': 0, 'bytes_written': 0, 'dropped_queue_full': 0,
            'dropped_disk_guard': 0, 'dropped_shutdown': 0, 'dropped_worker_lost': 0,
            'dropped_backend_error': 0, 'dropped_write_error': 0, 'write_errors': 0,
        }
        self.last_error = ''

    # ---- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Open the session directory, start the backend and the dispatcher.

        An unwritable directory is not fatal: it is reported and retried per frame.

        :raises BackendError: when the backend cannot start.
        """
        try:
            self.store.open()
        except StorageError as exc:
            self.last_error = str(exc)
        self.backend.start(self._on_result)
        self._thread = threading.Thread(target=self._dispatch, name='recorder-dispatch',
                                        daemon=True)
        self._thread.start()
        self._started = True

    def close(self, timeout: float | None = None) -> dict:
        """Stop: flush queued frames within ``timeout`` s, count the rest dropped, reap.

        Idempotent. :return: the final :meth:`snapshot`.
        """
        if self._closed:
            return self.snapshot()
        self._closed = True
        timeout = self.cfg.flush_timeout_sec if timeout is None else timeout
        start = time.monotonic()
        with self._lock:
            self._closing = True
            self._flush_deadline = start + timeout
        self._queue.close()
        if self._thread is not None:
            self._thread.join(timeout + 2 * _SUBMIT_SLICE_SEC + 1.0)
        leftover = self._queue.drain()
        remaining = max(self._flush_deadline - time.monotonic(), 0.0)
        abandoned = self.backend.close(remaining) if self._started else 0
        with self._lock:
            self.counters['dropped_shutdown'] += len(leftover) + abandoned
        return self.snapshot()

    # ---- inputs (called from ROS callbacks: never block) -----------------------------

    def offer(self, frame: np.ndarray, encoding: str, stamp_ns: int) -> Decision:
        """Decide whether to record ``frame`` and enqueue it; never blocks.

        ``frame`` must stay unmodified until encoded (a message buffer view is fine).
        """
        now = self._clock()
        with self._lock:
            self.counters['frames_received'] += 1
            if self._closing:
                return Decision.DISABLED
            decision = self._policy.decide(now)
            if decision is not Decision.RECORD:
                return decision
            self.counters['frames_triggered'] += 1
            hands = self._policy.hands(now)
        try:
            evicted = self._queue.put(_Queued(frame, encoding, stamp_ns, hands))
        except RuntimeError:  # closed between the check and the put
            return Decision.DISABLED
        if evicted is not None:
            with self._lock:
                self.counters['dropped_queue_full'] += 1
        return decision

    def set_hands(self, count: int) -> None:
        """Record the latest hands/count value."""
        with self._lock:
            self._policy.set_hands(count, self._clock())

    def set_enabled(self, enabled: bool) -> None:
        """Start or stop recording at run time."""
        with self._lock:
            self._policy.enabled = bool(enabled)

    @property
    def enabled(self) -> bool:
        """Return whether recording is on."""
        with self._lock:
            return self._policy.enabled

    def set_trigger(self, settings: TriggerSettings) -> None:
        """Replace the trigger settings (counters keep running)."""
        with self._lock:
            self._policy.settings = settings

    def set_sidecar(self, enabled: bool) -> None:
        """Turn JSON sidecars on or off for frames not yet dispatched."""
        self._sidecar = bool(enabled)

    # ---- dispatcher thread -------------------------------------------------------------

    def _dispatch(self) -> None:
        while True:
            item = self._queue.get(_SUBMIT_SLICE_SEC)
            with self._lock:
                closing = self._closing
                late = closing and time.monotonic() >= self._flush_deadline
            if item is None:
                if closing:
                    return
                continue
            if late:
                with self._lock:
                    self.counters['dropped_shutdown'] += 1
                continue
            self._dispatch_one(item)

    def _dispatch_one(self, item: _Queued) -> None:
        state = self.store.check()
        if state is not GuardState.OK:
            with self._lock:
                self.counters['dropped_disk_guard'] += 1
                self.last_error = self.store.last_error
            return
        with self._lock:
            self._seq += 1
            seq = self._seq
        path = self.store.path_for(seq, item.stamp_ns)
        sidecar = None
        if self._sidecar:
            height, width = item.frame.shape[:2]
            sidecar = json.dumps({
                'seq': seq, 'stamp_ns': item.stamp_ns, 'stamp': stamp_text(item.stamp_ns),
                'hands': item.hands, 'width': width, 'height': height,
                'encoding': item.encoding, 'topic': self.topic, 'backend': self.backend.name,
            })
        job = Job(seq, item.frame, item.encoding, path, sidecar, item.stamp_ns)
        while True:
            try:
                if self.backend.submit(job, _SUBMIT_SLICE_SEC):
                    with self._lock:
                        self.counters['frames_submitted'] += 1
                    return
            except BackendError as exc:
                with self._lock:
                    self.counters['dropped_backend_error'] += 1
                    self.last_error = str(exc)
                return
            with self._lock:
                give_up = self._closing and time.monotonic() >= self._flush_deadline
                if give_up:
                    self.counters['dropped_shutdown'] += 1
            if give_up:
                return

    # ---- results (called from backend threads) -----------------------------------------

    def _on_result(self, result: Result) -> None:
        if result.ok and result.paths:
            self.store.add(result.paths, result.nbytes)
        elif not result.ok and not result.lost:
            self.store.mark_write_error(result.error)
        with self._lock:
            if result.seq < 0:  # a whole file (h264 video), not a frame
                self.counters['bytes_written'] += result.nbytes
                return
            if result.ok:
                self.counters['frames_written'] += 1
                self.counters['bytes_written'] += result.nbytes
                self._times.add(result.total_sec)
            elif result.lost:
                self.counters['dropped_worker_lost'] += 1
                self.last_error = result.error
            else:
                # write_errors counts the failures; the frame itself is dropped, and
                # dropped_write_error keeps written + dropped == triggered.
                self.counters['write_errors'] += 1
                self.counters['dropped_write_error'] += 1
                self.last_error = result.error

    # ---- reporting ---------------------------------------------------------------------

    def snapshot(self) -> dict:
        """Return counters, queue state, timings and disk state as a flat dict."""
        with self._lock:
            snap = dict(self.counters)
            snap['frames_dropped'] = sum(v for k, v in self.counters.items()
                                         if k.startswith('dropped_'))
            snap['encode_write_ms_p50'] = self._times.percentile(50) * 1000.0
            snap['encode_write_ms_p99'] = self._times.percentile(99) * 1000.0
            snap['enabled'] = self._policy.enabled
            snap['last_error'] = self.last_error
        snap['backend'] = self.backend.name
        snap['queue_depth'] = len(self._queue)
        snap['queue_capacity'] = self._queue.depth
        snap['in_flight'] = self.backend.in_flight()
        snap['bytes_on_disk'] = self.store.bytes_on_disk
        snap['files_rotated'] = self.store.files_rotated
        snap['free_bytes'] = self.store.free_bytes if self.store.free_bytes is not None else -1
        snap['disk_guard'] = self.store.state.name
        snap['session_dir'] = self.store.session_dir
        snap.update(self.backend.stats())
        return snap


def assess(snap: dict, prev: dict | None) -> tuple[str, str]:
    """Return ``(level, message)`` for diagnostics from two consecutive snapshots.

    ERROR: disk guard tripped, directory unusable, or writes failing with none
    succeeding. WARN: frames dropped or a worker restarted since ``prev``. Else OK.
    """
    prev = prev or {}

    def grew(key: str) -> int:
        return int(snap.get(key, 0)) - int(prev.get(key, 0))

    if snap.get('disk_guard') == 'LOW_DISK':
        return 'ERROR', f'disk guard: {snap.get("last_error", "")}'
    if snap.get('disk_guard') == 'DIR_ERROR':
        return 'ERROR', f'output directory unusable: {snap.get("last_error", "")}'
    if grew('write_errors') > 0 and grew('frames_written') == 0:
        return 'ERROR', f'writes failing: {snap.get("last_error", "")}'
    if grew('dropped_backend_error') > 0 and grew('frames_written') == 0:
        return 'ERROR', f'encoder backend failing: {snap.get("last_error", "")}'
    problems = []
    if grew('frames_dropped') > 0:
        problems.append(f'{grew("frames_dropped")} frame(s) dropped')
    if grew('worker_restarts') > 0:
        problems.append(f'{grew("worker_restarts")} encoder worker restart(s)')
    if grew('write_errors') > 0:
        problems.append(f'{grew("write_errors")} write error(s)')
    if problems:
        return 'WARN', '; '.join(problems)
    if not snap.get('enabled'):
        return 'OK', 'recording disabled'
    return 'OK', f'recording ({snap.get("backend")})'


def _errno_hint(error: str) -> str:
    """Return what happens next after a failed write described by ``error``."""
    if 'No space left' in error or 'Disk quota exceeded' in error:
        return 'frames are dropped until space is back'
    return 'frames are dropped until writes succeed again'


def worker_restart_line(prev: dict | None, snap: dict) -> str | None:
    """Return a WARN line when encoder workers died and were respawned since ``prev``.

    The backend respawns a dead worker on its own; this makes the event reach the log
    (journald), not only one diagnostics period, with the last worker's exit text.
    """
    prev = prev or {}  # counters start at 0 with the recorder
    grew = int(snap.get('worker_restarts', 0)) - int(prev.get('worker_restarts', 0))
    if grew <= 0:
        return None
    detail = snap.get('last_worker_error') or 'no detail'
    return (f'{grew} encoder worker(s) died and were respawned '
            f'({snap.get("worker_restarts")} in total); last: {detail}')


class StorageAlarm:
    """Turn consecutive snapshots into log lines about storage trouble and its end.

    :meth:`update` returns ``(level, text)`` while a problem lasts (the caller
    throttles these) and one ``('INFO', ...)`` line when frames are written again.
    Levels: ERROR for an unusable directory or failing writes, WARN for the
    ``min_free_bytes`` guard (the recorder's own, deliberate stop).
    """

    def __init__(self):
        self._prev: dict = {}
        self._problem = ''
        self._dropped_at_start = 0

    @property
    def previous(self) -> dict:
        """Return the snapshot of the last :meth:`update` (empty before the first)."""
        return self._prev

    @property
    def problem(self) -> str:
        """Return what kind of trouble is ongoing (empty when none)."""
        return self._problem

    def update(self, snap: dict) -> tuple[str, str] | None:
        """Return the log line (level, text) that ``snap`` calls for, or None."""
        prev, self._prev = self._prev, snap

        def grew(key: str) -> int:
            return int(snap.get(key, 0)) - int(prev.get(key, 0))

        error = str(snap.get('last_error', ''))
        guard = snap.get('disk_guard')
        line = None
        if guard == 'DIR_ERROR':
            line = ('ERROR', 'directory', f'cannot use the {error}; frames are dropped, the '
                                          'directory is retried on every frame')
        elif grew('write_errors') > 0:
            line = ('ERROR', 'write', f'{error.removeprefix("StorageError: ")}; '
                                      f'{_errno_hint(error)} ({snap.get("write_errors")} '
                                      f'failed writes so far)')
        elif guard == 'LOW_DISK':
            line = ('WARN', 'low disk', f'{error}; frames are dropped until free space is '
                                        'back above min_free_bytes')
        if line is not None:
            if not self._problem:
                self._dropped_at_start = int(prev.get('frames_dropped', 0))
            self._problem = line[1]
            return line[0], line[2]
        if self._problem and guard == 'OK' and grew('frames_written') > 0:
            lost = int(snap.get('frames_dropped', 0)) - self._dropped_at_start
            what, self._problem = self._problem, ''
            return 'INFO', (f'recording again into {snap.get("session_dir")} after the '
                            f'{what} problem; {lost} frame(s) dropped meanwhile')
        return None


def shutdown_summary(snap: dict) -> str:
    """Return the one-line account of a closed recorder, every dropped frame by cause."""
    causes = ', '.join(f'{v} {k[len("dropped_"):].replace("_", " ")}'
                       for k, v in snap.items() if k.startswith('dropped_') and v)
    text = (f'recorder stopped: {snap["frames_triggered"]} triggered, '
            f'{snap["frames_written"]} written, {snap["frames_dropped"]} dropped')
    if causes:
        text += f' ({causes})'
    missing = snap['frames_triggered'] - snap['frames_written'] - snap['frames_dropped']
    if missing:
        text += f'; {missing} unaccounted for (a bug: please report)'
    return text
