"""Draw detected hands on an image (ROS-free)."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from pianist_ros.detection.detector import Hand
from pianist_ros.detection.detector import HAND_CONNECTIONS
from pianist_ros.detection.detector import LEFT
from pianist_ros.detection.detector import RIGHT

#: BGR colours per anatomical hand; the same hues as the rviz markers.
COLORS_BGR = {LEFT: (60, 200, 60), RIGHT: (230, 120, 30)}
_OTHER_BGR = (0, 200, 255)


def draw_hands(bgr: np.ndarray, hands: Sequence[Hand]) -> np.ndarray:
    """Return a copy of ``bgr`` with bones, landmarks and a label drawn per hand.

    :param bgr: ``(h, w, 3)`` uint8 BGR image.
    :param hands: hands whose landmarks are normalised to this image.
    :raises ValueError: when ``bgr`` is not such an image.
    """
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise ValueError(f'expected an (h, w, 3) uint8 image, got {bgr.shape} {bgr.dtype}')
    out = bgr.copy()
    height, width = out.shape[:2]
    thickness = max(1, round(min(width, height) / 300))
    for hand in hands:
        color = COLORS_BGR.get(hand.handedness, _OTHER_BGR)
        pts = [(int(round(p.x * width)), int(round(p.y * height))) for p in hand.landmarks]
        for a, b in HAND_CONNECTIONS:
            cv2.line(out, pts[a], pts[b], color, thickness, cv2.LINE_AA)
        for pt in pts:
            cv2.circle(out, pt, thickness + 2, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(out, pt, thickness + 2, color, 1, cv2.LINE_AA)
        label = f'{hand.handedness} {hand.score:.2f}'
        x, y = pts[0]
        cv2.putText(out, label, (x, min(height - 5, y + 20)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5 * thickness, color, thickness, cv2.LINE_AA)
    return out
