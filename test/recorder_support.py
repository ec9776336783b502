"""Helpers for the image recorder tests: clip frames, PSNR, tmpfs mounts, leak probes."""

from __future__ import annotations

import contextlib
import glob
import os
import subprocess
import tempfile
import threading
import time

import cv2
import numpy as np

from pianist_ros.recorder.backends import EncoderBackend
from pianist_ros.recorder.backends import Job
from pianist_ros.recorder.backends import Result
from pianist_ros.recorder.storage import write_frame_files

SHM_DIR = '/dev/shm'


def clip_frames(data_dir: str, count: int, size: tuple[int, int] | None = None) -> list:
    """Return ``count`` BGR frames of hands_clip.mp4 (optionally resized to ``size``)."""
    cap = cv2.VideoCapture(os.path.join(data_dir, 'hands_clip.mp4'))
    frames = []
    try:
        while len(frames) < count:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.resize(frame, size) if size else frame)
    finally:
        cap.release()
    assert len(frames) == count, f'clip has fewer than {count} frames'
    return frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Return the PSNR of two same-size uint8 images in dB."""
    return float(cv2.PSNR(a, b))


def jpegs(root: str) -> list[str]:
    """Return every final (non-temp) JPEG under ``root``, sorted."""
    return sorted(p for p in glob.glob(os.path.join(root, '*', '*.jpg'))
                  if not os.path.basename(p).startswith('.'))


def temp_files(root: str) -> list[str]:
    """Return leftover hidden temp files under ``root``."""
    return glob.glob(os.path.join(root, '*', '.*'))


def shm_segments() -> set[str]:
    """Return the Python shared-memory segments (``psm_*``) that exist now.

    DDS and other engineers' processes keep their own segments in /dev/shm; only
    multiprocessing.shared_memory's names matter here.
    """
    try:
        return {n for n in os.listdir(SHM_DIR) if n.startswith('psm_')}
    except OSError:
        return set()


def pid_alive(pid: int) -> bool:
    """Return whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii') as handle:
            return handle.read().split(')')[-1].split()[0] != 'Z'
    except OSError:
        return False


@contextlib.contextmanager
def tmpfs(size: str, read_only: bool = False):
    """Mount a tmpfs of ``size`` (e.g. '2m') on a temp dir; yield its path or None.

    None means mounting is not permitted here (not root, no CAP_SYS_ADMIN); the
    caller falls back or skips. Unmounted in ``finally``.
    """
    path = tempfile.mkdtemp(prefix='rec-tmpfs-')
    opts = f'size={size}' + (',ro' if read_only else '')
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', opts, 'tmpfs', path],
                             capture_output=True).returncode == 0
    try:
        yield path if mounted else None
    finally:
        if mounted:
            subprocess.run(['umount', '-l', path], capture_output=True)
        os.rmdir(path)


class SlowBackend(EncoderBackend):
    """A real backend (writes real files) that takes ``delay`` seconds per frame.

    Used to show that a slow encoder makes the recorder drop the oldest frames
    instead of blocking the caller. It has one worker thread and takes a job only
    when that worker is idle.
    """

    name = 'slow'

    def __init__(self, delay: float):
        super().__init__()
        self.delay = delay
        self.seen: list[int] = []
        self._cond = threading.Condition()
        self._job: Job | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, on_result) -> None:
        super().start(on_result)
        self._thread.start()

    def submit(self, job: Job, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._job is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            self._job = job
            self._cond.notify_all()
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._stop:
                    self._cond.wait()
                if self._job is None:
                    return
                job = self._job
            time.sleep(self.delay)  # the deliberate slowness, in the backend's own thread
            ok, buf = cv2.imencode('.jpg', job.frame)
            nbytes, paths = write_frame_files(job.path, buf.tobytes(), job.sidecar)
            self.seen.append(job.seq)
            with self._cond:
                self._job = None
                self._cond.notify_all()
            self._report(Result(job.seq, True, nbytes, paths, 0.0, self.delay))

    def in_flight(self) -> int:
        with self._cond:
            return int(self._job is not None)

    def close(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._job is not None and time.monotonic() < deadline:
                self._cond.wait(max(deadline - time.monotonic(), 0.01))
            abandoned = int(self._job is not None)
            self._stop = True
            self._cond.notify_all()
        self._thread.join(self.delay + 1.0)
        return abandoned
