"""Helpers for the telemetry tests: a plain HTTP client and real rclpy pipeline stand-ins.

The stand-ins are real nodes that publish real messages over DDS (camera/state,
/diagnostics, hands/count) with the names and keys of docs/contract.md, so the
bridge under test sees exactly what the camera and detector nodes send.
"""

from __future__ import annotations

from dataclasses import dataclass
import http.client
import json
import threading
import time

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from std_msgs.msg import Int32
from std_msgs.msg import String

from pianist_ros.common import diagnostics
from pianist_ros.common import topics


@dataclass
class HttpResult:
    """One HTTP exchange."""

    status: int
    headers: dict
    body: bytes
    elapsed: float

    def json(self):
        """Decode the body as JSON."""
        return json.loads(self.body)


def http_get(port: int, path: str, method: str = 'GET', timeout: float = 5.0,
             headers: dict | None = None, host: str = '127.0.0.1') -> HttpResult:
    """Make one request on a fresh connection and return status, headers, body, time."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return HttpResult(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body,
                          time.perf_counter() - start)
    finally:
        conn.close()


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class CameraStandIn(Node):
    """A node named 'camera' with the camera's latched state and 'camera' diagnostics."""

    def __init__(self, **kwargs):
        super().__init__('camera', **kwargs)
        self.state = 'STREAMING'
        self._pub_state = self.create_publisher(String, topics.CAMERA_STATE, topics.LATCHED_QOS)
        self._updater = diagnostics.make_updater(self, 'test-device', period=0.2)
        self._updater.add('camera', self._diagnose)
        self.set_state('STREAMING')

    def set_state(self, state: str) -> None:
        """Publish a new camera state (as the lifecycle camera does on every change)."""
        self.state = state
        self._pub_state.publish(String(data=state))

    def _diagnose(self, stat):
        level = diagnostics.OK if self.state == 'STREAMING' else diagnostics.WARN
        stat.summary(level, f'camera {self.state}')
        stat.add('state', self.state)
        stat.add('fps', 20.0)
        return stat


class DetectorStandIn(Node):
    """A node named 'hand_detector' publishing hands/count and 'detector' diagnostics.

    Frames come from a timer in their own callback group, diagnostics from the
    updater's timer in the default group; on a MultiThreadedExecutor the frame
    callback can be blocked (:meth:`hang`) while diagnostics keep flowing, as in a
    detector stuck inside MediaPipe.
    """

    def __init__(self, rate_hz: float = 20.0, **kwargs):
        super().__init__('hand_detector', **kwargs)
        self.level = diagnostics.OK
        self.message = 'processing'
        self.frames_enabled = True
        self.published = 0
        self._release = threading.Event()
        self._release.set()
        self._pub_count = self.create_publisher(Int32, topics.HANDS_COUNT, topics.RESULT_QOS)
        self._updater = diagnostics.make_updater(self, 'test-device', period=0.2)
        self._updater.add('detector', self._diagnose)
        self.create_timer(1.0 / rate_hz, self._on_frame_timer,
                          callback_group=MutuallyExclusiveCallbackGroup())

    def hang(self) -> None:
        """Block the frame callback (deliberately) until :meth:`release`."""
        self._release.clear()

    def release(self) -> None:
        """Unblock the frame callback."""
        self._release.set()

    def _on_frame_timer(self) -> None:
        # Deliberately blocking: this models a detector hung in inference.
        self._release.wait(timeout=60.0)
        if self.frames_enabled:
            self.published += 1
            self._pub_count.publish(Int32(data=self.published % 3))

    def _diagnose(self, stat):
        stat.summary(self.level, self.message)
        stat.add('fps', 20.0)
        stat.add('frames_processed', self.published)
        return stat

    def stop_diagnostics(self) -> None:
        """Stop publishing diagnostics (a crashed node)."""
        self._updater.removeByName('detector')


class SpinThread:
    """Spin an executor in a background thread; pausable to simulate a hung executor."""

    def __init__(self, executor):
        self.executor = executor
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._running.is_set():
                self.executor.spin_once(timeout_sec=0.05)
            else:
                time.sleep(0.05)

    def pause(self) -> None:
        """Stop running callbacks."""
        self._running.clear()

    def resume(self) -> None:
        """Run callbacks again."""
        self._running.set()

    def stop(self) -> None:
        """Stop the thread and join it."""
        self._stop.set()
        self._thread.join(10.0)
