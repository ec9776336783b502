"""Self-healing camera benchmark: detection and recovery times, CPU while reconnecting.

Runs the real capture worker (the code the camera node runs) against the MJPEG test
camera (test/fixtures/mjpeg_server.py, a separate process on 127.0.0.1 serving the
shared hands clip) and measures, as medians of repeated runs:

- kill detection: SIGKILL the server -> worker state RECONNECTING;
- stall detection: server stops sending (TCP open) -> STALLED, against the configured
  stall_timeout (the baseline: detection can not be faster than the timeout);
- recovery: server READY again -> STREAMING and first frame, against the backoff
  delay drawn for that attempt (the baseline: the wait we chose to make);
- CPU while reconnecting to a dead server, against the CPU of the same process idle
  and while streaming, all measured in this run.

Usage: ``.venv/bin/python bench/bench_camera.py [--quick]``. Results also go to
bench/results/bench_camera.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from pianist_ros.camera.capture import CaptureConfig  # noqa: E402
from pianist_ros.camera.capture import CaptureWorker  # noqa: E402
from pianist_ros.camera.reconnect import BackoffPolicy  # noqa: E402
from pianist_ros.camera.reconnect import CameraState  # noqa: E402
from pianist_ros.camera.reconnect import ReconnectMachine  # noqa: E402
from pianist_ros.camera.sources import make_source  # noqa: E402
from pianist_ros.camera.sources import SourceOptions  # noqa: E402

SERVER = os.path.join(REPO, 'test', 'fixtures', 'mjpeg_server.py')
STALL_TIMEOUT = 1.0
POLICY = BackoffPolicy(initial_delay=0.2, max_delay=1.0, multiplier=2.0, jitter='full',
                       stable_after=2.0)


class Server:
    """The MJPEG camera process on a fixed port."""

    def __init__(self, port: int):
        self.port = port
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start it; return the monotonic time it printed READY."""
        self.proc = subprocess.Popen(
            [sys.executable, SERVER, '--port', str(self.port), '--max-frames', '15'],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith('READY'):
            raise RuntimeError(f'MJPEG server failed to start: {line!r}')
        return time.monotonic()

    def kill(self) -> float:
        """SIGKILL it; return the kill time."""
        t = time.monotonic()
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc = None
        return t

    def signal(self, sig: int) -> float:
        """Send a signal; return when it was sent."""
        t = time.monotonic()
        os.kill(self.proc.pid, sig)
        return t

    def stop(self) -> None:
        """Stop it if running."""
        if self.proc is not None:
            self.kill()


class Probe:
    """A capture worker on the server, recording state-change and frame times."""

    def __init__(self, url: str):
        self.events: list[tuple[float, CameraState]] = []
        self.frames: list[float] = []
        self.lock = threading.Lock()
        options = SourceOptions(open_timeout=2.0, read_timeout=STALL_TIMEOUT + 1.0)
        self.machine = ReconnectMachine(POLICY, max_consecutive_failures=3)
        self.worker = CaptureWorker(
            lambda: make_source(url, options),
            CaptureConfig(stall_timeout=STALL_TIMEOUT, open_timeout=2.0, release_timeout=1.0),
            self.machine, on_frame=self._on_frame, on_status=self._on_status)

    def _on_frame(self, _frame, _stamp) -> None:
        with self.lock:
            self.frames.append(time.monotonic())

    def _on_status(self, status) -> None:
        with self.lock:
            self.events.append((time.monotonic(), status.state))

    def wait_state(self, state: CameraState, since: float, timeout: float = 15.0) -> float:
        """Return the first time ``state`` was entered after ``since``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for t, s in self.events:
                    if s == state and t >= since:
                        return t
            time.sleep(0.002)
        raise TimeoutError(f'{state.value} not reached in {timeout} s')

    def wait_frame(self, since: float, timeout: float = 15.0) -> float:
        """Return the time of the first frame after ``since``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                later = [t for t in self.frames if t >= since]
            if later:
                return later[0]
            time.sleep(0.002)
        raise TimeoutError('no frame')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _cpu_percent(seconds: float) -> float:
    """Return this process's CPU use (all threads) over ``seconds``, in % of one core."""
    wall0, cpu0 = time.monotonic(), time.process_time()
    time.sleep(seconds)
    return 100.0 * (time.process_time() - cpu0) / (time.monotonic() - wall0)


def run(repeats: int, cpu_window: float) -> dict:
    """Measure everything; return the figures."""
    server = Server(_free_port())
    url = f'http://127.0.0.1:{server.port}/stream.mjpg'
    cpu_idle = _cpu_percent(cpu_window)
    server.start()
    probe = Probe(url)
    kill_detect, stall_detect, recover, recover_frame, backoffs = [], [], [], [], []
    try:
        probe.worker.start()
        probe.wait_state(CameraState.STREAMING, 0.0)
        probe.wait_frame(time.monotonic())
        cpu_streaming = _cpu_percent(cpu_window)
        for _ in range(repeats):
            killed = server.kill()
            kill_detect.append(probe.wait_state(CameraState.RECONNECTING, killed) - killed)
            time.sleep(0.3)
            ready = server.start()
            backoffs.append(probe.machine.backoff_sec)
            recover.append(probe.wait_state(CameraState.STREAMING, ready) - ready)
            recover_frame.append(probe.wait_frame(ready) - ready)
        for _ in range(repeats):
            probe.wait_frame(time.monotonic())
            stalled = server.signal(signal.SIGUSR1)
            stall_detect.append(probe.wait_state(CameraState.STALLED, stalled) - stalled)
            server.signal(signal.SIGUSR2)
            probe.wait_state(CameraState.STREAMING, stalled + stall_detect[-1])
        server.kill()
        probe.wait_state(CameraState.RECONNECTING, time.monotonic() - 5.0)
        time.sleep(0.5)
        cpu_reconnecting = _cpu_percent(cpu_window)
        attempts = probe.machine.snapshot().failed_attempts
    finally:
        probe.worker.stop()
        server.stop()
    return {
        'repeats': repeats,
        'stall_timeout_sec': STALL_TIMEOUT,
        'reconnect_max_delay_sec': POLICY.max_delay,
        'kill_detect_sec_median': statistics.median(kill_detect),
        'stall_detect_sec_median': statistics.median(stall_detect),
        'stall_detect_over_timeout_ratio': statistics.median(stall_detect) / STALL_TIMEOUT,
        'recover_streaming_sec_median': statistics.median(recover),
        'recover_first_frame_sec_median': statistics.median(recover_frame),
        'recover_backoff_sec_median': statistics.median(backoffs),
        'cpu_percent_idle': cpu_idle,
        'cpu_percent_streaming': cpu_streaming,
        'cpu_percent_reconnecting': cpu_reconnecting,
        'cpu_reconnecting_over_streaming_ratio':
            cpu_reconnecting / cpu_streaming if cpu_streaming > 0 else 0.0,
        'failed_attempts_during_cpu_window': attempts,
        'samples': {'kill_detect': kill_detect, 'stall_detect': stall_detect,
                    'recover': recover, 'recover_first_frame': recover_frame,
                    'backoff': backoffs},
    }


def _write(result: dict) -> str:
    out_dir = os.path.join(HERE, 'results')
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, 'bench_camera.json')
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix='.bench_camera.', suffix='.tmp')
    with os.fdopen(fd, 'w', encoding='utf-8') as handle:
        json.dump(result, handle, indent=2)
    os.replace(tmp, path)
    return path


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='3 repeats, 3 s CPU windows')
    args = parser.parse_args()
    repeats, window = (3, 3.0) if args.quick else (9, 10.0)
    r = run(repeats, window)
    print(f'camera self-healing, medians of {repeats} runs '
          f'(stall_timeout {STALL_TIMEOUT:g} s, backoff 0.2..{POLICY.max_delay:g} s full jitter)')
    print(f'  detect killed stream   {r["kill_detect_sec_median"] * 1000:8.1f} ms')
    print(f'  detect stalled stream  {r["stall_detect_sec_median"] * 1000:8.1f} ms   '
          f'= {r["stall_detect_over_timeout_ratio"]:.3f} x stall_timeout '
          '(counted from the last frame, so up to one frame period under 1.0)')
    print(f'  recover (to STREAMING) {r["recover_streaming_sec_median"] * 1000:8.1f} ms   '
          f'first frame {r["recover_first_frame_sec_median"] * 1000:.1f} ms after READY '
          f'(bounded by the backoff wait left, <= {POLICY.max_delay:g} s)')
    print(f'  CPU idle process       {r["cpu_percent_idle"]:8.2f} % of a core (baseline)')
    print(f'  CPU streaming 15 fps   {r["cpu_percent_streaming"]:8.2f} %')
    print(f'  CPU reconnecting       {r["cpu_percent_reconnecting"]:8.2f} %   '
          f'= {r["cpu_reconnecting_over_streaming_ratio"]:.3f} x streaming '
          f'({r["failed_attempts_during_cpu_window"]} failed attempts in the window)')
    print(f'  results: {_write(r)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
