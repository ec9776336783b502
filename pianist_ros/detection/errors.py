"""Exceptions of the detection area; foreign errors are wrapped into these."""


class DetectionError(Exception):
    """Base class of every error raised by :mod:`pianist_ros.detection`."""


class FrameError(DetectionError, ValueError):
    """A frame cannot be used: bad encoding, geometry or data size."""


class UnsupportedEncodingError(FrameError):
    """The frame's encoding is not one the detector accepts."""


class MalformedFrameError(FrameError):
    """The frame's step, size or data length is inconsistent, empty or too large."""


class DetectorError(DetectionError, RuntimeError):
    """MediaPipe failed to build its graph or to process a frame."""
