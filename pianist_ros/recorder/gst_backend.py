"""The ``gstreamer`` backend: ``appsrc ! <converter> ! <encoder> ! appsink`` via PyGObject.

Colour conversion and encoding run in GStreamer's own streaming threads (C code,
no GIL), so only the buffer copy in :meth:`GstBackend.submit` and the file write in
the pull thread run Python. The encoder element is a parameter: ``jpegenc`` here,
``nvjpegenc`` (with ``nvvidconv``) on a Jetson. In ``h264`` mode the frames go into
one streamable Matroska file per session instead (``x264enc`` / ``nvv4l2h264enc``),
renamed from a hidden temp name to its final name when the session closes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import logging
import os
import threading
import time

import numpy as np

from pianist_ros.common.gst import gst
from pianist_ros.common.gst import GstUnavailable
from pianist_ros.recorder.backends import EncoderBackend
from pianist_ros.recorder.backends import Job
from pianist_ros.recorder.backends import Result
from pianist_ros.recorder.errors import BackendError
from pianist_ros.recorder.errors import StorageError
from pianist_ros.recorder.storage import temp_path
from pianist_ros.recorder.storage import write_frame_files

_LOG = logging.getLogger(__name__)

#: Frames pushed into the pipeline but not yet written (bounds memory and latency).
MAX_IN_FLIGHT = 4
_FORMATS = {'bgr8': 'BGR', 'rgb8': 'RGB', 'mono8': 'GRAY8'}


def _gst():
    """Import and initialise GStreamer.

    :raises BackendError: when PyGObject or GStreamer 1.0 is missing.
    """
    try:
        return gst()
    except GstUnavailable as exc:
        raise BackendError(str(exc)) from exc


def element_available(name: str) -> bool:
    """Return whether the GStreamer element factory ``name`` is installed."""
    try:
        return _gst().ElementFactory.find(name) is not None
    except BackendError:
        return False


@dataclass
class _Pending:
    seq: int
    path: str
    sidecar: str | None
    pushed: float


class GstBackend(EncoderBackend):
    """Encode through a GStreamer pipeline; JPEG files or one H.264 video per session."""

    name = 'gstreamer'

    def __init__(self, mode: str = 'jpeg', quality: int = 90, converter: str = 'videoconvert',
                 jpeg_encoder: str = 'jpegenc', h264_encoder: str = 'x264enc',
                 h264_bitrate_kbps: int = 4000):
        super().__init__()
        if mode not in ('jpeg', 'h264'):
            raise ValueError(f'unknown mode {mode!r}')
        self._gst = _gst()
        encoder = jpeg_encoder if mode == 'jpeg' else h264_encoder
        for element in (converter, encoder, 'appsrc', 'appsink'):
            if self._gst.ElementFactory.find(element) is None:
                raise BackendError(f'GStreamer element {element!r} is not installed')
        self._mode = mode
        self._quality = int(quality)
        self._converter = converter
        self._encoder = encoder
        self._bitrate = int(h264_bitrate_kbps)
        self._cond = threading.Condition()
        self._pipeline = None
        self._src = None
        self._sink = None
        self._caps_key: tuple | None = None
        self._pending: deque[_Pending] = deque()
        self._puller: threading.Thread | None = None
        self._stop_pull = False
        self._closing = False
        self._video_tmp = ''
        self._video_path = ''
        self._video_frames = 0
        self.pipeline_errors = 0
        self.last_error = ''

    # ---- pipeline ------------------------------------------------------------------

    def _describe(self, fmt: str, width: int, height: int) -> str:
        caps = f'video/x-raw,format={fmt},width={width},height={height},framerate=0/1'
        head = f'appsrc name=src format=time is-live=false caps="{caps}" ! {self._converter} ! '
        if self._mode == 'jpeg':
            # 4:2:0 like the other backends (jpegenc would otherwise take 4:4:4), and
            # full-range BT.601 (1:4:0:0) as JFIF decoders assume; videoconvert's default
            # studio range turns black into grey 16.
            return (head + 'video/x-raw,format=I420,colorimetry=1:4:0:0 ! '
                    f'{self._encoder} quality={self._quality} ! '
                    'appsink name=sink sync=false emit-signals=false max-buffers=16')
        if self._encoder == 'x264enc':
            enc = (f'x264enc tune=zerolatency speed-preset=ultrafast bitrate={self._bitrate} '
                   'key-int-max=60')
        elif self._encoder.startswith('nvv4l2'):
            enc = f'{self._encoder} bitrate={self._bitrate * 1000} insert-sps-pps=true'
        else:
            enc = self._encoder
        parse = ' ! h264parse' if self._gst.ElementFactory.find('h264parse') else ''
        location = self._video_tmp.replace('\\', '\\\\').replace('"', '\\"')
        return (head + enc + parse +
                f' ! matroskamux streamable=true ! filesink name=sink location="{location}"')

    def _build(self, fmt: str, width: int, height: int, first_path: str) -> None:
        Gst = self._gst
        if self._mode == 'h264':
            stamp = os.path.splitext(os.path.basename(first_path))[0]
            self._video_path = os.path.join(os.path.dirname(first_path), f'video_{stamp}.mkv')
            self._video_tmp = temp_path(self._video_path, '.mkv')
            self._video_frames = 0
        try:
            pipeline = Gst.parse_launch(self._describe(fmt, width, height))
        except Exception as exc:  # noqa: BLE001 - GLib.Error and friends
            raise BackendError(f'cannot build GStreamer pipeline: {exc}') from exc
        if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            pipeline.set_state(Gst.State.NULL)
            raise BackendError('GStreamer pipeline refused to start')
        self._pipeline = pipeline
        self._src = pipeline.get_by_name('src')
        self._sink = pipeline.get_by_name('sink')
        self._stop_pull = False
        self._puller = threading.Thread(target=self._pull, name='recorder-gst-pull',
                                        daemon=True)
        self._puller.start()

    def _teardown(self, timeout: float) -> None:
        """Send EOS, wait for it (bounded), stop the pipeline and the pull thread."""
        Gst = self._gst
        pipeline = self._pipeline
        if pipeline is None:
            return
        self._src.emit('end-of-stream')
        if self._mode == 'h264':
            msg = pipeline.get_bus().timed_pop_filtered(
                int(max(timeout, 0.5) * Gst.SECOND),
                Gst.MessageType.EOS | Gst.MessageType.ERROR)
            if msg is not None and msg.type == Gst.MessageType.ERROR:
                self.last_error = msg.parse_error()[0].message
        with self._cond:
            self._stop_pull = True
            self._cond.notify_all()
        if self._puller is not None and self._puller is not threading.current_thread():
            self._puller.join(max(timeout, 1.0))
        pipeline.set_state(Gst.State.NULL)
        self._pipeline = self._src = self._sink = None
        self._caps_key = None
        if self._mode == 'h264':
            self._finish_video()

    def _finish_video(self) -> None:
        if not self._video_tmp or not os.path.exists(self._video_tmp):
            return
        try:
            size = os.path.getsize(self._video_tmp)
            os.replace(self._video_tmp, self._video_path)
        except OSError as exc:
            self.last_error = f'cannot finish {self._video_path}: {exc}'
            return
        self._report(Result(-1, True, size, (self._video_path,),
                            extra={'video_frames': self._video_frames}))
        self._video_tmp = ''

    # ---- submit --------------------------------------------------------------------

    def submit(self, job: Job, timeout: float) -> bool:
        """Push one frame into the pipeline (rebuilt when the frame format changes)."""
        Gst = self._gst
        frame = job.frame
        fmt = _FORMATS.get(job.encoding)
        if fmt is None:
            raise BackendError(f'unsupported encoding {job.encoding!r}')
        height, width = frame.shape[:2]
        key = (fmt, width, height)
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._pending) >= MAX_IN_FLIGHT or (
                    self._caps_key not in (None, key) and self._pending):
                remaining = deadline - time.monotonic()
                if self._closing or remaining <= 0:
                    return False
                self._cond.wait(remaining)
            if self._closing:
                return False
        if self._caps_key != key:
            self._teardown(1.0)
            self._build(fmt, width, height, job.path)
            self._caps_key = key
        data = _packed_rows(frame)
        buf = Gst.Buffer.new_wrapped(data)
        # The sequence number rides along as the timestamp, so output matches input.
        buf.pts = job.seq * Gst.MSECOND
        buf.duration = Gst.MSECOND
        with self._cond:
            self._pending.append(_Pending(job.seq, job.path, job.sidecar, time.perf_counter()))
        ret = self._src.emit('push-buffer', buf)
        if ret != Gst.FlowReturn.OK:
            with self._cond:
                self._pending.pop()
            self.pipeline_errors += 1
            self.last_error = f'push-buffer returned {ret.value_nick}'
            self._teardown(0.5)
            raise BackendError(f'GStreamer pipeline refused the frame: {self.last_error}')
        if self._mode == 'h264':
            self._video_frames += 1
        return True

    # ---- pull thread -----------------------------------------------------------------

    def _pull(self) -> None:
        Gst = self._gst
        sink = self._sink
        bus = self._pipeline.get_bus()
        while True:
            with self._cond:
                if self._stop_pull:
                    break
            msg = bus.pop_filtered(Gst.MessageType.ERROR)
            if msg is not None:
                err, debug = msg.parse_error()
                self.pipeline_errors += 1
                self.last_error = f'{err.message} ({debug})'
                _LOG.debug('GStreamer error: %s', self.last_error)
                self._fail_pending(self.last_error)
                break
            if self._mode == 'h264':
                self._h264_progress()
                continue
            sample = sink.emit('try-pull-sample', 50 * Gst.MSECOND)
            if sample is None:
                continue
            buf = sample.get_buffer()
            jpeg = buf.extract_dup(0, buf.get_size())
            with self._cond:
                pending = self._pending.popleft() if self._pending else None
            if pending is None:
                continue
            self._write(pending, jpeg)

    def _h264_progress(self) -> None:
        """In video mode, frames count as done once the muxed file grows past them."""
        time.sleep(0.05)  # pull thread only; no appsink to block on in video mode
        with self._cond:
            done = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        for pending in done:
            self._report(Result(pending.seq, True, 0, (), 0.0,
                                time.perf_counter() - pending.pushed))

    def _write(self, pending: _Pending, jpeg: bytes) -> None:
        try:
            nbytes, paths = write_frame_files(pending.path, jpeg, pending.sidecar)
            result = Result(pending.seq, True, nbytes, paths, 0.0,
                            time.perf_counter() - pending.pushed)
        except StorageError as exc:
            result = Result(pending.seq, False, error=str(exc),
                            total_sec=time.perf_counter() - pending.pushed)
        with self._cond:
            self._cond.notify_all()
        self._report(result)

    def _fail_pending(self, error: str) -> None:
        with self._cond:
            failed = list(self._pending)
            self._pending.clear()
            self._caps_key = ('failed',)  # forces a rebuild on the next frame
            self._cond.notify_all()
        for pending in failed:
            self._report(Result(pending.seq, False, error=error, lost=True))

    # ---- close ---------------------------------------------------------------------

    def in_flight(self) -> int:
        """Return frames pushed but not yet written."""
        with self._cond:
            return len(self._pending)

    def close(self, timeout: float) -> int:
        """Drain the pipeline within ``timeout``, then stop it; return abandoned frames."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            self._closing = True
            while self._pending and self._mode == 'jpeg':
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            abandoned = len(self._pending) if self._mode == 'jpeg' else 0
            self._pending.clear()
        self._teardown(max(deadline - time.monotonic(), 0.5))
        return abandoned

    def stats(self) -> dict:
        """Return the pipeline description and error counters."""
        encoder = self._encoder
        return {'gst_mode': self._mode, 'gst_encoder': encoder,
                'gst_pipeline_errors': self.pipeline_errors,
                'gst_last_error': self.last_error}


def _packed_rows(frame: np.ndarray) -> bytes:
    """Return frame bytes with rows padded to GStreamer's 4-byte default stride."""
    row = frame.shape[1] * (frame.shape[2] if frame.ndim == 3 else 1)
    stride = (row + 3) & ~3
    if stride == row:
        return np.ascontiguousarray(frame).tobytes()
    padded = np.zeros((frame.shape[0], stride), dtype=np.uint8)
    padded[:, :row] = frame.reshape(frame.shape[0], row)
    return padded.tobytes()
