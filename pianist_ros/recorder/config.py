"""Parameters of the ``image_recorder`` node: the schema and the frozen config."""

from __future__ import annotations

from dataclasses import dataclass
import os
from typing import Any, Mapping

from pianist_ros.common.params import merge_values
from pianist_ros.common.params import Param

NODE_NAME = 'image_recorder'

#: Topics the recorder may subscribe to (both sensor_msgs/Image, bgr8).
TOPICS = ('camera/image_raw', 'hands/image_annotated')
#: Encoder backends (see docs/recorder.md).
BACKENDS = ('thread', 'process', 'gstreamer')

_START = 'next start of the node'

SCHEMA: tuple[Param, ...] = (
    Param('enabled', True,
          'record from the start; the ~/enable service (std_srvs/SetBool) toggles it '
          'at run time', applies='immediately'),
    Param('topic', 'camera/image_raw', 'image topic to record (relative name)',
          choices=TOPICS, applies=_START),
    Param('output_dir', '~/pianist_recordings',
          'root directory; each run writes into its own session_<UTC time> subdirectory '
          '(~ and $VARS are expanded)', applies=_START),
    Param('backend', 'process',
          'encoder backend: thread (cv2.imencode baseline), process (worker pool fed '
          'through shared memory), gstreamer (appsrc pipeline)',
          choices=BACKENDS, applies=_START),
    Param('jpeg_quality', 90, 'JPEG quality (1..100, unitless)',
          min_value=1, max_value=100, applies=_START),
    Param('sidecar', True,
          'write <frame>.json next to each JPEG with capture stamp and hands count',
          applies='immediately'),
    Param('trigger.every_n', 15, 'record every Nth received frame (frames; 1 = every frame)',
          min_value=1, max_value=100000, applies='immediately'),
    Param('trigger.max_rate_hz', 0.0, 'record at most this many frames per second (Hz; 0 = '
          'no limit)', min_value=0.0, max_value=1000.0, applies='immediately'),
    Param('trigger.only_with_hands', False,
          'record only while the latest hands/count is > 0', applies='immediately'),
    Param('trigger.hands_max_age_sec', 1.0,
          'a hands/count older than this counts as no hands (seconds)',
          min_value=0.01, max_value=3600.0, applies='immediately'),
    Param('queue_depth', 8,
          'frames waiting for the encoder; when full the oldest is dropped (frames)',
          min_value=1, max_value=256, applies=_START),
    Param('max_total_bytes', 2000000000,
          'disk quota of output_dir: beyond it the oldest recordings are deleted '
          '(bytes; 0 = no quota)', min_value=0, max_value=2 ** 62, applies=_START),
    Param('min_free_bytes', 500000000,
          'stop writing (ERROR) while the file system has less free space (bytes; 0 = off)',
          min_value=0, max_value=2 ** 62, applies=_START),
    Param('flush_timeout_sec', 3.0,
          'on shutdown, queued frames still unwritten after this long are counted as '
          'dropped (seconds)', min_value=0.0, max_value=60.0, applies='immediately'),
    Param('process.workers', 2, 'encoder worker processes of the process backend (count)',
          min_value=1, max_value=16, applies=_START),
    Param('process.slots', 4,
          'shared-memory ring slots of the process backend, each one frame (count; at '
          'least process.workers is used)', min_value=1, max_value=64, applies=_START),
    Param('process.codec', 'simplejpeg',
          'JPEG library in the workers: simplejpeg (libjpeg-turbo, lighter workers) or '
          'opencv', choices=('simplejpeg', 'opencv'), applies=_START),
    Param('gstreamer.mode', 'jpeg',
          'jpeg: one JPEG per frame; h264: one Matroska H.264 video per session',
          choices=('jpeg', 'h264'), applies=_START),
    Param('gstreamer.converter', 'videoconvert',
          'GStreamer colour converter element (videoconvert; nvvidconv on Jetson)',
          applies=_START),
    Param('gstreamer.jpeg_encoder', 'jpegenc',
          'GStreamer JPEG encoder element (jpegenc; nvjpegenc on Jetson)', applies=_START),
    Param('gstreamer.h264_encoder', 'x264enc',
          'GStreamer H.264 encoder element for h264 mode (x264enc; nvv4l2h264enc on Jetson)',
          applies=_START),
    Param('gstreamer.h264_bitrate_kbps', 4000, 'H.264 target bitrate (kbit/s)',
          min_value=100, max_value=100000, applies=_START),
    Param('stale_after_sec', 5.0,
          'diagnostics warn when enabled and no frame arrived for this long (seconds)',
          min_value=0.1, max_value=3600.0, applies='immediately'),
)


@dataclass(frozen=True)
class RecorderConfig:
    """Validated values of :data:`SCHEMA`, handed to the ROS-free logic."""

    enabled: bool = True
    topic: str = 'camera/image_raw'
    output_dir: str = '~/pianist_recordings'
    backend: str = 'process'
    jpeg_quality: int = 90
    sidecar: bool = True
    trigger_every_n: int = 15
    trigger_max_rate_hz: float = 0.0
    trigger_only_with_hands: bool = False
    trigger_hands_max_age_sec: float = 1.0
    queue_depth: int = 8
    max_total_bytes: int = 2000000000
    min_free_bytes: int = 500000000
    flush_timeout_sec: float = 3.0
    process_workers: int = 2
    process_slots: int = 4
    process_codec: str = 'simplejpeg'
    gstreamer_mode: str = 'jpeg'
    gstreamer_converter: str = 'videoconvert'
    gstreamer_jpeg_encoder: str = 'jpegenc'
    gstreamer_h264_encoder: str = 'x264enc'
    gstreamer_h264_bitrate_kbps: int = 4000
    stale_after_sec: float = 5.0

    @property
    def output_path(self) -> str:
        """Return ``output_dir`` with ``~`` and ``$VARS`` expanded, absolute."""
        return os.path.abspath(os.path.expandvars(os.path.expanduser(self.output_dir)))

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> 'RecorderConfig':
        """Build a config from ``{field: value}`` (e.g. ``params.values(node, SCHEMA)``).

        Missing fields take their schema default.

        :raises ValueError: when a value is unknown or violates the schema.
        """
        merged = merge_values(SCHEMA, values, NODE_NAME)
        return cls(**merged)
