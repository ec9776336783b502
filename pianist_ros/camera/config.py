"""Parameters of the ``camera`` node: the schema and the frozen config built from it."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields
from typing import Any, Mapping

from pianist_ros.camera.capture import CaptureConfig
from pianist_ros.camera.reconnect import BackoffPolicy
from pianist_ros.camera.reconnect import JITTER_MODES
from pianist_ros.camera.sources import SourceOptions
from pianist_ros.common.params import defaults
from pianist_ros.common.params import Param

NODE_NAME = 'camera'

_NEXT = 'next configure'

SCHEMA: tuple[Param, ...] = (
    Param('source', 'synthetic',
          "frame source: 'synthetic', a video file path, a V4L2 index or /dev/videoN, an "
          'rtsp/http URL, or a GStreamer pipeline (contains !)', applies=_NEXT),
    Param('loop', False, 'restart a video file at its end (false: state ENDED at the end)',
          applies=_NEXT),
    Param('fps', 30.0, 'frame rate in Hz: synthetic frames, files without use_file_fps, and '
          'the rate requested from devices', min_value=0.5, max_value=240.0, applies=_NEXT),
    Param('use_file_fps', True, "pace video files at the file's own frame rate when known "
          '(false: at fps)', applies=_NEXT),
    Param('frame_id', 'camera', 'header.frame_id of published images and camera info',
          applies=_NEXT),
    Param('width', 640, 'synthetic frame width / requested capture width, pixels',
          min_value=16, max_value=7680, applies=_NEXT),
    Param('height', 480, 'synthetic frame height / requested capture height, pixels',
          min_value=16, max_value=4320, applies=_NEXT),
    Param('stall_timeout', 3.0, 'seconds without a frame after which the stream is STALLED '
          'and reopened', min_value=0.1, max_value=120.0, applies=_NEXT),
    Param('open_timeout', 10.0, 'seconds an open may take before the attempt fails',
          min_value=0.5, max_value=120.0, applies=_NEXT),
    Param('release_timeout', 2.0, 'seconds deactivate/cleanup/shutdown wait for the device '
          'to be released before leaving a blocked read to finish alone',
          min_value=0.1, max_value=30.0, applies=_NEXT),
    Param('max_consecutive_failures', 5, 'failed reads or bad frames in a row that mean the '
          'stream is lost (then reconnect)', min_value=1, max_value=10000, applies=_NEXT),
    Param('reconnect.initial_delay', 0.5, 'first reconnect delay, seconds',
          min_value=0.0, max_value=600.0, applies=_NEXT),
    Param('reconnect.max_delay', 10.0, 'largest reconnect delay, seconds',
          min_value=0.01, max_value=3600.0, applies=_NEXT),
    Param('reconnect.multiplier', 2.0, 'reconnect delay growth per failed attempt',
          min_value=1.0, max_value=10.0, applies=_NEXT),
    Param('reconnect.jitter', 'full', 'randomisation of the delay: none, full, equal or '
          'decorrelated', choices=JITTER_MODES, applies=_NEXT),
    Param('reconnect.max_attempts', 0, 'failed opens in a row before giving up (state '
          'FAILED); 0 = retry forever', min_value=0, max_value=1000000, applies=_NEXT),
    Param('reconnect.stable_after', 10.0, 'seconds of uninterrupted streaming that reset the '
          'reconnect delay to initial_delay', min_value=0.0, max_value=3600.0, applies=_NEXT),
)


@dataclass(frozen=True)
class CameraConfig:
    """Validated camera settings; the node builds it on configure."""

    source: str
    loop: bool
    fps: float
    use_file_fps: bool
    frame_id: str
    width: int
    height: int
    stall_timeout: float
    open_timeout: float
    release_timeout: float
    max_consecutive_failures: int
    reconnect_initial_delay: float
    reconnect_max_delay: float
    reconnect_multiplier: float
    reconnect_jitter: str
    reconnect_max_attempts: int
    reconnect_stable_after: float

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> 'CameraConfig':
        """Build from ``params.values(node, SCHEMA)``, checking cross-parameter rules.

        :raises ValueError: when the values are inconsistent (e.g. initial > max delay).
        """
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in values.items() if k in known})
        # Building the parts validates the combinations the schema cannot express.
        config.backoff_policy()
        config.source_options()
        config.capture_config()
        return config

    @classmethod
    def default(cls) -> 'CameraConfig':
        """Build the config from the schema defaults, for ROS-free tests and tools."""
        return cls.from_values(defaults(SCHEMA))

    def backoff_policy(self) -> BackoffPolicy:
        """Return the reconnect timing."""
        return BackoffPolicy(
            initial_delay=self.reconnect_initial_delay, max_delay=self.reconnect_max_delay,
            multiplier=self.reconnect_multiplier, jitter=self.reconnect_jitter,
            max_attempts=self.reconnect_max_attempts, stable_after=self.reconnect_stable_after)

    def source_options(self) -> SourceOptions:
        """Return the source settings; network reads time out a second after a stall."""
        return SourceOptions(
            fps=self.fps, width=self.width, height=self.height, loop=self.loop,
            use_file_fps=self.use_file_fps, open_timeout=self.open_timeout,
            read_timeout=self.stall_timeout + 1.0)

    def capture_config(self) -> CaptureConfig:
        """Return the capture thread timing."""
        return CaptureConfig(stall_timeout=self.stall_timeout, open_timeout=self.open_timeout,
                             release_timeout=self.release_timeout)
