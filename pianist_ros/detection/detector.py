"""MediaPipe Hands behind a small typed interface returning plain dataclasses.

ROS-free. One :class:`HandDetector` owns one MediaPipe graph; it is not thread-safe,
so exactly one thread calls :meth:`HandDetector.detect` (the node's worker thread).
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from typing import Any

import numpy as np

from pianist_ros.detection.config import DetectorConfig
from pianist_ros.detection.errors import DetectorError

_LOG = logging.getLogger(__name__)

#: Landmarks per hand, in MediaPipe's order (see :data:`LANDMARK_NAMES`).
NUM_LANDMARKS = 21

LANDMARK_NAMES: tuple[str, ...] = (
    'wrist',
    'thumb_cmc', 'thumb_mcp', 'thumb_ip', 'thumb_tip',
    'index_finger_mcp', 'index_finger_pip', 'index_finger_dip', 'index_finger_tip',
    'middle_finger_mcp', 'middle_finger_pip', 'middle_finger_dip', 'middle_finger_tip',
    'ring_finger_mcp', 'ring_finger_pip', 'ring_finger_dip', 'ring_finger_tip',
    'pinky_mcp', 'pinky_pip', 'pinky_dip', 'pinky_tip',
)

#: The bones: pairs of landmark indices (equal to mediapipe's HAND_CONNECTIONS).
HAND_CONNECTIONS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4),
    (0, 5), (5, 6), (6, 7), (7, 8),
    (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16),
    (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)

LEFT = 'Left'
RIGHT = 'Right'
UNKNOWN = 'Unknown'


@dataclass(frozen=True)
class Landmark:
    """One landmark in normalised image coordinates.

    ``x`` and ``y`` are in [0, 1] of the image width / height (origin top left, y
    down; slightly outside for points beyond the border); ``z`` is depth relative to
    the wrist, smaller is nearer the camera, in roughly the same scale as ``x``.
    """

    x: float
    y: float
    z: float


@dataclass(frozen=True)
class Hand:
    """One detected hand.

    :param index: position in this frame's result (0-based).
    :param handedness: anatomical hand after the ``mirrored_input`` correction:
        ``'Left'``, ``'Right'`` (or ``'Unknown'``).
    :param score: MediaPipe's handedness confidence (0..1).
    :param landmarks: the 21 landmarks, in :data:`LANDMARK_NAMES` order.
    :param mediapipe_label: MediaPipe's own label, before the correction.
    """

    index: int
    handedness: str
    score: float
    landmarks: tuple[Landmark, ...]
    mediapipe_label: str

    @property
    def center_x(self) -> float:
        """Return the mean normalised x of the landmarks."""
        return sum(p.x for p in self.landmarks) / len(self.landmarks)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (used by ``pianist-detect``)."""
        return {
            'index': self.index,
            'handedness': self.handedness,
            'score': round(self.score, 4),
            'mediapipe_label': self.mediapipe_label,
            'landmarks': [[round(p.x, 5), round(p.y, 5), round(p.z, 5)]
                          for p in self.landmarks],
        }


def anatomical_label(mediapipe_label: str, mirrored_input: bool) -> str:
    """Return the anatomical hand for MediaPipe's label.

    MediaPipe labels hands as if the image were a mirrored selfie view. On a
    mirrored image its label is right; on a plain camera image (a camera looking
    down at a keyboard) it is the opposite hand, so the label is swapped.

    :param mediapipe_label: ``'Left'`` or ``'Right'`` as MediaPipe reports it.
    :param mirrored_input: whether the image is mirrored.
    :return: ``'Left'``, ``'Right'``, or ``'Unknown'`` for any other label.
    """
    if mediapipe_label not in (LEFT, RIGHT):
        return UNKNOWN
    if mirrored_input:
        return mediapipe_label
    return RIGHT if mediapipe_label == LEFT else LEFT


class HandDetector:
    """Find hands in RGB frames with ``mediapipe.solutions.hands``.

    :param config: detector settings; ``static_image_mode`` picks per-image
        detection or tracking across consecutive frames.
    :raises DetectorError: when MediaPipe cannot be imported or its graph not built.
    """

    def __init__(self, config: DetectorConfig | None = None):
        self.config = config or DetectorConfig()
        try:
            # Imported here: mediapipe takes about a second to import and the rest of
            # the area (packing, imaging) must stay usable without it.
            from mediapipe.python.solutions import hands as mp_hands
            self._hands = mp_hands.Hands(
                static_image_mode=self.config.static_image_mode,
                max_num_hands=self.config.max_num_hands,
                model_complexity=self.config.model_complexity,
                min_detection_confidence=self.config.min_detection_confidence,
                min_tracking_confidence=self.config.min_tracking_confidence,
            )
        except (ImportError, RuntimeError, ValueError, OSError) as exc:
            raise DetectorError(f'cannot start MediaPipe Hands: {exc}') from exc
        _LOG.debug('MediaPipe Hands started: %s', self.config)

    def detect(self, rgb: np.ndarray) -> list[Hand]:
        """Return the hands in one RGB frame.

        :param rgb: ``(h, w, 3)`` uint8 RGB array (see :func:`imaging.to_rgb`).
        :raises ValueError: when ``rgb`` is not such an array.
        :raises DetectorError: when the detector is closed or MediaPipe fails.
        :return: hands in MediaPipe's order (possibly empty).
        """
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 \
                or rgb.dtype != np.uint8:
            raise ValueError('detect() needs an (h, w, 3) uint8 RGB array')
        if self._hands is None:
            raise DetectorError('detector is closed')
        try:
            result = self._hands.process(rgb)
        except (RuntimeError, ValueError) as exc:
            raise DetectorError(f'MediaPipe failed on a {rgb.shape[1]}x{rgb.shape[0]} '
                                f'frame: {exc}') from exc
        return self._to_hands(result)

    def _to_hands(self, result: Any) -> list[Hand]:
        marks = result.multi_hand_landmarks or []
        labels = result.multi_handedness or []
        hands = []
        for i, hand_marks in enumerate(marks):
            label, score = UNKNOWN, 0.0
            if i < len(labels) and labels[i].classification:
                top = labels[i].classification[0]
                label, score = top.label, float(top.score)
            points = tuple(Landmark(float(p.x), float(p.y), float(p.z))
                           for p in hand_marks.landmark)
            hands.append(Hand(index=i,
                              handedness=anatomical_label(label, self.config.mirrored_input),
                              score=score, landmarks=points, mediapipe_label=label))
        return hands

    def close(self) -> None:
        """Release the MediaPipe graph (idempotent)."""
        if self._hands is not None:
            hands, self._hands = self._hands, None
            hands.close()

    def __enter__(self) -> 'HandDetector':
        return self

    def __exit__(self, *_exc) -> None:
        self.close()
