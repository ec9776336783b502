"""``image_recorder`` node: thin rclpy glue around :class:`~.recorder.Recorder`.

Subscribes to ``camera/image_raw`` (or ``hands/image_annotated``) and ``hands/count``,
offers ``~/enable`` (std_srvs/SetBool), and reports the ``recorder`` diagnostics task.
Callbacks only convert and enqueue; encoding and writing happen in the backend.
"""

from __future__ import annotations

import time

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Int32
from std_srvs.srv import SetBool

from pianist_ros.common import diagnostics
from pianist_ros.common import params
from pianist_ros.common import topics
from pianist_ros.common.device import device_id
from pianist_ros.common.ros_main import run_node
from pianist_ros.recorder.config import NODE_NAME
from pianist_ros.recorder.config import RecorderConfig
from pianist_ros.recorder.config import SCHEMA
from pianist_ros.recorder.errors import BackendError
from pianist_ros.recorder.errors import FrameError
from pianist_ros.recorder.frames import to_array
from pianist_ros.recorder.recorder import assess
from pianist_ros.recorder.recorder import Recorder
from pianist_ros.recorder.recorder import shutdown_summary
from pianist_ros.recorder.recorder import StorageAlarm
from pianist_ros.recorder.recorder import trigger_settings
from pianist_ros.recorder.recorder import worker_restart_line

#: How often the node looks for storage trouble to log (s); the lines are throttled.
_WATCH_PERIOD_SEC = 1.0
_LOG_THROTTLE_SEC = 10.0
_LEVELS = {'OK': diagnostics.OK, 'WARN': diagnostics.WARN, 'ERROR': diagnostics.ERROR}
#: Keys published in the diagnostics status (docs/recorder.md lists them).
DIAG_KEYS = (
    'backend', 'enabled', 'frames_received', 'frames_triggered', 'frames_written',
    'frames_dropped', 'dropped_queue_full', 'dropped_disk_guard', 'dropped_shutdown',
    'dropped_worker_lost', 'dropped_backend_error', 'dropped_write_error', 'write_errors',
    'queue_depth',
    'queue_capacity', 'in_flight', 'encode_write_ms_p50', 'encode_write_ms_p99',
    'bytes_written', 'bytes_on_disk', 'files_rotated', 'free_bytes', 'disk_guard',
    'session_dir', 'last_error',
)


class ImageRecorderNode(Node):
    """Record debug JPEGs of an image topic without blocking its callbacks."""

    def __init__(self, **kwargs):
        self._recorder: Recorder | None = None
        self._updater = None
        self._image_sub = None
        self._hands_sub = None
        self._enable_srv = None
        self._startup_error = ''
        self._frames_rejected = 0
        self._last_frame_time: float | None = None
        self._prev_snapshot: dict | None = None
        self._stale_after_sec = 5.0
        self._flush_timeout_sec = 3.0
        self._alarm = StorageAlarm()
        super().__init__(NODE_NAME, **kwargs)
        params.declare(self, SCHEMA)
        cfg = RecorderConfig.from_values(params.values(self, SCHEMA))
        self._stale_after_sec = cfg.stale_after_sec
        self._flush_timeout_sec = cfg.flush_timeout_sec
        self.add_on_set_parameters_callback(self._on_set_parameters)
        try:
            self._recorder = Recorder(cfg)
            self._recorder.start()
        except BackendError as exc:
            # Stay alive: diagnostics say ERROR and an operator can fix the parameter.
            self._startup_error = f'backend {cfg.backend!r} unavailable: {exc}'
            self.get_logger().error(f'{self._startup_error}; not recording')
            if self._recorder is not None:
                self._recorder.close(0.0)
            self._recorder = None
        self._updater = diagnostics.make_updater(self, device_id())
        self._updater.add('recorder', self._diagnose)
        self._enable_srv = self.create_service(SetBool, '~/enable', self._on_enable)
        self._hands_sub = self.create_subscription(Int32, topics.HANDS_COUNT, self._on_hands,
                                                   topics.RESULT_QOS)
        self._image_sub = self.create_subscription(Image, cfg.topic, self._on_image,
                                                   topics.SENSOR_QOS)
        if self._recorder is not None:
            self.get_logger().info(
                f'recording {cfg.topic} with the {cfg.backend} backend into '
                f'{self._recorder.store.session_dir} (enabled: {cfg.enabled})')
            self.create_timer(_WATCH_PERIOD_SEC, self._watch_storage)

    # ---- callbacks -------------------------------------------------------------------

    def _on_image(self, msg: Image) -> None:
        self._last_frame_time = time.monotonic()
        recorder = self._recorder
        if recorder is None or not recorder.enabled:
            return
        try:
            frame = to_array(msg.height, msg.width, msg.step, msg.encoding, msg.data)
        except FrameError as exc:
            self._frames_rejected += 1
            self.get_logger().warning(f'frame not recorded: {exc}', throttle_duration_sec=10.0)
            return
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if stamp_ns <= 0:
            stamp_ns = time.time_ns()
        recorder.offer(frame, msg.encoding, stamp_ns)

    def _on_hands(self, msg: Int32) -> None:
        if self._recorder is not None:
            self._recorder.set_hands(msg.data)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response):
        if self._recorder is None:
            response.success = False
            response.message = self._startup_error or 'recorder not running'
            return response
        self._recorder.set_enabled(request.data)
        response.success = True
        response.message = 'recording enabled' if request.data else 'recording disabled'
        self.get_logger().info(response.message)
        return response

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        """Apply run-time parameters (``enabled``, ``trigger.*``, ``sidecar`` and timeouts).

        rclpy calls the newest callback first, so this validates on its own before
        applying anything.
        """
        changed = {p.name: p.value for p in parameters}
        err = params.check_values(SCHEMA, changed)
        if err:
            return SetParametersResult(successful=False, reason=err)
        recorder = self._recorder
        if recorder is not None:
            current = {p.field: self.get_parameter(p.name).value for p in SCHEMA
                       if p.name.startswith('trigger.')}
            for name, value in changed.items():
                if name.startswith('trigger.'):
                    current[name.replace('.', '_')] = value
            try:
                cfg = RecorderConfig.from_values(current)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
            recorder.set_trigger(trigger_settings(cfg))
            if 'enabled' in changed:
                recorder.set_enabled(changed['enabled'])
            if 'sidecar' in changed:
                recorder.set_sidecar(changed['sidecar'])
        if 'stale_after_sec' in changed:
            self._stale_after_sec = float(changed['stale_after_sec'])
        if 'flush_timeout_sec' in changed:
            self._flush_timeout_sec = float(changed['flush_timeout_sec'])
        return SetParametersResult(successful=True, reason='')

    def _watch_storage(self) -> None:
        """Log storage trouble (throttled) and its end (once), and worker restarts."""
        recorder = self._recorder
        if recorder is None:
            return
        snap = recorder.snapshot()
        logger = self.get_logger()
        restarts = worker_restart_line(self._alarm.previous, snap)
        if restarts is not None:
            logger.warning(restarts)
        line = self._alarm.update(snap)
        if line is None:
            return
        level, text = line
        if level == 'INFO':
            logger.info(text)
        elif level == 'WARN':
            logger.warning(text, throttle_duration_sec=_LOG_THROTTLE_SEC)
        else:
            logger.error(text, throttle_duration_sec=_LOG_THROTTLE_SEC)

    # ---- diagnostics -------------------------------------------------------------------

    def _diagnose(self, stat):
        recorder = self._recorder
        if recorder is None:
            stat.summary(diagnostics.ERROR, self._startup_error or 'recorder not running')
            return stat
        snap = recorder.snapshot()
        level, message = assess(snap, self._prev_snapshot)
        self._prev_snapshot = snap
        age = None if self._last_frame_time is None else time.monotonic() - self._last_frame_time
        if level == 'OK' and snap['enabled'] and (age is None or age > self._stale_after_sec):
            level, message = 'WARN', f'no frames on {recorder.topic}'
        stat.summary(_LEVELS[level], message)
        for key in DIAG_KEYS:
            value = snap.get(key, '')
            stat.add(key, f'{value:.2f}' if isinstance(value, float) else value)
        stat.add('frames_rejected', self._frames_rejected)
        stat.add('last_frame_age_sec', -1.0 if age is None else round(age, 2))
        for key in ('workers_alive', 'worker_restarts', 'gst_encoder', 'gst_pipeline_errors'):
            if key in snap:
                stat.add(key, snap[key])
        return stat

    # ---- teardown ------------------------------------------------------------------------

    def destroy_node(self) -> None:
        """Flush and stop the recorder (bounded), then destroy the node."""
        if self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
            self._image_sub = None
        if self._recorder is not None:
            snap = self._recorder.close(self._flush_timeout_sec)
            if snap['frames_dropped']:
                self.get_logger().warning(shutdown_summary(snap))
            else:
                self.get_logger().info(shutdown_summary(snap))
            self._recorder = None
        if self._updater is not None and hasattr(self._updater, 'destroy'):
            self._updater.destroy()
            self._updater = None
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the image_recorder node until Ctrl-C or SIGTERM."""
    return run_node(lambda: ImageRecorderNode(), args=args)


if __name__ == '__main__':
    raise SystemExit(main())
