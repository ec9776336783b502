"""Parameters of the ``hand_detector`` node: the schema and the frozen config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from pianist_ros.common.params import merge_values
from pianist_ros.common.params import Param

NODE_NAME = 'hand_detector'

#: Changes to these rebuild the MediaPipe graph before the next frame.
_NEXT_FRAME = 'next frame (the MediaPipe graph is rebuilt)'

SCHEMA: tuple[Param, ...] = (
    Param('max_num_hands', 2, 'most hands MediaPipe looks for in one frame (count)',
          min_value=1, max_value=8, applies=_NEXT_FRAME),
    Param('model_complexity', 1, 'landmark model: 0 = lite (faster), 1 = full (more accurate)',
          min_value=0, max_value=1, applies=_NEXT_FRAME),
    Param('min_detection_confidence', 0.5,
          'palm detection score needed to report a hand (0..1, unitless)',
          min_value=0.0, max_value=1.0, applies=_NEXT_FRAME),
    Param('min_tracking_confidence', 0.5,
          'landmark tracking score below which palm detection reruns (0..1, unitless); '
          'ignored in static_image_mode',
          min_value=0.0, max_value=1.0, applies=_NEXT_FRAME),
    Param('static_image_mode', False,
          'detect palms in every frame instead of tracking between frames (slower, '
          'no temporal coupling)', applies=_NEXT_FRAME),
    Param('mirrored_input', False,
          'true if the image is mirrored (selfie view); false (camera looking down at the '
          'keyboard) swaps the MediaPipe labels so handedness names the anatomical hand',
          applies='next frame'),
    Param('backend', 'process',
          "where MediaPipe runs: 'process' (a child process with its own GIL, restarted "
          "if it dies) or 'thread' (in the node's worker thread; slower when composed)",
          choices=('process', 'thread'), applies=_NEXT_FRAME),
    Param('stale_after_sec', 3.0,
          'diagnostics warn when no frame arrived for this long, and report ERROR when '
          'frames keep arriving but none was processed for this long (seconds)',
          min_value=0.1, max_value=3600.0, applies='immediately'),
)


@dataclass(frozen=True)
class DetectorConfig:
    """Validated values of :data:`SCHEMA`, handed to the ROS-free logic."""

    max_num_hands: int = 2
    model_complexity: int = 1
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    static_image_mode: bool = False
    mirrored_input: bool = False
    backend: str = 'process'
    stale_after_sec: float = 3.0

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> 'DetectorConfig':
        """Build a config from ``{field: value}`` (e.g. ``params.values(node, SCHEMA)``).

        :raises ValueError: when a value violates the schema.
        """
        merged = merge_values(SCHEMA, values, NODE_NAME)
        return cls(**merged)
