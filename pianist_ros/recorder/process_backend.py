"""The ``process`` backend: a pool of encoder processes fed through shared memory.

Frames never cross the process boundary pickled: the parent copies each frame into
one slot of a ring of ``multiprocessing.shared_memory`` segments and sends the
worker a small tuple (slot name, shape, target path). The worker encodes (simplejpeg
or OpenCV), writes the files atomically and answers with a small tuple; the slot is
then free again. Workers are started with ``spawn`` (forking a process that runs DDS
threads is unsafe) and each has its own pipe, so the parent always knows which jobs
a worker holds: when a worker dies (SIGKILL, OOM) its jobs are reported lost, its
slots freed and it is respawned.

Only the parent creates and unlinks segments; workers attach and close. All share
the parent's resource tracker, so there is nothing for it to warn about.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
import logging
import multiprocessing
from multiprocessing import connection
from multiprocessing import shared_memory
import os
import signal
import threading
import time

import numpy as np

from pianist_ros.recorder.backends import EncoderBackend
from pianist_ros.recorder.backends import Job
from pianist_ros.recorder.backends import Result
from pianist_ros.recorder.backends import to_bgr
from pianist_ros.recorder.errors import BackendError
from pianist_ros.recorder.errors import StorageError
from pianist_ros.recorder.storage import write_frame_files

_LOG = logging.getLogger(__name__)

#: Jobs one worker may hold at once: one encoding, one waiting in its pipe.
PER_WORKER = 2
#: Wait for a new worker to say it is ready (imports done), in seconds.
READY_TIMEOUT_SEC = 30.0


def make_encoder(codec: str, quality: int):
    """Return ``encode(frame, encoding) -> bytes`` for ``codec``.

    :raises ValueError: for an unknown codec.
    """
    if codec == 'simplejpeg':
        import simplejpeg

        def encode(frame: np.ndarray, encoding: str) -> bytes:
            if frame.ndim == 2:
                return simplejpeg.encode_jpeg(frame[:, :, None], quality, colorspace='GRAY',
                                              colorsubsampling='Gray')
            # 4:2:0 like OpenCV's default, so both codecs give comparable files.
            space = 'RGB' if encoding == 'rgb8' else 'BGR'
            return simplejpeg.encode_jpeg(frame, quality, colorspace=space,
                                          colorsubsampling='420')
        return encode
    if codec == 'opencv':
        import cv2

        def encode_cv(frame: np.ndarray, encoding: str) -> bytes:
            ok, buf = cv2.imencode('.jpg', to_bgr(frame, encoding),
                                   [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise ValueError('cv2.imencode failed')
            return buf.tobytes()
        return encode_cv
    raise ValueError(f'unknown codec {codec!r}')


def worker_main(conn, codec: str, quality: int) -> None:
    """Run one encoder worker until its pipe closes or it is told to stop."""
    # Ctrl-C reaches the whole process group; the parent decides when workers stop,
    # so queued frames can still be flushed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    encode = make_encoder(codec, quality)
    attached: dict[str, shared_memory.SharedMemory] = {}
    generation = -1
    conn.send(('ready', os.getpid()))
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break  # parent gone
            if msg[0] == 'stop':
                break
            _, seq, name, gen, shape, encoding, path, sidecar = msg
            if gen != generation:
                _close_all(attached)
                generation = gen
            shm = attached.get(name)
            if shm is None:
                shm = shared_memory.SharedMemory(name=name)
                attached[name] = shm
            start = time.perf_counter()
            frame = np.ndarray(shape, dtype=np.uint8, buffer=shm.buf)
            try:
                jpeg = encode(frame, encoding)
                encoded = time.perf_counter()
                nbytes, paths = write_frame_files(path, jpeg, sidecar)
                reply = ('done', seq, True, nbytes, paths, encoded - start,
                         time.perf_counter() - start, '')
            except (StorageError, ValueError, RuntimeError) as exc:
                reply = ('done', seq, False, 0, (), 0.0, time.perf_counter() - start,
                         f'{type(exc).__name__}: {exc}')
            finally:
                del frame
            try:
                conn.send(reply)
            except (OSError, EOFError):
                break
    finally:
        _close_all(attached)


def _close_all(attached: dict) -> None:
    for shm in attached.values():
        try:
            shm.close()
        except BufferError:
            pass
    attached.clear()


@dataclass
class _Pending:
    slot: int
    seq: int
    path: str


@dataclass
class _Worker:
    index: int
    proc: multiprocessing.Process
    conn: connection.Connection
    jobs: dict[int, _Pending] = field(default_factory=dict)
    ready: bool = False


class ProcessBackend(EncoderBackend):
    """Encode in ``workers`` processes through a ring of ``slots`` shared-memory frames."""

    name = 'process'

    def __init__(self, workers: int = 2, slots: int = 4, quality: int = 90,
                 codec: str = 'simplejpeg'):
        super().__init__()
        if workers < 1:
            raise ValueError('workers must be >= 1')
        if not 1 <= quality <= 100:
            raise ValueError('quality must be in 1..100')
        make_encoder(codec, quality)  # unknown codec or missing library fails here
        self._ctx = multiprocessing.get_context('spawn')
        self._n_workers = workers
        self._n_slots = max(slots, workers)
        self._quality = int(quality)
        self._codec = codec
        self._cond = threading.Condition()
        self._segments: list[shared_memory.SharedMemory] = []
        self._free: list[int] = []
        self._slot_bytes = 0
        self._generation = 0
        self._workers: list[_Worker] = []
        self._collector: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._closing = False
        self._stopped = False
        self.restarts = 0
        self.lost = 0
        self.last_worker_error = ''

    # ---- lifecycle -----------------------------------------------------------------

    def start(self, on_result) -> None:
        """Spawn the workers and the result collector.

        :raises BackendError: when a worker cannot be started.
        """
        super().start(on_result)
        with self._cond:
            for index in range(self._n_workers):
                self._workers.append(self._spawn(index))
        self._collector = threading.Thread(target=self._collect, name='recorder-collector',
                                           daemon=True)
        self._collector.start()

    def _spawn(self, index: int) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=worker_main, args=(child, self._codec, self._quality),
                                 name=f'recorder-worker-{index}', daemon=True)
        try:
            proc.start()
        except OSError as exc:
            parent.close()
            raise BackendError(f'cannot start encoder worker: {exc}') from exc
        finally:
            child.close()
        return _Worker(index, proc, parent)

    def pids(self) -> list[int]:
        """Return the worker process ids (for tests and diagnostics)."""
        with self._cond:
            return [w.proc.pid for w in self._workers if w.proc.pid is not None]

    def wait_ready(self, timeout: float) -> bool:
        """Wait until every worker has finished importing; return whether they did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not all(w.ready for w in self._workers):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    # ---- submit --------------------------------------------------------------------

    def submit(self, job: Job, timeout: float) -> bool:
        """Copy ``job.frame`` into a free slot and send it to the least busy worker."""
        frame = job.frame
        if frame.dtype != np.uint8:
            raise BackendError(f'frames must be uint8, got {frame.dtype}')
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closing:
                    return False
                if frame.nbytes > self._slot_bytes and len(self._free) == len(self._segments):
                    self._allocate_ring(frame.nbytes)
                worker = self._pick_worker()
                if frame.nbytes <= self._slot_bytes and self._free and worker is not None:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            slot = self._free.pop()
            worker.jobs[job.seq] = _Pending(slot, job.seq, job.path)
            segment = self._segments[slot]
            generation = self._generation
        # The slot is ours alone until the worker answers: copy outside the lock.
        view = np.ndarray(frame.shape, dtype=np.uint8, buffer=segment.buf)
        np.copyto(view, frame)
        del view
        try:
            worker.conn.send(('job', job.seq, segment.name, generation, frame.shape,
                              job.encoding, job.path, job.sidecar))
        except (OSError, ValueError):
            # Worker died (the collector reports the job lost) or is being replaced.
            os.write(self._wake_w, b'x')
        return True

    def _pick_worker(self) -> _Worker | None:
        best = None
        for worker in self._workers:
            if not worker.ready or len(worker.jobs) >= PER_WORKER:
                continue
            if best is None or len(worker.jobs) < len(best.jobs):
                best = worker
        return best

    def _allocate_ring(self, nbytes: int) -> None:
        """(Re)create every slot for frames of ``nbytes``; called with all slots free."""
        self._release_ring()
        self._generation += 1
        try:
            for _ in range(self._n_slots):
                self._segments.append(shared_memory.SharedMemory(create=True, size=nbytes))
        except OSError as exc:
            self._release_ring()
            raise BackendError(f'cannot allocate shared memory ({nbytes} B): {exc}') from exc
        self._free = list(range(self._n_slots))
        self._slot_bytes = nbytes

    def _release_ring(self) -> None:
        for segment in self._segments:
            try:
                segment.close()
            except BufferError:
                pass
            try:
                segment.unlink()
            except FileNotFoundError:
                pass
        self._segments = []
        self._free = []
        self._slot_bytes = 0

    def segment_names(self) -> list[str]:
        """Return the shared-memory segment names (for leak tests)."""
        with self._cond:
            return [s.name for s in self._segments]

    # ---- results and worker deaths ---------------------------------------------------

    def _collect(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                waitables = {}
                for worker in self._workers:
                    waitables[worker.conn] = ('msg', worker)
                    waitables[worker.proc.sentinel] = ('dead', worker)
            ready = connection.wait(list(waitables) + [self._wake_r], timeout=0.5)
            for obj in ready:
                if obj == self._wake_r:
                    os.read(self._wake_r, 4096)
                    continue
                kind, worker = waitables[obj]
                if kind == 'msg':
                    self._receive(worker)
            for obj in ready:
                if obj in waitables and waitables[obj][0] == 'dead':
                    self._on_worker_exit(waitables[obj][1])

    def _receive(self, worker: _Worker) -> None:
        try:
            while worker.conn.poll(0):
                self._handle(worker, worker.conn.recv())
        except (EOFError, OSError):
            pass  # the sentinel reports the death

    def _handle(self, worker: _Worker, msg: tuple) -> None:
        if msg[0] == 'ready':
            with self._cond:
                worker.ready = True
                self._cond.notify_all()
            return
        _, seq, ok, nbytes, paths, encode_sec, total_sec, error = msg
        with self._cond:
            pending = worker.jobs.pop(seq, None)
            if pending is not None:
                self._free.append(pending.slot)
            self._cond.notify_all()
        if pending is None:
            return
        self._report(Result(seq, ok, nbytes, tuple(paths), encode_sec, total_sec, error))

    def _on_worker_exit(self, worker: _Worker) -> None:
        self._receive(worker)  # results it sent before dying still count
        worker.proc.join(1.0)
        code = worker.proc.exitcode
        with self._cond:
            if worker not in self._workers:
                return
            lost = list(worker.jobs.values())
            worker.jobs.clear()
            for pending in lost:
                self._free.append(pending.slot)
            worker.conn.close()
            self.lost += len(lost)
            respawn = not self._closing
            if respawn:
                self.restarts += 1
                self.last_worker_error = (f'worker {worker.index} (pid {worker.proc.pid}) '
                                          f'exited with {code}; {len(lost)} frame(s) lost')
                _LOG.debug(self.last_worker_error)
                try:
                    replacement = self._spawn(worker.index)
                except BackendError as exc:
                    self.last_worker_error = str(exc)
                    replacement = None
                idx = self._workers.index(worker)
                if replacement is not None:
                    self._workers[idx] = replacement
                else:
                    del self._workers[idx]
            else:
                self._workers.remove(worker)
            self._cond.notify_all()
        for pending in lost:
            self._report(Result(pending.seq, False, error=f'encoder worker exited ({code})',
                                lost=True))

    # ---- close ---------------------------------------------------------------------

    def in_flight(self) -> int:
        """Return jobs held by workers."""
        with self._cond:
            return sum(len(w.jobs) for w in self._workers)

    def close(self, timeout: float) -> int:
        """Let workers finish within ``timeout``, stop and reap them, unlink the ring."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            self._closing = True
            while any(w.jobs for w in self._workers):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            workers = list(self._workers)
            abandoned = sum(len(w.jobs) for w in workers)
        for worker in workers:
            try:
                worker.conn.send(('stop',))
            except (OSError, ValueError):
                pass
        for worker in workers:
            _reap(worker.proc, max(deadline - time.monotonic(), 1.0))
        with self._cond:
            self._stopped = True
        os.write(self._wake_w, b'x')
        if self._collector is not None:
            self._collector.join(5.0)
        with self._cond:
            for worker in self._workers:
                worker.conn.close()
            self._workers = []
            self._release_ring()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        return abandoned

    def stats(self) -> dict:
        """Return worker counts, restarts and lost frames."""
        with self._cond:
            alive = sum(1 for w in self._workers if w.proc.is_alive())
            return {'workers_alive': alive, 'workers': self._n_workers,
                    'worker_restarts': self.restarts, 'frames_lost_with_worker': self.lost,
                    'ring_slots': self._n_slots, 'slot_bytes': self._slot_bytes,
                    'codec': self._codec, 'last_worker_error': self.last_worker_error}


def _reap(proc: multiprocessing.Process, timeout: float) -> None:
    """Join ``proc``; terminate, then kill, if it does not exit in time."""
    proc.join(timeout)
    if proc.is_alive():
        proc.terminate()
        proc.join(2.0)
    if proc.is_alive():
        proc.kill()
        proc.join(2.0)
