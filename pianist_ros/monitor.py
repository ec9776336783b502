"""Stack monitor: a status line, and systemd's READY / WATCHDOG only while frames flow.

The node counts ``camera/camera_info`` (one per frame) and ``hands/count`` (one per
detection) and logs one status line every ``period`` seconds. Started by systemd
(``NOTIFY_SOCKET`` set) it also sends ``READY=1`` once both streams deliver,
``STATUS=<status line>``, and, when ``WatchdogSec=`` is set, ``WATCHDOG=1`` only
while both streams delivered within half the watchdog timeout. A pipeline that hangs
while the process stays alive therefore stops petting, and systemd restarts it.
"""

from __future__ import annotations

import sys
import threading
import time

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Int32

from pianist_ros.common import topics
from pianist_ros.common.params import declare
from pianist_ros.common.params import Param
from pianist_ros.common.params import values
from pianist_ros.common.rate import RateMeter
from pianist_ros.common.systemd import FlowWatchdog
from pianist_ros.common.systemd import Notifier
from pianist_ros.common.systemd import watchdog_interval

NODE_NAME = 'stack_monitor'

#: Parameters of the monitor (it has no section in config/pianist.yaml: defaults fit).
SCHEMA: tuple[Param, ...] = (
    Param('require_detector', True,
          'READY / WATCHDOG also need hands/count results (false when the detector is off)',
          read_only=True),
)

#: Freshness window for READY when systemd gives no watchdog timeout, in seconds.
READY_MAX_AGE_SEC = 5.0
#: How often readiness is checked without a watchdog, in seconds.
READY_CHECK_SEC = 0.5


class StackMonitorNode(Node):
    """Count camera_info (one per frame) and hands/count, and notify systemd.

    :param period: seconds between status lines (0 disables the log line).
    :param require_detector: override the ``require_detector`` parameter.
    :param notifier: where notifications go (default: ``$NOTIFY_SOCKET``).
    :param watchdog_sec: watchdog timeout (default: ``$WATCHDOG_USEC``; 0 disables).
    """

    def __init__(self, period: float = 5.0, require_detector: bool | None = None,
                 notifier: Notifier | None = None, watchdog_sec: float | None = None,
                 **kwargs):
        self._lock = threading.Lock()
        self._camera = RateMeter(window_sec=period or 5.0)
        self._detector = RateMeter(window_sec=period or 5.0)
        self._hands = -1
        self._notifier: Notifier | None = None
        self._flow: FlowWatchdog | None = None
        self._watchdog_sec: float | None = None
        self._petting = False
        self.pets = 0
        super().__init__(NODE_NAME, **kwargs)
        declare(self, SCHEMA)
        config = values(self, SCHEMA)
        if require_detector is None:
            require_detector = bool(config['require_detector'])
        self._notifier = notifier if notifier is not None else self._notifier_from_env()
        if watchdog_sec is None:
            watchdog_sec = watchdog_interval()
        self._watchdog_sec = watchdog_sec if watchdog_sec and watchdog_sec > 0 else None
        streams = ('camera', 'detector') if require_detector else ('camera',)
        max_age = self._watchdog_sec / 2.0 if self._watchdog_sec else READY_MAX_AGE_SEC
        self._flow = FlowWatchdog(streams, max_age)

        self.create_subscription(CameraInfo, topics.CAMERA_INFO, self._on_camera_info,
                                 topics.SENSOR_QOS)
        self.create_subscription(Int32, topics.HANDS_COUNT, self._on_hands_count,
                                 topics.RESULT_QOS)
        if period > 0:
            self.create_timer(period, self._on_status_timer)
        if self._notifier.enabled:
            # Pet at a quarter of the timeout: two missed ticks on a loaded CPU still
            # land inside it.
            check = self._watchdog_sec / 4.0 if self._watchdog_sec else READY_CHECK_SEC
            self.create_timer(check, self._on_notify_timer)
            timeout = f'{self._watchdog_sec:.1f} s' if self._watchdog_sec else 'off'
            self.get_logger().info(
                f'systemd notify on; watchdog {timeout}; streams {", ".join(streams)}')

    def _notifier_from_env(self) -> Notifier:
        try:
            return Notifier()
        except ValueError as exc:
            self.get_logger().warning(f'{exc}; systemd notifications disabled')
            return Notifier('')

    def _on_camera_info(self, _msg: CameraInfo) -> None:
        now = time.monotonic()
        with self._lock:
            self._camera.tick(now)
            self._flow.seen('camera', now)

    def _on_hands_count(self, msg: Int32) -> None:
        now = time.monotonic()
        with self._lock:
            self._detector.tick(now)
            self._hands = msg.data
            if 'detector' in self._flow.streams:
                self._flow.seen('detector', now)

    def status_line(self) -> str:
        """Return the status line (also used by tests and as systemd STATUS=)."""
        now = time.monotonic()
        with self._lock:
            cam, det, hands = self._camera.rate(now), self._detector.rate(now), self._hands
        hands_text = 'n/a' if hands < 0 else str(hands)
        return f'camera {cam:5.1f} fps | detector {det:5.1f} fps | hands {hands_text}'

    @property
    def watchdog_sec(self) -> float | None:
        """Return the watchdog timeout in seconds, or ``None`` when off."""
        return self._watchdog_sec

    def _on_status_timer(self) -> None:
        line = self.status_line()
        if self._flow.ready_sent and not self._petting:
            line = 'STALLED | ' + line
        self.get_logger().info(line)
        if self._notifier.enabled:
            self._notifier.status(line)

    def _on_notify_timer(self) -> None:
        now = time.monotonic()
        with self._lock:
            decision = self._flow.evaluate(now)
        if decision.ready:
            self._petting = True
            self._notifier.ready(self.status_line())
            self.get_logger().info('frames flowing: told systemd READY=1')
        if decision.pet and self._watchdog_sec:
            if self._notifier.watchdog():
                self.pets += 1
            else:
                self.get_logger().warning(
                    f'watchdog notify failed: {self._notifier.last_error}',
                    throttle_duration_sec=30.0)
        if decision.pet != self._petting and self._flow.ready_sent:
            self._petting = decision.pet
            self._log_flow_change(decision.stale)

    def _log_flow_change(self, stale: tuple[str, ...]) -> None:
        if not stale:
            self.get_logger().info('frames flowing again: watchdog resumed')
            self._notifier.status(self.status_line())
            return
        text = (f'STALLED: no {" / ".join(stale)} messages for '
                f'{self._flow.max_age_sec:.1f} s')
        if self._watchdog_sec:
            text += (f'; watchdog paused, systemd restarts the service within '
                     f'{self._watchdog_sec:.1f} s unless frames resume')
        self.get_logger().error(text)
        self._notifier.status(text)

    def destroy_node(self) -> None:
        """Tell systemd we are stopping on purpose, close the socket, destroy the node."""
        if self._notifier is not None:
            if self._notifier.enabled:
                self._notifier.stopping('stopping')
            self._notifier.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the stack monitor alone (``ros2 run pianist_ros stack_monitor``)."""
    from pianist_ros.common.ros_main import run_node
    return run_node(StackMonitorNode, args)


if __name__ == '__main__':
    sys.exit(main())
