"""Pack hands into the ``hands/landmarks`` point layout, and back; marker geometry.

ROS-free. The node copies :func:`pack` output into a sensor_msgs/PointCloud2 whose
``fields`` come from :data:`FIELDS`; any PointCloud2 reader (numpy, rviz,
sensor_msgs_py.point_cloud2) can read it. The layout is documented in
docs/detection.md; change both together.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from pianist_ros.detection.detector import Hand
from pianist_ros.detection.detector import HAND_CONNECTIONS
from pianist_ros.detection.detector import Landmark
from pianist_ros.detection.detector import LEFT
from pianist_ros.detection.detector import NUM_LANDMARKS
from pianist_ros.detection.detector import RIGHT
from pianist_ros.detection.detector import UNKNOWN
from pianist_ros.detection.errors import DetectionError

# sensor_msgs/PointField datatype codes (copied so this module stays ROS-free).
INT8 = 1
UINT8 = 2
FLOAT32 = 7

#: handedness field values.
HANDEDNESS_CODES = {LEFT: 0, RIGHT: 1, UNKNOWN: -1}
_CODE_TO_LABEL = {v: k for k, v in HANDEDNESS_CODES.items()}

#: (name, byte offset, PointField datatype, count) for every field, in offset order.
FIELDS: tuple[tuple[str, int, int, int], ...] = (
    ('x', 0, FLOAT32, 1),
    ('y', 4, FLOAT32, 1),
    ('z', 8, FLOAT32, 1),
    ('hand', 12, UINT8, 1),
    ('landmark', 13, UINT8, 1),
    ('handedness', 14, INT8, 1),
    ('score', 16, FLOAT32, 1),
)

#: Bytes per point (byte 15 is padding so ``score`` is 4-byte aligned).
POINT_STEP = 20

POINT_DTYPE = np.dtype({
    'names': [f[0] for f in FIELDS],
    'formats': ['<f4', '<f4', '<f4', 'u1', 'u1', 'i1', '<f4'],
    'offsets': [f[1] for f in FIELDS],
    'itemsize': POINT_STEP,
})

#: Cap on points accepted by :func:`unpack` (far more than any real frame).
MAX_POINTS = 64 * NUM_LANDMARKS


def pack(hands: Sequence[Hand]) -> np.ndarray:
    """Return one :data:`POINT_DTYPE` record per landmark, hand by hand.

    :param hands: detected hands; each must have 21 landmarks.
    :raises ValueError: when a hand does not have 21 landmarks.
    :return: array of ``len(hands) * 21`` points (little-endian, as in the message).
    """
    out = np.zeros(len(hands) * NUM_LANDMARKS, dtype=POINT_DTYPE)
    for n, hand in enumerate(hands):
        if len(hand.landmarks) != NUM_LANDMARKS:
            raise ValueError(f'hand {n} has {len(hand.landmarks)} landmarks, expected 21')
        rows = out[n * NUM_LANDMARKS:(n + 1) * NUM_LANDMARKS]
        xyz = np.array([(p.x, p.y, p.z) for p in hand.landmarks], dtype=np.float32)
        rows['x'], rows['y'], rows['z'] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        rows['hand'] = hand.index
        rows['landmark'] = np.arange(NUM_LANDMARKS)
        rows['handedness'] = HANDEDNESS_CODES.get(hand.handedness, -1)
        rows['score'] = hand.score
    return out


def unpack(data: bytes | bytearray | memoryview | np.ndarray, point_step: int = POINT_STEP
           ) -> list[Hand]:
    """Parse packed points back into hands (what a consumer of hands/landmarks does).

    ``mediapipe_label`` is reconstructed as unknown: the message carries only the
    corrected (anatomical) handedness.

    :param data: the PointCloud2 ``data`` bytes.
    :param point_step: the message's ``point_step``.
    :raises DetectionError: when the data does not match the layout.
    """
    if point_step != POINT_STEP:
        raise DetectionError(f'point_step {point_step} != {POINT_STEP}')
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size % POINT_STEP or buf.size // POINT_STEP > MAX_POINTS:
        raise DetectionError(f'{buf.size} bytes is not a valid hands/landmarks payload')
    points = buf.view(POINT_DTYPE)
    hands = []
    for hand_index in np.unique(points['hand']):
        rows = points[points['hand'] == hand_index]
        if len(rows) != NUM_LANDMARKS or not np.array_equal(rows['landmark'],
                                                            np.arange(NUM_LANDMARKS)):
            raise DetectionError(f'hand {hand_index} does not have landmarks 0..20')
        hands.append(Hand(
            index=int(hand_index),
            handedness=_CODE_TO_LABEL.get(int(rows['handedness'][0]), UNKNOWN),
            score=float(rows['score'][0]),
            landmarks=tuple(Landmark(float(r['x']), float(r['y']), float(r['z']))
                            for r in rows),
            mediapipe_label=UNKNOWN))
    return hands


def marker_geometry(hands: Iterable[Hand], width: int, height: int
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return per hand the landmark positions and bone segments for rviz markers.

    Positions are in the image's frame, in units of the image height: x to the
    right, y down, z away from the camera (the optical-frame convention), so the
    hand keeps its proportions whatever the resolution.

    :return: ``[(points (21, 3), segments (2 * len(HAND_CONNECTIONS), 3)), ...]``.
    """
    aspect = width / height if height > 0 else 1.0
    out = []
    for hand in hands:
        pts = np.array([(p.x * aspect, p.y, p.z * aspect) for p in hand.landmarks],
                       dtype=np.float64)
        pairs = np.array(HAND_CONNECTIONS, dtype=np.intp).reshape(-1)
        out.append((pts, pts[pairs]))
    return out
