"""Turn raw image buffers (as sensor_msgs/Image carries them) into numpy frames."""

from __future__ import annotations

import numpy as np

from pianist_ros.recorder.errors import FrameError

#: Encodings the recorder accepts -> channels.
CHANNELS = {'bgr8': 3, 'rgb8': 3, 'mono8': 1}
#: Largest frame accepted (bytes): 8K RGB; caps what a publisher can make us allocate.
MAX_FRAME_BYTES = 7680 * 4320 * 3


def to_array(height: int, width: int, step: int, encoding: str, data) -> np.ndarray:
    """Return an ``HxWxC`` (or ``HxW`` for mono8) uint8 view of ``data`` without copying.

    :param height: rows.
    :param width: columns.
    :param step: bytes per row (may include padding).
    :param encoding: ``bgr8``, ``rgb8`` or ``mono8``.
    :param data: a buffer (bytes, array.array, numpy array) of at least ``height * step``.
    :raises FrameError: on an unsupported encoding or inconsistent sizes.
    :return: a view of ``data`` (padding columns excluded).
    """
    channels = CHANNELS.get(encoding)
    if channels is None:
        raise FrameError(f'unsupported encoding {encoding!r} (accepted: {", ".join(CHANNELS)})')
    if height <= 0 or width <= 0:
        raise FrameError(f'empty image {width}x{height}')
    row = width * channels
    if step < row:
        raise FrameError(f'step {step} < width * channels {row}')
    if height * step > MAX_FRAME_BYTES:
        raise FrameError(f'image of {height * step} bytes exceeds {MAX_FRAME_BYTES}')
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size < height * step:
        raise FrameError(f'data has {buf.size} bytes, expected {height * step}')
    rows = buf[:height * step].reshape(height, step)[:, :row]
    if channels == 1:
        return rows
    return rows.reshape(height, width, channels)
