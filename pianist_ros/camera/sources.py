"""Frame sources behind one small interface (ROS-free).

:class:`FrameSource` is the I/O edge of the camera, shaped like python-tuf's
``FetcherInterface``: subclasses implement ``_open`` / ``_read`` / ``_close`` and the
public methods wrap every foreign error (OpenCV, GStreamer, OS) into the exceptions
of :mod:`pianist_ros.camera.errors` with a message an operator can act on.

A source object is used by one thread at a time (the capture session that owns it);
only :meth:`FrameSource.interrupt` may be called from another thread, and it never
touches the capture handle, because releasing an OpenCV capture while another thread
is inside ``read()`` can crash the process.

Sources: synthetic test pattern (default), video file (``loop``, paced to the file's
frame rate or ``fps``), V4L2 device (index or ``/dev/videoN``), network URL
(rtsp/http via OpenCV's FFMPEG backend) and GStreamer pipeline (OpenCV's GStreamer
backend where OpenCV has it, as on JetPack; PyGObject ``appsink`` otherwise).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
import logging
import os
import re
import threading
import time
from typing import Callable
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import cv2
import numpy as np

from pianist_ros.camera.errors import SourceConfigError
from pianist_ros.camera.errors import SourceDamaged
from pianist_ros.camera.errors import SourceEnded
from pianist_ros.camera.errors import SourceOpenError
from pianist_ros.camera.errors import SourceReadError
from pianist_ros.common.gst import gst
from pianist_ros.common.gst import GstUnavailable
from pianist_ros.common.video import truncation_error

_LOG = logging.getLogger(__name__)

#: FFmpeg's own log level for OpenCV captures (AV_LOG_QUIET); an operator can override
#: it in the environment. Our log lines carry the reason of every failure, while FFmpeg
#: and OpenCV would print two stderr lines per reconnect attempt, forever.
FFMPEG_LOGLEVEL_QUIET = '-8'
#: cv2.LOG_LEVEL_ERROR: silences OpenCV's 'global cap.cpp ... open VIDEOIO' warnings.
CV_LOG_LEVEL_ERROR = 2


def quiet_video_logs() -> None:
    """Silence FFmpeg's and OpenCV's stderr chatter; call before the first capture.

    Setting ``OPENCV_FFMPEG_LOGLEVEL`` works as long as no capture was opened yet (OpenCV
    reads it when FFmpeg is first used); ``setdefault`` keeps an operator's own value.
    """
    os.environ.setdefault('OPENCV_FFMPEG_LOGLEVEL', FFMPEG_LOGLEVEL_QUIET)
    try:
        cv2.setLogLevel(CV_LOG_LEVEL_ERROR)
    except (AttributeError, cv2.error) as exc:
        _LOG.debug('cannot set the OpenCV log level: %s', exc)


quiet_video_logs()

SYNTHETIC = 'synthetic'
FILE = 'file'
V4L2 = 'v4l2'
NETWORK = 'network'
GSTREAMER = 'gstreamer'
KINDS = (SYNTHETIC, FILE, V4L2, NETWORK, GSTREAMER)

NETWORK_SCHEMES = ('rtsp', 'rtsps', 'rtmp', 'http', 'https', 'udp', 'tcp')
#: A source string longer than this is refused (it comes from operators' config).
MAX_SPEC_LENGTH = 4096
#: How often a file source checks that its file still exists and did not shrink.
FILE_CHECK_PERIOD_SEC = 1.0
#: An open that failed after this fraction of open_timeout timed out (no answer).
OPEN_TIMEOUT_FRACTION = 0.9
#: Name of the appsink we append when a GStreamer pipeline has none.
GST_SINK_NAME = 'pianist_sink'


@dataclass(frozen=True)
class SourceOptions:
    """Capture settings shared by every source kind.

    :param fps: frame rate for synthetic frames, files (unless ``use_file_fps``) and the
        rate requested from devices, in Hz.
    :param width: synthetic frame width / requested capture width, in pixels.
    :param height: synthetic frame height / requested capture height, in pixels.
    :param loop: restart a video file at its end instead of ending.
    :param use_file_fps: pace video files at their own frame rate when it is known.
    :param open_timeout: seconds a network open may take before it fails.
    :param read_timeout: seconds a network / GStreamer read may block before it fails.
    """

    fps: float = 30.0
    width: int = 640
    height: int = 480
    loop: bool = False
    use_file_fps: bool = True
    open_timeout: float = 10.0
    read_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not 0.0 < self.fps <= 1000.0:
            raise ValueError(f'fps must be in (0, 1000], got {self.fps}')
        if self.width < 1 or self.height < 1:
            raise ValueError(f'width and height must be positive, got {self.width}x{self.height}')
        if self.open_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError('open_timeout and read_timeout must be > 0')


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source string: its kind and its target (path, URL, index, pipeline)."""

    kind: str
    target: str

    def describe(self) -> str:
        """Return a log-safe description (passwords in URLs are masked)."""
        if self.kind == NETWORK:
            return f'{self.kind}:{redact_url(self.target)}'
        if self.kind == SYNTHETIC:
            return SYNTHETIC
        return f'{self.kind}:{self.target}'


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return '<unparseable url>'
    if parts.password is None:
        return url
    netloc = f'{parts.username}:***@{parts.hostname}'
    if parts.port:
        netloc += f':{parts.port}'
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def parse_source(spec: str) -> SourceSpec:
    """Classify a source string.

    ``''`` or ``synthetic`` -> synthetic; a bare integer or ``/dev/video*`` -> V4L2;
    a string containing ``!`` -> GStreamer pipeline; ``scheme://`` with a network scheme
    -> network URL (``file://`` -> file); anything else is a video file path.

    :raises SourceConfigError: for strings that are too long, contain control
        characters, or name a network URL without a host.
    """
    if not isinstance(spec, str):
        raise SourceConfigError(f'source must be a string, got {type(spec).__name__}')
    if len(spec) > MAX_SPEC_LENGTH:
        raise SourceConfigError(f'source string is longer than {MAX_SPEC_LENGTH} characters')
    text = spec.strip()
    if re.search(r'[\x00-\x1f]', text):
        raise SourceConfigError('source string contains control characters')
    if text in ('', SYNTHETIC):
        return SourceSpec(SYNTHETIC, '')
    if re.fullmatch(r'\d{1,3}', text):
        return SourceSpec(V4L2, f'/dev/video{int(text)}')
    if text.startswith('/dev/'):
        return SourceSpec(V4L2, text)
    if '!' in text:
        return SourceSpec(GSTREAMER, text)
    match = re.match(r'([A-Za-z][A-Za-z0-9+.-]*)://', text)
    if match:
        scheme = match.group(1).lower()
        if scheme == 'file':
            return SourceSpec(FILE, urlsplit(text).path)
        if scheme not in NETWORK_SCHEMES:
            raise SourceConfigError(
                f'unsupported URL scheme {scheme!r} (use one of {", ".join(NETWORK_SCHEMES)})')
        try:
            host = urlsplit(text).hostname
        except ValueError as exc:
            raise SourceConfigError(f'malformed URL {redact_url(text)}: {exc}') from exc
        if not host:
            raise SourceConfigError(f'URL has no host: {redact_url(text)}')
        return SourceSpec(NETWORK, text)
    return SourceSpec(FILE, os.path.expanduser(text))


class Pacer:
    """Schedule frames at a fixed rate without bursts after a late frame."""

    def __init__(self, fps: float, clock: Callable[[], float] = time.monotonic):
        if fps <= 0:
            raise ValueError(f'fps must be > 0, got {fps}')
        self.period = 1.0 / fps
        self._clock = clock
        self._next: float | None = None

    def delay(self) -> float:
        """Return how long to wait before the next frame is due, and book that slot."""
        now = self._clock()
        if self._next is None or now - self._next > self.period:
            # First frame, or we fell more than a frame behind: resync, never burst.
            self._next = now
        wait = max(0.0, self._next - now)
        self._next += self.period
        return wait


class FrameSource(abc.ABC):
    """One frame source; subclasses implement ``_open``, ``_read`` and ``_close``."""

    kind = ''

    def __init__(self, spec: SourceSpec, options: SourceOptions):
        self.spec = spec
        self.options = options
        self._interrupted = threading.Event()
        self._opened = False

    def describe(self) -> str:
        """Return a log-safe description of the source."""
        return self.spec.describe()

    @property
    def is_open(self) -> bool:
        """Return whether :meth:`open` succeeded and :meth:`close` was not called."""
        return self._opened

    def open(self) -> None:
        """Open the source.

        :raises SourceOpenError: when it cannot be opened now (retry later).
        :raises SourceConfigError: when it can never be opened as configured.
        """
        try:
            self._open()
        except (SourceOpenError, SourceConfigError):
            self._safe_close()
            raise
        except Exception as exc:  # noqa: BLE001 - wrap any foreign error
            self._safe_close()
            raise SourceOpenError(f'cannot open {self.describe()}: {exc}') from exc
        self._opened = True

    def read(self) -> np.ndarray | None:
        """Return the next frame (BGR, uint8, HxWx3) or ``None`` for a failed read.

        Paced sources (synthetic, files) wait here until the frame is due.

        :raises SourceEnded: a finite source has no more frames.
        :raises SourceReadError: the source is gone and must be reopened.
        """
        if not self._opened:
            raise SourceReadError(f'{self.describe()} is not open')
        try:
            return self._read()
        except (SourceEnded, SourceReadError):
            raise
        except Exception as exc:  # noqa: BLE001 - wrap any foreign error
            raise SourceReadError(f'read from {self.describe()} failed: {exc}') from exc

    def close(self) -> None:
        """Release the source; idempotent, never raises."""
        self._opened = False
        self._safe_close()

    def interrupt(self) -> None:
        """Cut short a pacing wait; safe from any thread (never touches the handle)."""
        self._interrupted.set()

    def _wait(self, seconds: float) -> bool:
        """Wait up to ``seconds``; return False if interrupted."""
        if seconds <= 0:
            return not self._interrupted.is_set()
        return not self._interrupted.wait(seconds)

    def _safe_close(self) -> None:
        try:
            self._close()
        except Exception as exc:  # noqa: BLE001 - close must never raise
            _LOG.debug('closing %s failed: %s', self.describe(), exc)

    @abc.abstractmethod
    def _open(self) -> None:
        """Acquire the device / file / stream."""

    @abc.abstractmethod
    def _read(self) -> np.ndarray | None:
        """Return one frame or None."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release whatever ``_open`` acquired (may be called after a partial open)."""


class SyntheticSource(FrameSource):
    """Moving colour bars with a frame counter, paced at ``fps``."""

    kind = SYNTHETIC
    _BARS = ((255, 255, 255), (0, 255, 255), (255, 255, 0), (0, 255, 0),
             (255, 0, 255), (0, 0, 255), (255, 0, 0), (0, 0, 0))

    def __init__(self, spec: SourceSpec, options: SourceOptions):
        super().__init__(spec, options)
        self._base: np.ndarray | None = None
        self._pacer: Pacer | None = None
        self._index = 0

    def _open(self) -> None:
        w, h = self.options.width, self.options.height
        base = np.zeros((h, w, 3), dtype=np.uint8)
        edges = np.linspace(0, w, len(self._BARS) + 1).astype(int)
        for color, x0, x1 in zip(self._BARS, edges[:-1], edges[1:]):
            base[:, x0:x1] = color
        self._base = base
        self._pacer = Pacer(self.options.fps)
        self._index = 0

    def _read(self) -> np.ndarray | None:
        if not self._wait(self._pacer.delay()):
            return None
        frame = np.roll(self._base, (self._index * 4) % self.options.width, axis=1)
        cv2.putText(frame, f'pianist synthetic {self._index}', (10, 30),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.8, (128, 128, 128), 2)
        self._index += 1
        return frame

    def _close(self) -> None:
        self._base = None


class FileSource(FrameSource):
    """A video file decoded with OpenCV/FFMPEG, paced, optionally looping.

    Notices when the file is deleted, replaced or truncated while being read and
    raises :class:`SourceReadError` so the camera reopens it when it is back.
    """

    kind = FILE

    def __init__(self, spec: SourceSpec, options: SourceOptions,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(spec, options)
        self._clock = clock
        self._cap = None
        self._pacer: Pacer | None = None
        self._identity: tuple[int, int] | None = None
        self._size = 0
        self._next_check = 0.0
        self._frames_this_pass = 0
        self._frame_count = 0
        self.fps = options.fps

    def _open(self) -> None:
        path = self.spec.target
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise SourceOpenError(f'video file not found: {path}') from None
        except OSError as exc:
            raise SourceOpenError(f'cannot access video file {path}: {exc.strerror}') from exc
        if not os.path.isfile(path):
            raise SourceOpenError(f'not a regular file: {path}')
        if not os.access(path, os.R_OK):
            raise SourceOpenError(f'video file is not readable: {path}')
        self._identity = (st.st_dev, st.st_ino)
        self._size = st.st_size
        self._cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        if not self._cap.isOpened():
            raise SourceOpenError(f'cannot decode video file {path} (not a video, or damaged)')
        file_fps = self._cap.get(cv2.CAP_PROP_FPS) or 0.0
        if self.options.use_file_fps and 0.5 <= file_fps <= 1000.0:
            self.fps = float(file_fps)
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
        self._frame_count = int(count) if 0 < count < 1e9 else 0
        self._pacer = Pacer(self.fps, self._clock)
        self._next_check = self._clock() + FILE_CHECK_PERIOD_SEC
        self._frames_this_pass = 0

    def _check_file(self) -> None:
        """Raise SourceReadError if the file was deleted, replaced or truncated."""
        path = self.spec.target
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise SourceReadError(f'video file was deleted while being read: {path}') from None
        except OSError as exc:
            raise SourceReadError(f'cannot access video file {path}: {exc.strerror}') from exc
        if (st.st_dev, st.st_ino) != self._identity:
            raise SourceReadError(f'video file was replaced while being read: {path}')
        if st.st_size < self._size:
            raise SourceReadError(
                f'video file was truncated while being read: {path} '
                f'({self._size} -> {st.st_size} bytes)')

    def _read(self) -> np.ndarray | None:
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + FILE_CHECK_PERIOD_SEC
            self._check_file()
        ok, frame = self._cap.read()
        if not ok:
            # End of the data: first rule out a file that changed under us.
            self._check_file()
            self._check_complete()
            if not self.options.loop:
                raise SourceEnded(f'end of video file {self.spec.target}')
            if self._frames_this_pass == 0:
                raise SourceReadError(f'no frame could be decoded from {self.spec.target}')
            # Rewind in place: reopening would cost more than one frame period.
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._frames_this_pass = 0
            ok, frame = self._cap.read()
            if not ok:
                raise SourceReadError(f'cannot rewind video file {self.spec.target}')
        self._frames_this_pass += 1
        if not self._wait(self._pacer.delay()):
            return None
        return frame

    def _check_complete(self) -> None:
        """Raise when the file says frames remain although decoding stopped.

        :raises SourceDamaged: without ``loop`` (the file ends, with the reason).
        :raises SourceReadError: with ``loop`` (reopened and played again).
        """
        message = truncation_error(self.spec.target, self._frames_this_pass,
                                   self._frame_count)
        if not message:
            return
        if self.options.loop:
            raise SourceReadError(message)
        raise SourceDamaged(message)

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class V4L2Source(FrameSource):
    """A V4L2 device (``/dev/videoN``) through OpenCV's V4L2 backend."""

    kind = V4L2

    def __init__(self, spec: SourceSpec, options: SourceOptions):
        super().__init__(spec, options)
        self._cap = None

    def _open(self) -> None:
        path = self.spec.target
        if not os.path.exists(path):
            raise SourceOpenError(f'V4L2 device {path} does not exist (unplugged or wrong index?)')
        if not os.access(path, os.R_OK | os.W_OK):
            raise SourceOpenError(f'no permission to open {path} (is the user in group video?)')
        self._cap = cv2.VideoCapture(path, cv2.CAP_V4L2)
        if not self._cap.isOpened():
            raise SourceOpenError(
                f'cannot open V4L2 device {path} (busy, or not a video capture device)')
        self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.options.width)
        self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.options.height)
        self._cap.set(cv2.CAP_PROP_FPS, self.options.fps)
        # Keep the driver queue short so frames are fresh, not a backlog.
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    def _read(self) -> np.ndarray | None:
        ok, frame = self._cap.read()
        if ok:
            return frame
        if not os.path.exists(self.spec.target):
            raise SourceReadError(f'V4L2 device {self.spec.target} disappeared (unplugged?)')
        return None

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class NetworkSource(FrameSource):
    """An rtsp/http/... stream through OpenCV's FFMPEG backend, with I/O timeouts."""

    kind = NETWORK

    def __init__(self, spec: SourceSpec, options: SourceOptions):
        super().__init__(spec, options)
        self._cap = None

    def _open(self) -> None:
        # FFMPEG's interrupt callback enforces these, so a dead server makes open()
        # and read() return instead of blocking forever.
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.options.open_timeout * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.options.read_timeout * 1000)]
        started = time.monotonic()
        self._cap = cv2.VideoCapture(self.spec.target, cv2.CAP_FFMPEG, params)
        if not self._cap.isOpened():
            raise SourceOpenError(open_failure_message(
                self.spec.target, time.monotonic() - started, self.options.open_timeout))

    def _read(self) -> np.ndarray | None:
        ok, frame = self._cap.read()
        return frame if ok else None

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def open_failure_message(url: str, elapsed: float, open_timeout: float) -> str:
    """Return why a network open failed, telling a timeout from a quick refusal.

    :param url: the stream URL (its password is masked in the message).
    :param elapsed: seconds the failed open took.
    :param open_timeout: the configured open timeout, in seconds.
    """
    if elapsed >= OPEN_TIMEOUT_FRACTION * open_timeout:
        return (f'cannot open network stream {redact_url(url)}: no answer within '
                f'{open_timeout:g} s (timeout)')
    return (f'cannot open network stream {redact_url(url)} '
            '(server unreachable, wrong path, or not a video stream)')


def cv2_has_gstreamer() -> bool:
    """Return whether this OpenCV build has the GStreamer backend (JetPack's has)."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith('GStreamer:'):
            return 'YES' in line
    return False


def _gst():
    """Import and initialise GStreamer through PyGObject once per process.

    :raises SourceConfigError: when PyGObject or GStreamer is not installed.
    """
    try:
        return gst()
    except GstUnavailable as exc:
        raise SourceConfigError(
            f'GStreamer sources need OpenCV with GStreamer or PyGObject with GStreamer 1.x: '
            f'{exc}') from exc


def gst_pipeline_text(pipeline: str) -> str:
    """Return ``pipeline`` ending in an appsink (a BGR one is appended when missing)."""
    if re.search(r'\bappsink\b', pipeline):
        return pipeline
    return (f'{pipeline} ! videoconvert ! video/x-raw,format=BGR ! '
            f'appsink name={GST_SINK_NAME} max-buffers=2 drop=true sync=false')


class GStreamerSource(FrameSource):
    """A GStreamer pipeline ending in an appsink that delivers BGR frames."""

    kind = GSTREAMER

    def __init__(self, spec: SourceSpec, options: SourceOptions,
                 use_cv2: bool | None = None):
        super().__init__(spec, options)
        self._use_cv2 = cv2_has_gstreamer() if use_cv2 is None else use_cv2
        self._cap = None
        self._pipeline = None
        self._sink = None
        self._bus = None

    def _open(self) -> None:
        text = gst_pipeline_text(self.spec.target)
        if self._use_cv2:
            self._cap = cv2.VideoCapture(text, cv2.CAP_GSTREAMER)
            if not self._cap.isOpened():
                raise SourceOpenError(f'cannot start GStreamer pipeline: {text}')
            return
        gst = _gst()
        from gi.repository import GLib
        try:
            self._pipeline = gst.parse_launch(text)
        except GLib.Error as exc:
            raise SourceConfigError(f'invalid GStreamer pipeline ({exc.message}): {text}') \
                from exc
        self._sink = self._pipeline.get_by_name(GST_SINK_NAME) or _first_appsink(self._pipeline)
        if self._sink is None:
            raise SourceConfigError(f'GStreamer pipeline has no appsink: {text}')
        self._sink.set_property('caps', gst.Caps.from_string('video/x-raw,format=BGR'))
        self._sink.set_property('max-buffers', 2)
        self._sink.set_property('drop', True)
        self._bus = self._pipeline.get_bus()
        if self._pipeline.set_state(gst.State.PLAYING) == gst.StateChangeReturn.FAILURE:
            raise SourceOpenError(f'cannot start GStreamer pipeline: {self._bus_error(gst)}')
        result, _state, _pending = self._pipeline.get_state(
            int(self.options.open_timeout * gst.SECOND))
        if result == gst.StateChangeReturn.FAILURE:
            raise SourceOpenError(f'GStreamer pipeline failed to start: {self._bus_error(gst)}')

    def _bus_error(self, gst) -> str:
        msg = self._bus.pop_filtered(gst.MessageType.ERROR) if self._bus else None
        if msg is None:
            return 'no error message on the bus'
        err, _debug = msg.parse_error()
        return f'{msg.src.get_name()}: {err.message}'

    def _read(self) -> np.ndarray | None:
        if self._cap is not None:
            ok, frame = self._cap.read()
            return frame if ok else None
        gst = _gst()
        sample = self._sink.emit('try-pull-sample', int(self.options.read_timeout * gst.SECOND))
        if sample is None:
            msg = self._bus.pop_filtered(gst.MessageType.ERROR | gst.MessageType.EOS)
            if msg is not None and msg.type == gst.MessageType.EOS:
                raise SourceEnded(f'GStreamer pipeline reached end of stream: '
                                  f'{self.spec.target}')
            if msg is not None:
                err, _debug = msg.parse_error()
                raise SourceReadError(f'GStreamer error from {msg.src.get_name()}: '
                                      f'{err.message}')
            if self._sink.get_property('eos'):
                raise SourceEnded(f'GStreamer pipeline reached end of stream: '
                                  f'{self.spec.target}')
            return None
        return _sample_to_bgr(sample, gst)

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        if self._pipeline is not None:
            self._pipeline.set_state(_gst().State.NULL)
            self._pipeline = None
            self._sink = None
            self._bus = None


def _first_appsink(pipeline):
    iterator = pipeline.iterate_sinks()
    while True:
        result, element = iterator.next()
        if element is None or result.value_nick != 'ok':
            return None
        factory = element.get_factory()
        if factory is not None and factory.get_name() == 'appsink':
            return element


def _sample_to_bgr(sample, gst) -> np.ndarray:
    """Copy one BGR appsink sample into an HxWx3 array (rows may be padded)."""
    structure = sample.get_caps().get_structure(0)
    width = structure.get_value('width')
    height = structure.get_value('height')
    buf = sample.get_buffer()
    ok, info = buf.map(gst.MapFlags.READ)
    if not ok:
        raise SourceReadError('cannot map GStreamer buffer')
    try:
        stride = info.size // height if height else 0
        if stride < width * 3:
            raise SourceReadError(f'GStreamer buffer too small for {width}x{height} BGR')
        data = np.frombuffer(info.data, dtype=np.uint8, count=stride * height)
        return data.reshape(height, stride)[:, :width * 3].reshape(height, width, 3).copy()
    finally:
        buf.unmap(info)


_CLASSES: dict[str, type[FrameSource]] = {
    SYNTHETIC: SyntheticSource,
    FILE: FileSource,
    V4L2: V4L2Source,
    NETWORK: NetworkSource,
    GSTREAMER: GStreamerSource,
}


def make_source(spec: SourceSpec | str, options: SourceOptions) -> FrameSource:
    """Build (but do not open) the source for ``spec``.

    :raises SourceConfigError: for a malformed source string.
    """
    if isinstance(spec, str):
        spec = parse_source(spec)
    return _CLASSES[spec.kind](spec, options)


def check_source_config(spec: SourceSpec) -> None:
    """Check what can be checked before opening (libraries present, syntax).

    :raises SourceConfigError: when the source can never work as configured here.
    """
    if spec.kind == GSTREAMER and not cv2_has_gstreamer():
        gst = _gst()
        from gi.repository import GLib
        try:
            pipeline = gst.parse_launch(gst_pipeline_text(spec.target))
        except GLib.Error as exc:
            raise SourceConfigError(f'invalid GStreamer pipeline: {exc.message}') from exc
        pipeline.set_state(gst.State.NULL)
