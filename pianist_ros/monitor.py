"""A small node that logs one status line: camera FPS, detector FPS, hands count."""

from __future__ import annotations

import threading
import time

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Int32

from pianist_ros.common import topics
from pianist_ros.common.rate import RateMeter


class StackMonitorNode(Node):
    """Count camera_info (one per frame) and hands/count (one per detection)."""

    def __init__(self, period: float = 5.0, **kwargs):
        self._lock = threading.Lock()
        self._camera = RateMeter(window_sec=period or 5.0)
        self._detector = RateMeter(window_sec=period or 5.0)
        self._hands = -1
        super().__init__('stack_monitor', **kwargs)
        self.create_subscription(CameraInfo, topics.CAMERA_INFO, self._on_camera_info,
                                 topics.SENSOR_QOS)
        self.create_subscription(Int32, topics.HANDS_COUNT, self._on_hands_count,
                                 topics.RESULT_QOS)
        if period > 0:
            self.create_timer(period, self._on_status_timer)

    def _on_camera_info(self, _msg: CameraInfo) -> None:
        with self._lock:
            self._camera.tick(time.monotonic())

    def _on_hands_count(self, msg: Int32) -> None:
        with self._lock:
            self._detector.tick(time.monotonic())
            self._hands = msg.data

    def status_line(self) -> str:
        """Return the status line (also used by tests)."""
        now = time.monotonic()
        with self._lock:
            cam, det, hands = self._camera.rate(now), self._detector.rate(now), self._hands
        hands_text = 'n/a' if hands < 0 else str(hands)
        return f'camera {cam:5.1f} fps | detector {det:5.1f} fps | hands {hands_text}'

    def _on_status_timer(self) -> None:
        self.get_logger().info(self.status_line())


def main(args: list[str] | None = None) -> int:
    """Run the stack monitor alone (``ros2 run pianist_ros stack_monitor``)."""
    from pianist_ros.common.ros_main import run_node
    return run_node(StackMonitorNode, args)
