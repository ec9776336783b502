"""Session directories, atomic file writes, disk quota rotation and free-space guard.

The write helpers run inside encoder workers (threads, processes, GStreamer pull
thread), so this module imports nothing heavy. :class:`SessionStore` runs in the
recorder's dispatcher and collector threads and is guarded by its own lock.
"""

from __future__ import annotations

from collections import deque
import datetime
import enum
import errno
import logging
import os
import shutil
import threading

from pianist_ros.recorder.errors import StorageError

_LOG = logging.getLogger(__name__)

#: File suffixes the recorder writes (and may delete when rotating).
OWNED_SUFFIXES = ('.jpg', '.json', '.mkv')
#: Session directory prefix; rotation only ever touches directories with it.
SESSION_PREFIX = 'session_'


def stamp_text(stamp_ns: int) -> str:
    """Return a file-name-safe UTC time for ``stamp_ns``, e.g. ``20250101T120000.123456Z``."""
    when = datetime.datetime.fromtimestamp(stamp_ns / 1e9, tz=datetime.timezone.utc)
    return when.strftime('%Y%m%dT%H%M%S.%fZ')


def frame_name(seq: int, stamp_ns: int) -> str:
    """Return the base name (no suffix) of frame ``seq``: sequence first so names sort."""
    return f'{seq:08d}_{stamp_text(stamp_ns)}'


def temp_path(path: str, suffix: str = '') -> str:
    """Return a hidden temp name next to ``path`` (same directory, so rename is atomic)."""
    head, tail = os.path.split(path)
    return os.path.join(head, f'.{tail}.{os.getpid()}.tmp{suffix}')


def write_atomic(path: str, data: bytes) -> int:
    """Write ``data`` to a temp file beside ``path`` and rename it into place.

    A crash leaves at most a hidden ``.*.tmp`` file, never a partial file under
    ``path``. A vanished directory is recreated once.

    :raises StorageError: wrapping the OSError.
    :return: bytes written.
    """
    tmp = temp_path(path)
    for attempt in (0, 1):
        try:
            with open(tmp, 'wb') as handle:
                handle.write(data)
            os.replace(tmp, path)
            return len(data)
        except FileNotFoundError as exc:
            if attempt == 0 and _recreate_dir(path):
                continue
            raise StorageError(f'cannot write {path}: {exc}') from exc
        except OSError as exc:
            _remove_quietly(tmp)
            raise StorageError(f'cannot write {path}: {exc}') from exc
    raise StorageError(f'cannot write {path}')  # pragma: no cover - loop always returns


def _recreate_dir(path: str) -> bool:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return True
    except OSError:
        return False


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def sidecar_path(path: str) -> str:
    """Return the JSON sidecar path of the JPEG at ``path``."""
    return os.path.splitext(path)[0] + '.json'


def write_sidecar(path: str, sidecar: str) -> tuple[int, str]:
    """Write the JSON sidecar of the JPEG already in place at ``path``.

    If the sidecar cannot be written the JPEG is removed as well, so a frame is on
    disk with both files or not at all.

    :raises StorageError: when the sidecar cannot be written.
    :return: (bytes written, sidecar path).
    """
    side = sidecar_path(path)
    try:
        return write_atomic(side, sidecar.encode('utf-8')), side
    except StorageError:
        _remove_quietly(path)
        raise


def discard_frame(path: str) -> None:
    """Remove whatever a failed write of the frame at ``path`` may have left (sidecar)."""
    _remove_quietly(sidecar_path(path))


def write_frame_files(path: str, jpeg: bytes, sidecar: str | None) -> tuple[int, tuple[str, ...]]:
    """Write a JPEG and then its optional JSON sidecar, each atomically.

    The sidecar is written only once the JPEG is in place (a full disk fails the big
    JPEG, and a sidecar written first would stay behind as an orphan); if the
    sidecar then fails, the JPEG is removed too.

    :raises StorageError: when a file cannot be written.
    :return: (total bytes, paths written).
    """
    try:
        total = write_atomic(path, jpeg)
    except StorageError:
        discard_frame(path)
        raise
    if sidecar is None:
        return total, (path,)
    nbytes, side = write_sidecar(path, sidecar)
    return total + nbytes, (path, side)


class GuardState(enum.Enum):
    """Whether the store accepts writes."""

    OK = 'ok'
    LOW_DISK = 'low_disk'
    DIR_ERROR = 'dir_error'


class SessionStore:
    """One session directory under ``root``, with a byte quota and a free-space guard.

    Every completed file is indexed (oldest first, across this and earlier sessions
    found at start); when the total exceeds ``max_total_bytes`` the oldest frames are
    deleted. While free space is below ``min_free_bytes`` :meth:`check` reports
    ``LOW_DISK`` and the recorder writes nothing.
    """

    def __init__(self, root: str, max_total_bytes: int = 0, min_free_bytes: int = 0,
                 session: str | None = None):
        if max_total_bytes < 0 or min_free_bytes < 0:
            raise ValueError('byte limits must be >= 0')
        self.root = root
        self.max_total_bytes = max_total_bytes
        self.min_free_bytes = min_free_bytes
        if session is None:
            now = datetime.datetime.now(datetime.timezone.utc)
            session = SESSION_PREFIX + now.strftime('%Y%m%dT%H%M%SZ') + f'_{os.getpid()}'
        self.session_dir = os.path.join(root, session)
        self._lock = threading.Lock()
        self._index: deque[tuple[tuple[str, ...], int]] = deque()
        self.bytes_on_disk = 0
        self.files_rotated = 0
        self.state = GuardState.DIR_ERROR
        self.free_bytes: int | None = None
        self.last_error = ''
        self._opened = False

    def open(self) -> None:
        """Create the session directory and index earlier sessions' files.

        :raises StorageError: when the directory cannot be created or is not writable.
        """
        try:
            os.makedirs(self.session_dir, exist_ok=True)
            if not os.access(self.session_dir, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, 'not writable', self.session_dir)
            probe = os.path.join(self.session_dir, f'.probe.{os.getpid()}')
            with open(probe, 'wb'):
                pass
            os.unlink(probe)
        except OSError as exc:
            with self._lock:
                self.state = GuardState.DIR_ERROR
                self.last_error = f'output directory {self.session_dir}: {exc}'
            raise StorageError(self.last_error) from exc
        with self._lock:
            if not self._opened:
                self._scan_existing()
                self._opened = True
            self.state = GuardState.OK

    def _scan_existing(self) -> None:
        """Index recordings of earlier sessions (oldest session first) for rotation."""
        try:
            sessions = sorted(d for d in os.listdir(self.root) if d.startswith(SESSION_PREFIX))
        except OSError:
            return
        for name in sessions:
            path = os.path.join(self.root, name)
            if path == self.session_dir:
                continue
            groups: dict[str, list[str]] = {}
            try:
                entries = sorted(os.listdir(path))
            except OSError:
                continue
            for entry in entries:
                stem, suffix = os.path.splitext(entry)
                if suffix in OWNED_SUFFIXES and not entry.startswith('.'):
                    groups.setdefault(stem, []).append(os.path.join(path, entry))
            for stem in sorted(groups):
                size = 0
                for file_path in groups[stem]:
                    try:
                        size += os.path.getsize(file_path)
                    except OSError:
                        pass
                self._index.append((tuple(groups[stem]), size))
                self.bytes_on_disk += size

    def check(self) -> GuardState:
        """Re-check the free space (one statvfs) and return the state.

        A directory error is retried by calling :meth:`open` again.
        """
        with self._lock:
            opened = self.state is not GuardState.DIR_ERROR
        if not opened:
            try:
                self.open()
            except StorageError:
                return GuardState.DIR_ERROR
        try:
            free = shutil.disk_usage(self.root).free
        except OSError as exc:
            with self._lock:
                self.state = GuardState.DIR_ERROR
                self.last_error = f'output directory {self.root}: {exc}'
                return self.state
        with self._lock:
            self.free_bytes = free
            if self.min_free_bytes and free < self.min_free_bytes:
                if self.state is not GuardState.LOW_DISK:
                    self.last_error = (f'free space {free} B below min_free_bytes '
                                       f'{self.min_free_bytes} B: not writing')
                self.state = GuardState.LOW_DISK
            else:
                self.state = GuardState.OK
            return self.state

    def mark_write_error(self, message: str) -> None:
        """Record a failed write; a missing or unwritable directory is re-opened later."""
        with self._lock:
            self.last_error = message
            if not os.path.isdir(self.session_dir) or not os.access(self.session_dir, os.W_OK):
                self.state = GuardState.DIR_ERROR

    def path_for(self, seq: int, stamp_ns: int, suffix: str = '.jpg') -> str:
        """Return the final path of frame ``seq`` captured at ``stamp_ns``."""
        return os.path.join(self.session_dir, frame_name(seq, stamp_ns) + suffix)

    def add(self, paths: tuple[str, ...], nbytes: int) -> list[str]:
        """Index one written frame and rotate; return the paths deleted by rotation."""
        removed: list[str] = []
        with self._lock:
            self._index.append((tuple(paths), nbytes))
            self.bytes_on_disk += nbytes
            while (self.max_total_bytes and self.bytes_on_disk > self.max_total_bytes
                   and len(self._index) > 1):
                old_paths, old_bytes = self._index.popleft()
                self.bytes_on_disk -= old_bytes
                self.files_rotated += 1
                for path in old_paths:
                    try:
                        os.unlink(path)
                        removed.append(path)
                    except FileNotFoundError:
                        pass
                    except OSError as exc:
                        _LOG.debug('rotation could not delete %s: %s', path, exc)
                self._remove_empty_session(os.path.dirname(old_paths[0]) if old_paths else '')
        return removed

    def _remove_empty_session(self, path: str) -> None:
        if not path or path == self.session_dir:
            return
        if not os.path.basename(path).startswith(SESSION_PREFIX):
            return
        try:
            os.rmdir(path)
        except OSError:
            pass  # not empty (foreign files) or already gone
