"""The ``camera`` lifecycle node: thin rclpy glue over the capture worker.

- configure: read and validate parameters, check the source string, create the
  image publishers. A missing device or file is *not* a configure failure: it is a
  runtime condition the worker heals from.
- activate: start the capture worker (open the source, publish frames).
- deactivate: stop the worker and release the device (bounded by release_timeout).
- cleanup / shutdown / error: release everything through one idempotent helper.

Frames are published from the capture worker's thread, so the executor never waits
on a device; ``camera/state`` (latched) and diagnostics report what happens.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
import time

from rcl_interfaces.msg import SetParametersResult

from rclpy.lifecycle import LifecycleNode
from rclpy.lifecycle import LifecycleState
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from std_msgs.msg import String

from pianist_ros.camera.capture import CaptureWorker
from pianist_ros.camera.config import CameraConfig
from pianist_ros.camera.config import NODE_NAME
from pianist_ros.camera.config import SCHEMA
from pianist_ros.camera.errors import CameraError
from pianist_ros.camera.outage import OutageLog
from pianist_ros.camera.reconnect import CameraState
from pianist_ros.camera.reconnect import CameraStatus
from pianist_ros.camera.reconnect import ERROR_AFTER_ATTEMPTS
from pianist_ros.camera.reconnect import ReconnectMachine
from pianist_ros.camera.sources import check_source_config
from pianist_ros.camera.sources import FILE
from pianist_ros.camera.sources import make_source
from pianist_ros.camera.sources import parse_source
from pianist_ros.camera.sources import SourceSpec
from pianist_ros.common import diagnostics
from pianist_ros.common import params
from pianist_ros.common import topics
from pianist_ros.common.device import device_id
from pianist_ros.common.rate import RateMeter

_WARN_STATES = (CameraState.CONNECTING, CameraState.RECONNECTING, CameraState.STALLED,
                CameraState.ENDED)


class CameraNode(LifecycleNode):
    """Publish ``camera/image_raw`` and ``camera/camera_info`` from a self-healing source."""

    def __init__(self, **kwargs):
        self._lock = threading.Lock()
        self._config: CameraConfig | None = None
        self._spec: SourceSpec | None = None
        self._machine: ReconnectMachine | None = None
        self._worker: CaptureWorker | None = None
        self._image_pub = None
        self._info_pub = None
        self._state_pub = None
        self._updater = None
        self._rate = RateMeter(window_sec=5.0)
        self._frames_published = 0
        self._publish_errors = 0
        self._lifecycle = CameraState.UNCONFIGURED
        self._config_error = ''
        self._retired: CaptureWorker | None = None
        self._outage: OutageLog | None = None
        self._published_state: CameraState | None = None
        super().__init__(NODE_NAME, **kwargs)
        params.declare(self, SCHEMA)
        # After declare: the cross-parameter rule needs the current values to exist.
        self.add_on_set_parameters_callback(self._check_combination)
        # State and health are reported in every lifecycle state, so these two live
        # for the whole node; the device and image publishers follow the lifecycle.
        self._state_pub = self.create_publisher(String, topics.CAMERA_STATE,
                                                topics.LATCHED_QOS)
        self._updater = diagnostics.make_updater(self, device_id())
        self._updater.add('camera', self._on_diagnostics)
        self._publish_state(CameraState.UNCONFIGURED)

    # ---- lifecycle transitions ------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate parameters and the source string; create the image publishers."""
        try:
            config = CameraConfig.from_values(params.values(self, SCHEMA))
            spec = parse_source(config.source)
            check_source_config(spec)
        except (ValueError, CameraError) as exc:
            self._config_error = f'invalid configuration: {exc}'
            self.get_logger().error(f'configure failed: {exc}; fix the parameters and '
                                    'configure again')
            return TransitionCallbackReturn.FAILURE
        try:
            self._config, self._spec, self._config_error = config, spec, ''
            self._machine = ReconnectMachine(
                config.backoff_policy(), config.max_consecutive_failures)
            self._image_pub = self.create_lifecycle_publisher(
                Image, topics.IMAGE_RAW, topics.SENSOR_QOS)
            self._info_pub = self.create_lifecycle_publisher(
                CameraInfo, topics.CAMERA_INFO, topics.SENSOR_QOS)
            self._publish_state(CameraState.INACTIVE)
            self.get_logger().info(f'configured: source {spec.describe()}, {config.fps:g} fps, '
                                   f'frame_id {config.frame_id!r}')
            if spec.kind == FILE and not os.path.isabs(spec.target):
                self.get_logger().info(f'relative video file {spec.target!r} resolves to '
                                       f'{os.path.abspath(spec.target)} (working directory '
                                       f'{os.getcwd()})')
            return TransitionCallbackReturn.SUCCESS
        except Exception as exc:  # noqa: BLE001 - a transition reports, never raises
            self.get_logger().error(f'configure failed unexpectedly: {exc!r}')
            self._release()
            return TransitionCallbackReturn.ERROR

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Enable the publishers and start capturing."""
        try:
            result = super().on_activate(state)
            if result != TransitionCallbackReturn.SUCCESS:
                return result
            config, spec = self._config, self._spec
            options = config.source_options()
            self._rate = RateMeter(window_sec=5.0)
            self._outage = OutageLog(spec.describe())
            self._worker = CaptureWorker(
                lambda: make_source(spec, options), config.capture_config(), self._machine,
                on_frame=self._on_frame, on_status=self._on_status,
                stamp=lambda: self.get_clock().now().nanoseconds)
            self._lifecycle = CameraState.CONNECTING
            self._worker.start()
            self.get_logger().info(f'activated: capturing from {spec.describe()}')
            return TransitionCallbackReturn.SUCCESS
        except Exception as exc:  # noqa: BLE001 - a transition reports, never raises
            self.get_logger().error(f'activate failed: {exc!r}')
            self._stop_capture()
            return TransitionCallbackReturn.ERROR

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop capturing and release the device, then disable the publishers."""
        try:
            self._stop_capture()
            self._publish_state(CameraState.INACTIVE)
            return super().on_deactivate(state)
        except Exception as exc:  # noqa: BLE001 - a transition reports, never raises
            self.get_logger().error(f'deactivate failed: {exc!r}')
            return TransitionCallbackReturn.ERROR

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything configure created."""
        return self._release_transition('cleanup', CameraState.UNCONFIGURED)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything, from any state."""
        return self._release_transition('shutdown', CameraState.FINALIZED)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything after a failed transition; go back to unconfigured."""
        return self._release_transition('error recovery', CameraState.UNCONFIGURED)

    def _release_transition(self, name: str, final: CameraState) -> TransitionCallbackReturn:
        try:
            self._release()
            self._publish_state(final)
            return TransitionCallbackReturn.SUCCESS
        except Exception as exc:  # noqa: BLE001 - a transition reports, never raises
            self.get_logger().error(f'{name} failed: {exc!r}')
            return TransitionCallbackReturn.ERROR

    # ---- resources ------------------------------------------------------------------

    def _stop_capture(self) -> None:
        """Stop the worker, waiting at most release_timeout for the device."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        released = worker.stop()
        self._retired = worker
        if not released:
            self.get_logger().warning(
                'the capture thread is still blocked in the driver; it closes the device '
                'as soon as the call returns')
        self._lifecycle = CameraState.INACTIVE

    def _release(self) -> None:
        """Stop capture and destroy the image publishers; idempotent."""
        self._stop_capture()
        for pub in (self._image_pub, self._info_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._image_pub = self._info_pub = None
        self._machine = None
        self._config = None
        self._spec = None

    def destroy_node(self) -> None:
        """Release the device and threads first, then the node."""
        try:
            self._release()
        finally:
            super().destroy_node()

    # ---- capture thread callbacks ---------------------------------------------------

    def _on_frame(self, frame, stamp_ns: int) -> None:
        config = self._config
        image_pub, info_pub = self._image_pub, self._info_pub
        if config is None or image_pub is None or info_pub is None:
            return
        if not self.context.ok():
            return  # Ctrl-C / SIGTERM shut the context down; destroy_node follows.
        height, width = frame.shape[:2]
        image = Image()
        image.header.stamp.sec, image.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        image.header.frame_id = config.frame_id
        image.height, image.width = height, width
        image.encoding = 'bgr8'
        image.is_bigendian = 0
        image.step = width * 3
        image.data = frame.tobytes()
        info = CameraInfo()
        info.header = image.header
        info.height, info.width = height, width
        try:
            image_pub.publish(image)
            info_pub.publish(info)
        except Exception as exc:  # noqa: BLE001 - e.g. publisher destroyed at shutdown
            if not self.context.ok():
                return
            with self._lock:
                self._publish_errors += 1
            self.get_logger().error(f'publishing a frame failed: {exc!r}',
                                    throttle_duration_sec=5.0)
            return
        with self._lock:
            self._frames_published += 1
            self._rate.tick(time.monotonic())

    def _on_status(self, status: CameraStatus) -> None:
        state = status.state
        if state == CameraState.INACTIVE or not self.context.ok():
            return  # deactivate publishes INACTIVE itself, after the release
        if state != self._published_state:
            self._publish_state(state)
        outage = self._outage
        if outage is None:
            return
        log = self.get_logger()
        for level, text in outage.observe(status):
            if level >= logging.ERROR:
                log.error(text)
            elif level >= logging.WARNING:
                log.warning(text)
            else:
                log.info(text)

    def _check_combination(self, parameters) -> SetParametersResult:
        """Refuse a reconnect delay pair that the next configure would reject."""
        try:
            new = {p.name: p.value for p in parameters}

            def value(name: str):
                return new[name] if name in new else self.get_parameter(name).value

            initial = value('reconnect.initial_delay')
            maximum = value('reconnect.max_delay')
            if (isinstance(initial, (int, float)) and isinstance(maximum, (int, float))
                    and initial > maximum):
                return SetParametersResult(
                    successful=False,
                    reason=f'reconnect.initial_delay ({initial:g} s) must not exceed '
                           f'reconnect.max_delay ({maximum:g} s)')
        except Exception as exc:  # noqa: BLE001 - a validator must never raise
            return SetParametersResult(successful=False, reason=f'validation failed: {exc!r}')
        return SetParametersResult(successful=True)

    # ---- reporting ------------------------------------------------------------------

    def _publish_state(self, state: CameraState) -> None:
        self._published_state = state
        if state in (CameraState.UNCONFIGURED, CameraState.INACTIVE, CameraState.FINALIZED):
            self._lifecycle = state
        pub = self._state_pub
        if pub is not None and self.context.ok():
            pub.publish(String(data=state.value))

    def _describe_source(self) -> str:
        spec = self._spec
        return spec.describe() if spec is not None else ''

    def camera_state(self) -> CameraState:
        """Return the current state (the lifecycle state while not capturing)."""
        worker = self._worker
        if worker is not None:
            return worker.status().state
        return self._lifecycle

    def camera_status(self) -> CameraStatus | None:
        """Return the state machine snapshot (counters, last error), if configured."""
        worker, machine = self._worker, self._machine
        if worker is not None:
            return worker.status()
        return machine.snapshot() if machine is not None else None

    def _on_diagnostics(self, stat):
        worker = self._worker
        status = self.camera_status()
        state = self.camera_state()
        with self._lock:
            fps = self._rate.rate(time.monotonic())
            published = self._frames_published
            publish_errors = self._publish_errors
        if state == CameraState.STREAMING:
            stat.summary(diagnostics.OK, f'streaming at {fps:.1f} fps')
        elif state == CameraState.FAILED:
            stat.summary(diagnostics.ERROR, f'gave up: {status.last_error}')
        elif state == CameraState.ENDED and status is not None and status.damaged:
            stat.summary(diagnostics.ERROR, f'ended early: {status.last_error}')
        elif (state == CameraState.RECONNECTING and status is not None
              and status.failed_attempts >= ERROR_AFTER_ATTEMPTS):
            stat.summary(diagnostics.ERROR, f'{status.failed_attempts} reconnect attempts '
                         f'failed: {status.last_error}')
        elif state in _WARN_STATES:
            text = status.last_error if status is not None and status.last_error else ''
            stat.summary(diagnostics.WARN, f'{state.value.lower()}: {text}'.rstrip(': '))
        elif self._config_error:
            stat.summary(diagnostics.ERROR, self._config_error)
        else:
            stat.summary(diagnostics.WARN, f'{state.value.lower()}: not capturing')
        last_time = status.last_error_time if status is not None else None
        stat.add('state', state.value)
        stat.add('fps', f'{fps:.2f}')
        stat.add('frames_published', published)
        stat.add('frames_failed', status.frames_failed if status is not None else 0)
        stat.add('reconnects', status.reconnects if status is not None else 0)
        stat.add('backoff_sec', f'{status.backoff_sec:.3f}' if status is not None else '0.000')
        stat.add('last_error', (status.last_error if status is not None else '')
                 or self._config_error)
        stat.add('last_error_time', _iso(last_time))
        stat.add('source', self._describe_source())
        stat.add('failed_attempts', status.failed_attempts if status is not None else 0)
        stat.add('next_attempt_in_sec',
                 f'{status.next_attempt_in:.3f}' if status is not None else '0.000')
        stat.add('recent_errors',
                 ' | '.join(status.recent_errors) if status is not None else '')
        stat.add('publish_errors', publish_errors)
        retired = self._retired
        blocked = (worker.abandoned if worker is not None else 0) + (
            retired.abandoned if retired is not None else 0)
        stat.add('blocked_threads', blocked)
        return stat


def _iso(wall: float | None) -> str:
    if wall is None:
        return ''
    return datetime.datetime.fromtimestamp(wall, tz=datetime.timezone.utc).isoformat(
        timespec='milliseconds')


def main(args: list[str] | None = None) -> int:
    """Run the camera node (``ros2 run pianist_ros camera``); launch drives its lifecycle."""
    from pianist_ros.common.ros_main import run_node
    return run_node(CameraNode, args, multithreaded=True)
