"""The camera area's exception hierarchy; foreign errors are wrapped into these."""


class CameraError(Exception):
    """Base class of every error raised by the camera logic."""


class SourceConfigError(CameraError):
    """The source specification is malformed or unsupported here (fix the config)."""


class SourceOpenError(CameraError):
    """The source could not be opened now (missing device or file, server down)."""


class SourceReadError(CameraError):
    """A read from an open source failed (device gone, file truncated or deleted)."""


class SourceEnded(CameraError):
    """A finite source (a video file without ``loop``) has no more frames."""


class SourceDamaged(SourceEnded):
    """A video file ended early: it is damaged or truncated (frames are missing)."""
