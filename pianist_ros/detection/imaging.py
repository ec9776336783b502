"""Turn raw image buffers (as carried by sensor_msgs/Image) into RGB arrays.

ROS-free: the node passes the message fields, so the same checks serve the node,
the CLI and the tests. Only 8-bit encodings are accepted; everything else raises
:class:`UnsupportedEncodingError` instead of being guessed at.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from pianist_ros.detection.errors import MalformedFrameError
from pianist_ros.detection.errors import UnsupportedEncodingError

#: encoding -> (channels, cv2 conversion to RGB or None when already RGB).
_ENCODINGS: dict[str, tuple[int, int | None]] = {
    'bgr8': (3, cv2.COLOR_BGR2RGB),
    'rgb8': (3, None),
    'bgra8': (4, cv2.COLOR_BGRA2RGB),
    'rgba8': (4, cv2.COLOR_RGBA2RGB),
    'mono8': (1, cv2.COLOR_GRAY2RGB),
}

#: Encodings the detector accepts, in the order documented in docs/detection.md.
ACCEPTED_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)

#: Cap on pixels per frame (8K UHD fits); a larger header is treated as corrupt.
MAX_PIXELS = 8192 * 4320


def channels(encoding: str) -> int:
    """Return the channel count of an accepted encoding.

    :raises UnsupportedEncodingError: for any other encoding.
    """
    try:
        return _ENCODINGS[encoding][0]
    except KeyError:
        raise UnsupportedEncodingError(_unsupported(encoding)) from None


def _unsupported(encoding: str) -> str:
    return (f'unsupported image encoding {encoding!r}; accepted: '
            f'{", ".join(ACCEPTED_ENCODINGS)}')


def to_rgb(encoding: str, width: int, height: int, step: int, data: Any) -> np.ndarray:
    """Validate one raw frame and return it as a contiguous ``(h, w, 3)`` uint8 RGB array.

    :param encoding: sensor_msgs/Image encoding (``bgr8``, ``rgb8``, ``bgra8``,
        ``rgba8`` or ``mono8``).
    :param width: pixels per row.
    :param height: rows.
    :param step: bytes per row, at least ``width * channels`` (rows may be padded).
    :param data: the pixel bytes (any buffer: bytes, array.array, memoryview, ndarray);
        its length must be exactly ``step * height``.
    :raises UnsupportedEncodingError: for any other encoding.
    :raises MalformedFrameError: for an empty frame, an inconsistent step or data
        length, or a frame larger than :data:`MAX_PIXELS`.
    :return: a new array that does not share memory with ``data``.
    """
    n_channels = channels(encoding)
    if width <= 0 or height <= 0:
        raise MalformedFrameError(f'empty frame: {width}x{height} pixels')
    if width * height > MAX_PIXELS:
        raise MalformedFrameError(
            f'frame of {width}x{height} exceeds the limit of {MAX_PIXELS} pixels')
    row_bytes = width * n_channels
    if step < row_bytes:
        raise MalformedFrameError(
            f'step {step} is smaller than width * channels = {row_bytes} for {encoding}')
    try:
        buf = np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise MalformedFrameError(f'image data is not a byte buffer: {exc}') from exc
    if buf.size == 0:
        raise MalformedFrameError(f'empty image data for a {width}x{height} {encoding} frame')
    if buf.size != step * height:
        raise MalformedFrameError(
            f'data has {buf.size} bytes, expected step * height = {step} * {height} = '
            f'{step * height}')
    rows = buf.reshape(height, step)[:, :row_bytes]
    pixels = rows.reshape(height, width, n_channels)
    code = _ENCODINGS[encoding][1]
    if code is None:
        return np.array(pixels, dtype=np.uint8, order='C', copy=True)
    if n_channels == 1:
        pixels = pixels.reshape(height, width)
    return cv2.cvtColor(np.ascontiguousarray(pixels), code)


def from_rgb(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """Convert an RGB array to the pixel layout of ``encoding`` (inverse of :func:`to_rgb`).

    Used to publish the annotated image and by tests that build frames by hand.

    :raises UnsupportedEncodingError: for an encoding that is not accepted.
    :raises ValueError: when ``rgb`` is not an ``(h, w, 3)`` uint8 array.
    """
    channels(encoding)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f'expected an (h, w, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}')
    inverse = {
        'bgr8': cv2.COLOR_RGB2BGR,
        'bgra8': cv2.COLOR_RGB2BGRA,
        'rgba8': cv2.COLOR_RGB2RGBA,
        'mono8': cv2.COLOR_RGB2GRAY,
    }
    if encoding == 'rgb8':
        return np.ascontiguousarray(rgb)
    return cv2.cvtColor(rgb, inverse[encoding])
