"""``hand_detector``: MediaPipe Hands on the newest camera frame, as a ROS 2 node.

The image callback only drops the frame into a one-slot mailbox (replacing and
counting any frame not yet processed); a worker thread owned by the node runs
MediaPipe and publishes. So the executor never blocks on inference and latency
never grows with a backlog: at most one frame waits.
"""

from __future__ import annotations

import dataclasses
import threading
import time

from geometry_msgs.msg import Point
from rcl_interfaces.msg import SetParametersResult
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import Image
from sensor_msgs.msg import PointCloud2
from sensor_msgs.msg import PointField
from std_msgs.msg import ColorRGBA
from std_msgs.msg import Header
from std_msgs.msg import Int32
from visualization_msgs.msg import Marker
from visualization_msgs.msg import MarkerArray

from pianist_ros.common import diagnostics
from pianist_ros.common import params
from pianist_ros.common import topics
from pianist_ros.common.device import device_id
from pianist_ros.detection import imaging
from pianist_ros.detection import packing
from pianist_ros.detection.annotate import draw_hands
from pianist_ros.detection.config import DetectorConfig
from pianist_ros.detection.config import NODE_NAME
from pianist_ros.detection.config import SCHEMA
from pianist_ros.detection.detector import Hand
from pianist_ros.detection.detector import HandDetector
from pianist_ros.detection.detector import LEFT
from pianist_ros.detection.detector import RIGHT
from pianist_ros.detection.errors import DetectorError
from pianist_ros.detection.errors import FrameError
from pianist_ros.detection.isolated import DetectorCrashedError
from pianist_ros.detection.isolated import ProcessHandDetector
from pianist_ros.detection.stats import DetectorStats

_LEVELS = {'OK': diagnostics.OK, 'WARN': diagnostics.WARN, 'ERROR': diagnostics.ERROR}
_LOG_THROTTLE_SEC = 5.0
#: Marker colours (RGBA) per anatomical hand; the annotated image uses the same hues.
_MARKER_COLORS = {LEFT: (0.24, 0.78, 0.24, 1.0), RIGHT: (0.12, 0.47, 0.9, 1.0)}
_OTHER_COLOR = (1.0, 0.78, 0.0, 1.0)
#: Fields whose change needs a new MediaPipe graph (everything but the diagnostics knob).
_GRAPH_FIELDS = ('max_num_hands', 'model_complexity', 'min_detection_confidence',
                 'min_tracking_confidence', 'static_image_mode', 'mirrored_input', 'backend')
#: Delay before restarting a detector that failed to start or crashed; doubles up to max.
_RESTART_DELAY_SEC = 0.5
_RESTART_DELAY_MAX_SEC = 30.0


class HandDetectorNode(Node):
    """Subscribe ``camera/image_raw``; publish hands count, landmarks, markers, annotation."""

    def __init__(self, **kwargs):
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._slot: Image | None = None
        self._config: DetectorConfig | None = None
        self._pending_config: DetectorConfig | None = None
        self._detector: HandDetector | ProcessHandDetector | None = None
        self._restart_delay = 0.0
        self._next_start = 0.0
        self._stats = DetectorStats()
        self._worker: threading.Thread | None = None
        self._pub_count = None
        self._pub_landmarks = None
        self._pub_markers = None
        self._pub_annotated = None
        self._updater = None
        super().__init__(NODE_NAME, **kwargs)
        params.declare(self, SCHEMA)
        # Registered after declaring, so only run-time changes reach it.
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._config = DetectorConfig.from_values(params.values(self, SCHEMA))
        self._pub_count = self.create_publisher(Int32, topics.HANDS_COUNT, topics.RESULT_QOS)
        self._pub_landmarks = self.create_publisher(
            PointCloud2, topics.HANDS_LANDMARKS, topics.RESULT_QOS)
        self._pub_markers = self.create_publisher(
            MarkerArray, topics.HANDS_MARKERS, topics.RESULT_QOS)
        self._pub_annotated = self.create_publisher(
            Image, topics.HANDS_IMAGE_ANNOTATED, topics.SENSOR_QOS)
        self._updater = diagnostics.make_updater(self, device_id())
        self._updater.add('detector', self._on_diagnostics)
        self._worker = threading.Thread(target=self._run_worker, name='hand_detector_worker',
                                        daemon=True)
        self._worker.start()
        self.create_subscription(Image, topics.IMAGE_RAW, self._on_image,
                                 topics.LATEST_ONLY_QOS)

    @property
    def detector_pid(self) -> int | None:
        """Return the pid of the MediaPipe child process (backend 'process'), else None."""
        detector = self._detector
        return detector.pid if isinstance(detector, ProcessHandDetector) else None

    @property
    def stats(self) -> DetectorStats:
        """Return the live counters (for benchmarks and the bringup status line)."""
        return self._stats

    # ---- executor side: cheap callbacks only ---------------------------------------

    def _on_image(self, msg: Image) -> None:
        with self._lock:
            replaced = self._slot is not None
            self._slot = msg
        self._stats.on_received(time.monotonic(), replaced)
        self._wake.set()

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        new = {p.name: p.value for p in parameters}
        err = params.check_values(SCHEMA, new)
        if err:
            return SetParametersResult(successful=False, reason=err)
        by_name = {p.name: p for p in SCHEMA}
        changes = {}
        for name, value in new.items():
            param = by_name.get(name)
            if param is None:
                continue
            if isinstance(param.default, float):
                value = float(value)
            changes[param.field] = value
        if changes:
            with self._lock:
                base = self._pending_config or self._config
                self._pending_config = dataclasses.replace(base, **changes)
        self._wake.set()
        return SetParametersResult(successful=True, reason='')

    def _on_diagnostics(self, stat):
        with self._lock:
            stale_after = self._config.stale_after_sec
        report = self._stats.report(time.monotonic(), stale_after)
        stat.summary(_LEVELS[report.level], report.message)
        for key, value in report.values.items():
            stat.add(key, value)
        stat.add('backend', self._config.backend)
        if self._detector is None:
            stat.mergeSummary(diagnostics.WARN, 'MediaPipe not running')
        return stat

    # ---- worker thread: MediaPipe and publishing -----------------------------------

    def _run_worker(self) -> None:
        while not self._stop.is_set():
            if self._detector is None:
                self._start_detector()
            # The timeout bounds shutdown and restart latency; frames wake us at once.
            self._wake.wait(0.5)
            with self._lock:
                self._wake.clear()
                msg, self._slot = self._slot, None
                pending, self._pending_config = self._pending_config, None
            if self._stop.is_set():
                break
            if pending is not None:
                self._apply_config(pending)
            if msg is None:
                continue
            if self._detector is None:
                self._stats.on_failed('MediaPipe is not running; frame dropped')
                continue
            try:
                self._process(msg)
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any frame
                if not self.context.ok():
                    break  # shutting down: publishers are gone, nothing to report
                self._stats.on_failed(f'{type(exc).__name__}: {exc}')
                self.get_logger().error(f'unexpected error on a frame: {exc!r}; going on',
                                        throttle_duration_sec=_LOG_THROTTLE_SEC)

    def _build(self, config: DetectorConfig) -> HandDetector | ProcessHandDetector:
        if config.backend == 'process':
            return ProcessHandDetector(config)
        return HandDetector(config)

    def _start_detector(self) -> None:
        """Start MediaPipe now or, after failures, once the backoff delay has passed."""
        if time.monotonic() < self._next_start:
            return
        config = self._config
        try:
            detector = self._build(config)
        except DetectorError as exc:
            self._restart_delay = min(_RESTART_DELAY_MAX_SEC,
                                      max(_RESTART_DELAY_SEC, 2 * self._restart_delay))
            self._next_start = time.monotonic() + self._restart_delay
            self._stats.on_failed(str(exc))
            self.get_logger().error(f'cannot start MediaPipe Hands: {exc}; retrying in '
                                    f'{self._restart_delay:.1f} s',
                                    throttle_duration_sec=_LOG_THROTTLE_SEC)
            return
        self._detector = detector
        self._stats.on_detector_ready(time.monotonic())
        pid = f', pid {detector.pid}' if isinstance(detector, ProcessHandDetector) else ''
        self.get_logger().info(
            f'MediaPipe Hands ready ({config.backend}{pid}; max_num_hands='
            f'{config.max_num_hands}, model_complexity={config.model_complexity}, '
            f'static_image_mode={config.static_image_mode}, mirrored_input='
            f'{config.mirrored_input}); processing {topics.IMAGE_RAW}')

    def _on_crash(self, exc: DetectorCrashedError) -> None:
        detector, self._detector = self._detector, None
        self._stats.on_detector_down()
        if detector is not None:
            detector.close()
        self._stats.on_failed(str(exc))
        self._stats.on_restart()
        self._restart_delay = min(_RESTART_DELAY_MAX_SEC,
                                  max(_RESTART_DELAY_SEC, 2 * self._restart_delay))
        self._next_start = time.monotonic() + self._restart_delay
        self.get_logger().error(f'{exc}; restarting MediaPipe in {self._restart_delay:.1f} s',
                                throttle_duration_sec=_LOG_THROTTLE_SEC)

    def _apply_config(self, config: DetectorConfig) -> None:
        old = self._config
        if all(getattr(old, f) == getattr(config, f) for f in _GRAPH_FIELDS):
            with self._lock:
                self._config = config
            return
        try:
            detector = self._build(config)
        except DetectorError as exc:
            self.get_logger().error(f'new detector settings not applied, keeping the old '
                                    f'graph: {exc}')
            self._stats.on_failed(str(exc))
            return
        previous, self._detector = self._detector, detector
        with self._lock:
            self._config = config
        if previous is not None:
            previous.close()
        self.get_logger().info(f'MediaPipe Hands rebuilt with {config}')

    def _process(self, msg: Image) -> None:
        try:
            rgb = imaging.to_rgb(msg.encoding, msg.width, msg.height, msg.step, msg.data)
        except FrameError as exc:
            self._stats.on_rejected(str(exc))
            self.get_logger().error(
                f'rejected a frame from {topics.IMAGE_RAW} (frame_id '
                f'{msg.header.frame_id!r}): {exc}; dropping it and waiting for the next',
                throttle_duration_sec=_LOG_THROTTLE_SEC)
            return
        try:
            hands = self._detector.detect(rgb)
            self._publish(msg, rgb, hands)
            self._restart_delay = 0.0
        except DetectorCrashedError as exc:
            self._on_crash(exc)
        except (DetectorError, ValueError) as exc:
            self._stats.on_failed(str(exc))
            self.get_logger().error(f'detection failed: {exc}; trying the next frame',
                                    throttle_duration_sec=_LOG_THROTTLE_SEC)

    def _publish(self, msg: Image, rgb, hands: list[Hand]) -> None:
        self._pub_count.publish(Int32(data=len(hands)))
        self._pub_landmarks.publish(self._landmarks_msg(msg.header, hands))
        latency_ms = None
        if msg.header.stamp.sec or msg.header.stamp.nanosec:
            stamp = Time.from_msg(msg.header.stamp, clock_type=self.get_clock().clock_type)
            latency_ms = (self.get_clock().now() - stamp).nanoseconds / 1e6
        self._pub_markers.publish(self._markers_msg(msg.header, hands, msg.width, msg.height))
        if self._pub_annotated.get_subscription_count() > 0:
            self._pub_annotated.publish(self._annotated_msg(msg.header, rgb, hands))
        self._stats.on_processed(time.monotonic(), len(hands), latency_ms)

    @staticmethod
    def _landmarks_msg(header: Header, hands: list[Hand]) -> PointCloud2:
        points = packing.pack(hands)
        out = PointCloud2()
        out.header = header
        out.height = 1
        out.width = len(points)
        out.fields = [PointField(name=name, offset=offset, datatype=datatype, count=count)
                      for name, offset, datatype, count in packing.FIELDS]
        out.is_bigendian = False
        out.point_step = packing.POINT_STEP
        out.row_step = packing.POINT_STEP * len(points)
        out.data = points.tobytes()
        out.is_dense = True
        return out

    @staticmethod
    def _markers_msg(header: Header, hands: list[Hand], width: int, height: int
                     ) -> MarkerArray:
        # DELETEALL first: hands that vanished disappear in rviz in the same update.
        markers = [Marker(header=header, ns='hands', action=Marker.DELETEALL)]
        lifetime = Duration(seconds=1.0).to_msg()
        for hand, (pts, segments) in zip(hands, packing.marker_geometry(hands, width, height)):
            rgba = _MARKER_COLORS.get(hand.handedness, _OTHER_COLOR)
            color = ColorRGBA(r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3])
            joints = Marker(header=header, ns='hands', id=2 * hand.index,
                            type=Marker.SPHERE_LIST, action=Marker.ADD, lifetime=lifetime)
            joints.pose.orientation.w = 1.0
            joints.scale.x = joints.scale.y = joints.scale.z = 0.012
            joints.color = color
            joints.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in pts]
            bones = Marker(header=header, ns='hands', id=2 * hand.index + 1,
                           type=Marker.LINE_LIST, action=Marker.ADD, lifetime=lifetime)
            bones.pose.orientation.w = 1.0
            bones.scale.x = 0.005
            bones.color = color
            bones.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))
                            for p in segments]
            markers += [joints, bones]
        return MarkerArray(markers=markers)

    @staticmethod
    def _annotated_msg(header: Header, rgb, hands: list[Hand]) -> Image:
        drawn = draw_hands(imaging.from_rgb(rgb, 'bgr8'), hands)
        out = Image(header=header, height=drawn.shape[0], width=drawn.shape[1],
                    encoding='bgr8', is_bigendian=0, step=drawn.shape[1] * 3)
        out.data = drawn.tobytes()
        return out

    def destroy_node(self) -> None:
        """Stop and join the worker, close MediaPipe, then destroy the node."""
        self._stop.set()
        self._wake.set()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=10.0)
            if self._worker.is_alive():
                self.get_logger().warning('detector worker did not stop within 10 s')
            self._worker = None
        if self._detector is not None:
            self._detector.close()
            self._detector = None
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the hand detector node (``ros2 run pianist_ros hand_detector``)."""
    from pianist_ros.common.ros_main import run_node
    return run_node(HandDetectorNode, args)
