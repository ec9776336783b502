"""Counters, rates and the health verdict of the detector (ROS-free, thread-safe).

The subscription callback, the worker thread and the diagnostics timer all touch
these numbers, so every method takes the internal lock.
"""

from __future__ import annotations

from dataclasses import dataclass
import threading

from pianist_ros.common.rate import Percentiles
from pianist_ros.common.rate import RateMeter

OK = 'OK'
WARN = 'WARN'
ERROR = 'ERROR'


@dataclass(frozen=True)
class Report:
    """One diagnostics verdict: level name, message and the contract's key/values."""

    level: str
    message: str
    values: dict[str, str]


class DetectorStats:
    """Track frames received, skipped, processed, rejected and failed.

    :param rate_window_sec: window of the processed-frames rate.
    :param latency_samples: how many recent latencies the percentiles cover.
    """

    def __init__(self, rate_window_sec: float = 5.0, latency_samples: int = 1000):
        self._lock = threading.Lock()
        self._rate = RateMeter(window_sec=rate_window_sec)
        self._latency_samples = latency_samples
        self._latency = Percentiles(size=latency_samples)
        self.received = 0
        self.skipped = 0
        self.processed = 0
        self.rejected = 0
        self.failed = 0
        self.restarts = 0
        self.hands = 0
        self.last_error = ''
        self._last_frame_time: float | None = None
        # Arrival of the oldest frame received since the last one was answered
        # (processed, rejected or failed): the hang check measures from it.
        self._unanswered_since: float | None = None
        # When MediaPipe last became ready; None while it is starting or down, so that
        # a slow start shows as 'not running' rather than as a hang.
        self._ready_since: float | None = None
        self._reported = (0, 0, 0)

    def on_received(self, now: float, replaced: bool) -> None:
        """Record a frame arriving at monotonic ``now``; ``replaced`` if one was dropped."""
        with self._lock:
            self.received += 1
            self._last_frame_time = now
            if self._unanswered_since is None:
                self._unanswered_since = now
            if replaced:
                self.skipped += 1

    def on_processed(self, now: float, hands: int, latency_ms: float | None) -> None:
        """Record a frame whose results were published."""
        with self._lock:
            self.processed += 1
            self._unanswered_since = None
            self.hands = hands
            self._rate.tick(now)
            if latency_ms is not None:
                self._latency.add(latency_ms)

    def on_rejected(self, error: str) -> None:
        """Record a frame refused for its encoding, geometry or size."""
        with self._lock:
            self.rejected += 1
            self._unanswered_since = None
            self.last_error = error

    def on_failed(self, error: str) -> None:
        """Record a frame on which MediaPipe (or publishing) failed."""
        with self._lock:
            self.failed += 1
            self._unanswered_since = None
            self.last_error = error

    def on_detector_ready(self, now: float) -> None:
        """Record that MediaPipe became ready at monotonic ``now``; the hang check starts."""
        with self._lock:
            self._ready_since = now

    def on_detector_down(self) -> None:
        """Record that MediaPipe stopped (crashed or killed); the hang check pauses."""
        with self._lock:
            self._ready_since = None

    def on_restart(self) -> None:
        """Record a (re)start of the detector after a crash or failed start."""
        with self._lock:
            self.restarts += 1

    def fps(self, now: float) -> float:
        """Return processed frames per second over the window."""
        with self._lock:
            return self._rate.rate(now)

    def latency_ms(self, q: float) -> float:
        """Return the ``q``-th percentile of capture-to-publish latency (ms)."""
        with self._lock:
            return self._latency.percentile(q)

    def reset_latency(self) -> None:
        """Forget the latency samples so far (benchmarks call it after their warm-up)."""
        with self._lock:
            self._latency = Percentiles(size=self._latency_samples)

    def report(self, now: float, stale_after_sec: float) -> Report:
        """Return the verdict for one diagnostics period and start the next period.

        ERROR when frames arrived but none was processed (all rejected or failed), or
        when MediaPipe is ready and frames keep arriving (the last within
        ``stale_after_sec``) but none was answered for longer than ``stale_after_sec``
        (MediaPipe hung); WARN while waiting for the first frame, when frames stopped
        for longer than ``stale_after_sec``, or when some frames were rejected or
        failed; else OK.
        """
        with self._lock:
            age = -1.0 if self._last_frame_time is None else now - self._last_frame_time
            fps = self._rate.rate(now)
            d_processed = self.processed - self._reported[0]
            d_rejected = self.rejected - self._reported[1]
            d_failed = self.failed - self._reported[2]
            self._reported = (self.processed, self.rejected, self.failed)
            values = {
                'fps': f'{fps:.2f}',
                'latency_ms_p50': f'{self._latency.percentile(50):.1f}',
                'latency_ms_p99': f'{self._latency.percentile(99):.1f}',
                'hands': str(self.hands),
                'frames_processed': str(self.processed),
                'frames_rejected': str(self.rejected),
                'frames_skipped': str(self.skipped),
                'frames_failed': str(self.failed),
                'detector_restarts': str(self.restarts),
                'last_frame_age_sec': f'{age:.2f}',
                'last_error': self.last_error,
            }
            if self._last_frame_time is None:
                return Report(WARN, 'waiting for the first frame', values)
            if d_processed == 0 and (d_rejected or d_failed):
                what = 'rejected' if d_rejected >= d_failed else 'failed in MediaPipe'
                return Report(ERROR, f'every frame {what}: {self.last_error}', values)
            waiting = 0.0
            if self._unanswered_since is not None and self._ready_since is not None:
                waiting = now - max(self._unanswered_since, self._ready_since)
            if waiting > stale_after_sec and age <= stale_after_sec:
                return Report(ERROR, f'frames arriving but none processed for {waiting:.1f} s',
                              values)
            if age > stale_after_sec:
                return Report(WARN, f'no frame for {age:.1f} s', values)
            if d_rejected or d_failed:
                return Report(WARN, f'{d_rejected} frames rejected, {d_failed} failed: '
                                    f'{self.last_error}', values)
            return Report(OK, f'{fps:.1f} fps, {self.hands} hands', values)
