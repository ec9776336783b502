"""Run :class:`HandDetector` in a child process, with the same ``detect`` interface.

Why: MediaPipe's Python binding takes and releases the GIL many times per frame,
so any busy Python thread in the same process (an rclpy executor, the camera's
publisher, other composed nodes) cuts its throughput several-fold; measured
here, one busy thread drops a 60 fps loop to 14 fps. A child process has its own
GIL. Frames travel through shared memory and results (a few kB) through a pipe,
so the parent holds its GIL only briefly per frame.

ROS-free. The child is a fresh interpreter running this module (forking a
process that runs DDS threads is unsafe, and multiprocessing's ``spawn`` would
re-import the parent's main script); it ignores SIGINT and SIGTERM (the parent
owns shutdown) and exits when the parent closes the socket or dies.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from multiprocessing import resource_tracker
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
import os
import signal
import socket
import subprocess
import sys
from typing import Any

import numpy as np

from pianist_ros.detection.config import DetectorConfig
from pianist_ros.detection.detector import Hand
from pianist_ros.detection.detector import HandDetector
from pianist_ros.detection.errors import DetectorError

_LOG = logging.getLogger(__name__)


class DetectorCrashedError(DetectorError):
    """The detector process died or stopped answering; a new one must be started."""


class ProcessHandDetector:
    """A :class:`HandDetector` living in a child process.

    Not thread-safe: one thread calls :meth:`detect` (the node's worker).

    :param config: detector settings.
    :param start_timeout: seconds the child may take to import MediaPipe and start.
    :param frame_timeout: seconds one frame may take before the child is killed.
    :raises DetectorError: when the child cannot start MediaPipe.
    :raises DetectorCrashedError: when the child dies or times out while starting.
    """

    def __init__(self, config: DetectorConfig | None = None, start_timeout: float = 60.0,
                 frame_timeout: float = 10.0):
        self.config = config or DetectorConfig()
        self._frame_timeout = frame_timeout
        self._shm: shared_memory.SharedMemory | None = None
        parent_sock, child_sock = socket.socketpair()
        # The child must import this very package, however it was installed.
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join(
            p for p in (package_root, env.get('PYTHONPATH', '')) if p)
        try:
            self._proc: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, '-m', __name__, str(child_sock.fileno()),
                 json.dumps(dataclasses.asdict(self.config))],
                pass_fds=(child_sock.fileno(),), stdin=subprocess.DEVNULL, env=env)
        except OSError as exc:
            parent_sock.close()
            raise DetectorError(f'cannot start the detector process: {exc}') from exc
        finally:
            child_sock.close()
        self._conn = Connection(parent_sock.detach())
        try:
            reply = self._receive(start_timeout, 'starting')
        except DetectorError:
            self.close()
            raise
        if reply[0] != 'ready':
            self.close()
            raise DetectorError(reply[1])

    @property
    def pid(self) -> int | None:
        """Return the child's process id (``None`` once closed)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        """Return whether the child process is running."""
        return self._proc is not None and self._proc.poll() is None

    def detect(self, rgb: np.ndarray) -> list[Hand]:
        """Return the hands in one RGB frame (see :meth:`HandDetector.detect`).

        :raises ValueError: when ``rgb`` is not an ``(h, w, 3)`` uint8 array.
        :raises DetectorError: when MediaPipe fails on this frame.
        :raises DetectorCrashedError: when the child died or timed out (it is killed;
            build a new detector).
        """
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 \
                or rgb.dtype != np.uint8:
            raise ValueError('detect() needs an (h, w, 3) uint8 RGB array')
        if self._proc is None:
            raise DetectorError('detector is closed')
        shm = self._buffer(rgb.nbytes)
        np.copyto(np.ndarray(rgb.shape, dtype=np.uint8, buffer=shm.buf), rgb)
        try:
            self._conn.send(('frame', shm.name, rgb.shape))
        except (OSError, ValueError) as exc:
            self._kill()
            raise DetectorCrashedError(f'detector process is gone: {exc}') from exc
        reply = self._receive(self._frame_timeout, 'processing a frame')
        if reply[0] == 'hands':
            return reply[1]
        raise DetectorError(reply[1])

    def _buffer(self, size: int) -> shared_memory.SharedMemory:
        if self._shm is None or self._shm.size < size:
            self._release_buffer()
            self._shm = shared_memory.SharedMemory(create=True, size=size)
        return self._shm

    def _receive(self, timeout: float, what: str) -> tuple[Any, ...]:
        try:
            if self._conn.poll(timeout):
                return self._conn.recv()
        except (EOFError, OSError):
            code = self._kill()
            raise DetectorCrashedError(
                f'detector process died while {what} (exit code {code})') from None
        self._kill()
        raise DetectorCrashedError(f'detector process did not answer within {timeout:g} s '
                                   f'while {what}; killed it')

    def _kill(self) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        try:
            return proc.wait(5.0)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Stop the child (politely, then by force) and free the shared memory."""
        if self._proc is not None:
            try:
                self._conn.send(('close',))
            except (OSError, ValueError):
                pass
            try:
                self._proc.wait(5.0)
            except subprocess.TimeoutExpired:
                _LOG.warning('detector process did not exit; killing it')
            self._kill()
            self._proc = None
        self._conn.close()
        self._release_buffer()

    def _release_buffer(self) -> None:
        if self._shm is not None:
            shm, self._shm = self._shm, None
            shm.close()
            shm.unlink()

    def __enter__(self) -> 'ProcessHandDetector':
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def _child_main(argv: list[str]) -> int:
    """Serve ``('frame', shm_name, shape)`` requests until ``('close',)`` or EOF."""
    # Ctrl-C and a service stop (SIGTERM to the whole process group or cgroup) reach us
    # too; the parent decides when we stop, by closing the socket or by dying.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(int(argv[0]))
    config = DetectorConfig(**json.loads(argv[1]))
    try:
        detector = HandDetector(config)
        # One blank frame opens every calculator now, so a graph that cannot run fails
        # (or aborts) before 'ready' and the first real frame pays no start-up cost.
        detector.detect(np.zeros((64, 64, 3), dtype=np.uint8))
    except DetectorError as exc:
        conn.send(('error', str(exc)))
        return 1
    conn.send(('ready',))
    shm = None
    try:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                break
            if request[0] != 'frame':
                break
            _, name, shape = request
            if shm is None or shm.name != name.lstrip('/'):
                if shm is not None:
                    shm.close()
                shm = shared_memory.SharedMemory(name=name)
                # The parent owns (and unlinks) the segment; without this the tracker
                # would also count it against this process.
                resource_tracker.unregister(shm._name, 'shared_memory')  # noqa: SLF001
            rgb = np.ndarray(shape, dtype=np.uint8, buffer=shm.buf)
            try:
                reply = ('hands', detector.detect(rgb))
            except (DetectorError, ValueError) as exc:
                reply = ('error', str(exc))
            # Drop the view first: a segment with live views cannot be closed.
            del rgb
            conn.send(reply)
    finally:
        if shm is not None:
            shm.close()
        detector.close()
    return 0


if __name__ == '__main__':
    sys.exit(_child_main(sys.argv[1:]))
