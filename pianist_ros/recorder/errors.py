"""Exceptions of the recorder area; foreign errors are wrapped into these."""


class RecorderError(Exception):
    """Base class of every recorder error."""


class FrameError(RecorderError):
    """An image message cannot be turned into a frame (encoding, size, step)."""


class StorageError(RecorderError):
    """The output directory cannot be created, listed or written."""


class BackendError(RecorderError):
    """An encoder backend cannot start or has failed."""
