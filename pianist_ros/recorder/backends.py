"""The encoder backend interface, the ``thread`` baseline and the backend factory.

A backend takes :class:`Job` objects (a frame plus where to write it), encodes the
frame to JPEG, writes it (and its sidecar) atomically, and reports a
:class:`Result` through the callback given to :meth:`EncoderBackend.start`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from dataclasses import field
import time
from typing import Callable

import numpy as np

from pianist_ros.recorder.errors import BackendError
from pianist_ros.recorder.errors import StorageError
from pianist_ros.recorder.storage import write_frame_files


@dataclass
class Job:
    """One frame to encode and write."""

    seq: int
    frame: np.ndarray
    encoding: str
    path: str
    sidecar: str | None
    stamp_ns: int = 0


@dataclass
class Result:
    """What became of a :class:`Job`."""

    seq: int
    ok: bool
    nbytes: int = 0
    paths: tuple[str, ...] = ()
    encode_sec: float = 0.0
    total_sec: float = 0.0
    error: str = ''
    #: True when the job was lost with its worker (crash) rather than failing to write.
    lost: bool = False
    extra: dict = field(default_factory=dict)


ResultCallback = Callable[[Result], None]


class EncoderBackend(abc.ABC):
    """Encode frames to JPEG files off the caller's thread (except ``thread``).

    Lifecycle: ``start(on_result)``, any number of ``submit``, ``close(timeout)``.
    ``on_result`` is called once per accepted job from a backend thread.
    """

    name = 'abstract'

    def __init__(self) -> None:
        self._on_result: ResultCallback | None = None

    def start(self, on_result: ResultCallback) -> None:
        """Start workers; results are reported through ``on_result``.

        :raises BackendError: when the backend cannot start.
        """
        self._on_result = on_result

    @abc.abstractmethod
    def submit(self, job: Job, timeout: float) -> bool:
        """Hand ``job`` over, waiting up to ``timeout`` s for capacity.

        :return: False if there was no capacity in time (the job was not taken).
        :raises BackendError: when the backend has failed for good.
        """

    @abc.abstractmethod
    def close(self, timeout: float) -> int:
        """Finish accepted jobs within ``timeout`` seconds, then stop every worker.

        :return: number of accepted jobs abandoned (not finished in time).
        """

    def stats(self) -> dict:
        """Return backend-specific counters for diagnostics."""
        return {}

    def in_flight(self) -> int:
        """Return accepted jobs not finished yet."""
        return 0

    def _report(self, result: Result) -> None:
        if self._on_result is not None:
            self._on_result(result)


def to_bgr(frame: np.ndarray, encoding: str) -> np.ndarray:
    """Return ``frame`` in OpenCV channel order (bgr8 or mono8 pass through)."""
    if encoding == 'rgb8':
        return np.ascontiguousarray(frame[:, :, ::-1])
    return frame


class ThreadBackend(EncoderBackend):
    """The baseline: ``cv2.imencode`` and an atomic write in the recorder's dispatcher thread.

    Encoding holds a core of the recording process (the GIL is released inside
    imencode, but the CPU time is still spent next to inference in the same process).
    """

    name = 'thread'

    def __init__(self, quality: int = 90):
        super().__init__()
        import cv2  # noqa: F401 - fail at construction, not at the first frame
        self._quality = int(quality)
        self._busy = False

    def submit(self, job: Job, timeout: float) -> bool:
        """Encode and write ``job`` now, in the calling thread."""
        import cv2
        start = time.perf_counter()
        self._busy = True
        try:
            try:
                ok, buf = cv2.imencode('.jpg', to_bgr(job.frame, job.encoding),
                                       [cv2.IMWRITE_JPEG_QUALITY, self._quality])
            except cv2.error as exc:
                raise StorageError(f'cannot encode {job.path}: {exc}') from exc
            if not ok:
                raise StorageError(f'cv2.imencode failed for {job.path}')
            # Encode in memory and write ourselves: cv2.imwrite hides the errno
            # (a full disk only said 'imwrite failed'), write_atomic reports it.
            nbytes, paths = write_frame_files(job.path, buf.tobytes(), job.sidecar)
            elapsed = time.perf_counter() - start
            self._report(Result(job.seq, True, nbytes, paths, elapsed, elapsed))
        except StorageError as exc:
            self._report(Result(job.seq, False, error=str(exc),
                                total_sec=time.perf_counter() - start))
        finally:
            self._busy = False
        return True

    def close(self, timeout: float) -> int:
        """Nothing runs in the background."""
        return 0


def make_backend(cfg) -> EncoderBackend:
    """Build the backend named by ``cfg.backend`` from a :class:`RecorderConfig`.

    :raises BackendError: for an unknown name or a backend that cannot be built here.
    """
    if cfg.backend == 'thread':
        return ThreadBackend(cfg.jpeg_quality)
    if cfg.backend == 'process':
        from pianist_ros.recorder.process_backend import ProcessBackend
        return ProcessBackend(workers=cfg.process_workers, slots=cfg.process_slots,
                              quality=cfg.jpeg_quality, codec=cfg.process_codec)
    if cfg.backend == 'gstreamer':
        from pianist_ros.recorder.gst_backend import GstBackend
        return GstBackend(mode=cfg.gstreamer_mode, quality=cfg.jpeg_quality,
                          converter=cfg.gstreamer_converter,
                          jpeg_encoder=cfg.gstreamer_jpeg_encoder,
                          h264_encoder=cfg.gstreamer_h264_encoder,
                          h264_bitrate_kbps=cfg.gstreamer_h264_bitrate_kbps)
    raise BackendError(f'unknown backend {cfg.backend!r}')
